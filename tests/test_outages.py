"""An MLflow store that is down or read-only: one line naming the store, a non-zero exit, and
every Delta table as it was."""

from __future__ import annotations

import shutil
import socket

import pytest
from conftest import FinishedPipeline

from segmentation import tables
from segmentation.cli import main
from segmentation.io import table_ref, table_version

WATCHED = (
    tables.TRANSACTIONS,
    tables.CUSTOMER_FEATURES,
    tables.SEGMENT_ASSIGNMENTS,
    tables.SEGMENT_PROFILES,
    tables.SEGMENT_RUNS,
    tables.SEGMENT_MEMBERSHIP,
)


def versions(spark, cfg) -> dict[str, int]:
    return {table.name: table_version(spark, table_ref(cfg.lake, table)) for table in WATCHED}


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def failing(capsys, *args: str) -> str:
    """Run the CLI, expect a non-zero exit, return its one-line error."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("stage", ["assign", "pipeline"])
def test_an_unreachable_tracking_server_is_named_and_nothing_is_written(
    spark, finished_pipeline: FinishedPipeline, capsys, monkeypatch, stage
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"http://127.0.0.1:{closed_port()}"
    before = versions(spark, finished_pipeline.cfg)
    sets = [f"--set={o}" for o in finished_pipeline.overrides]
    message = failing(capsys, stage, *sets, f"--set=mlflow.tracking_uri={uri}")
    assert f"MLflow tracking store {uri} is unreachable" in message
    assert "segment train" not in message  # not mistaken for a missing model
    assert versions(spark, finished_pipeline.cfg) == before


def test_a_read_only_store_fails_train_before_anything_is_fitted(
    spark, finished_pipeline: FinishedPipeline, capsys, tmp_path
):
    store = tmp_path / "mlflow.db"
    shutil.copy(finished_pipeline.root / "mlflow.db", store)
    # SQLite's own read-only mode: file permissions do not stop root, which CI runs as.
    uri = f"sqlite:///file:{store}?mode=ro&uri=true"
    before = versions(spark, finished_pipeline.cfg)
    sets = [f"--set={o}" for o in finished_pipeline.overrides]
    message = failing(capsys, "train", *sets, f"--set=mlflow.tracking_uri={uri}")
    assert message.startswith(f"error: MLflow tracking store {uri}: ")
    assert "readonly" in message
    assert versions(spark, finished_pipeline.cfg) == before
