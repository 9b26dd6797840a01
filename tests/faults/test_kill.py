"""Fault injection: the real CLI killed with SIGKILL at seeded random moments, then re-run.

For `segment ingest`, `segment features` and `segment assign`, each trial copies a prepared
lake (the "previous state"), starts the stage as its own process group (the Python driver
and its JVM), kills the group at a seeded moment within the stage's measured clean duration,
and then checks:

* right after the kill, every reader sees the previous state or the whole new one;
* the invariants hold (one row per key, published slices complete, membership consistent);
* a re-run completes, and its result equals a clean run's.

`make test` runs `FAULT_TRIALS` (default 2) per stage; `make test-faults` runs 8. Each trial
prints one line (stage, kill moment, whether a commit landed before the kill), the figures
the closing notes quote.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from segmentation import tables
from segmentation.config import Config, load_config, overrides_under
from segmentation.io import read_table, table_history, table_ref, table_version
from segmentation.publish import check_membership, published_runs, published_slice
from segmentation.stages.features import run_features
from segmentation.stages.generate import run_generate
from segmentation.stages.ingest import run_ingest
from segmentation.stages.train import run_train

TRIALS = int(os.environ.get("FAULT_TRIALS", "2"))
SEED = int(os.environ.get("FAULT_SEED", "20261126"))
CUSTOMERS = 400
EARLY, MIDDLE, LATE = "2025-06-30", "2025-09-30", "2025-12-31"
STAGE_TIMEOUT = 600  # seconds for one CLI run; a hang fails the test
SEGMENT = Path(sys.executable).parent / "segment"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@dataclass(frozen=True)
class Lake:
    root: Path
    overrides: tuple[str, ...]

    def config(self, *more: str) -> Config:
        return load_config(None, [*self.overrides, *more])

    def copy(self, destination: Path) -> Lake:
        """The same lake and MLflow store under `destination`."""
        shutil.copytree(self.root, destination)
        return Lake(destination, tuple(_under(destination)))


def _under(root: Path) -> list[str]:
    return [
        *overrides_under(root),
        f"spark.maven_repo={os.environ.get('MAVEN_REPO', '~/.m2/repository')}",
        "spark.master=local[2]",
        "spark.driver_memory=1g",
        "spark.shuffle_partitions=2",
        "sweep.algorithms=[kmeans]",
        "sweep.grid.kmeans.k=[4]",
        "sweep.restarts=1",
        "selection.min_stability=0",  # what is tested here is the commits, not the model
        "clv.enabled=false",
        "ingest.max_reject_share=1.0",
    ]


@pytest.fixture(scope="module")
def prepared(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Generated customers; features as of both dates from bronze holding only the first
    half-year (ingest.max_order_ts); a registered model; the early date's assignment
    published; then bronze holding every transaction. So each stage run changes what readers
    see: an ingest up to another date, the late features from the full bronze, the late
    assignment."""
    root = tmp_path_factory.mktemp("faults") / "lake-root"
    lake = Lake(root, tuple(_under(root)))
    run_generate(lake.config(f"generate.customers={CUSTOMERS}"), spark)
    run_ingest(lake.config(f"ingest.max_order_ts={EARLY}T23:59:59"), spark)
    for as_of in (EARLY, LATE):
        run_features(lake.config(f"features.as_of_date={as_of}"), spark)
    run_train(lake.config(f"features.as_of_date={EARLY}"), spark)
    _cli(lake, "assign", f"features.as_of_date={EARLY}")
    run_ingest(lake.config(), spark)
    return lake


def _command(lake: Lake, stage: str, *more: str) -> list[str]:
    """`segment <stage>` on the lake, with `more` overrides."""
    return [str(SEGMENT), stage, *(f"--set={o}" for o in (*lake.overrides, *more))]


def _cli(lake: Lake, stage: str, *more: str) -> float:
    """One clean CLI run; its wall time."""
    started = time.monotonic()
    completed = subprocess.run(
        _command(lake, stage, *more),
        cwd=lake.root,
        capture_output=True,
        text=True,
        timeout=STAGE_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return time.monotonic() - started


def _killed(lake: Lake, stage: str, more: tuple[str, ...], delay: float) -> bool:
    """Start the stage, SIGKILL its whole process group after `delay` s; True when it was
    still running (the kill landed), False when it had already finished."""
    process = subprocess.Popen(
        _command(lake, stage, *more),
        cwd=lake.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        return True


def _versions(spark: SparkSession, cfg: Config, watched: tuple[tables.Table, ...]) -> dict[str, int]:
    return {t.name: table_version(spark, table_ref(cfg.lake, t)) for t in watched}


def _rows(spark: SparkSession, cfg: Config, table: tables.Table, *drop: str) -> DataFrame:
    frame = read_table(spark, table_ref(cfg.lake, table))
    return spark.createDataFrame(frame.drop(*drop).collect(), frame.drop(*drop).schema)  # a snapshot


@dataclass(frozen=True)
class StageFaults:
    stage: str
    args: tuple[str, ...]
    watched: tuple[tables.Table, ...]  # tables the stage commits to
    state: Callable[[SparkSession, Config], object]  # what readers see, comparable with ==
    finished: Callable[[SparkSession, Config, Config], None]  # re-run equals the clean run


def _bronze(spark: SparkSession, cfg: Config) -> tuple:
    transactions = read_table(spark, table_ref(cfg.lake, tables.TRANSACTIONS))
    row = transactions.agg(
        F.count(F.lit(1)), F.round(F.sum(tables.AMOUNT), 2), F.max(tables.ORDER_TS)
    ).first()
    return tuple(row)


def _bronze_equal(spark: SparkSession, cfg: Config, clean: Config) -> None:
    assertDataFrameEqual(_rows(spark, cfg, tables.TRANSACTIONS), _rows(spark, clean, tables.TRANSACTIONS))
    assert _rows(spark, cfg, tables.TRANSACTIONS_REJECTED).count() == (
        _rows(spark, clean, tables.TRANSACTIONS_REJECTED).count()
    )


def _late_features(spark: SparkSession, cfg: Config) -> tuple:
    features = read_table(spark, table_ref(cfg.lake, tables.CUSTOMER_FEATURES)).filter(
        F.col(tables.AS_OF_DATE) == F.lit(LATE).cast("date")
    )
    row = features.agg(
        F.count(F.lit(1)), F.countDistinct(tables.CUSTOMER_ID), F.round(F.sum(tables.MONETARY), 2)
    ).first()
    return tuple(row)


def _features_equal(spark: SparkSession, cfg: Config, clean: Config) -> None:
    assertDataFrameEqual(
        _rows(spark, cfg, tables.CUSTOMER_FEATURES), _rows(spark, clean, tables.CUSTOMER_FEATURES)
    )


def _gold(spark: SparkSession, cfg: Config) -> tuple[str, ...]:
    """The published assignments, each checked complete, with membership checked consistent
    and made of published assignments only (it may lag the last publish: the next run
    applies it)."""
    runs = published_runs(spark, cfg.lake)
    for run in runs:
        rows = published_slice(spark, cfg.lake, table=tables.SEGMENT_ASSIGNMENTS, run=run)
        assert rows.count() == run.customers == rows.select(tables.CUSTOMER_ID).distinct().count()
        profiles = published_slice(spark, cfg.lake, table=tables.SEGMENT_PROFILES, run=run)
        assert profiles.agg(F.sum(tables.CUSTOMER_COUNT)).first()[0] == run.customers
    check_membership(spark, cfg.lake)
    membership = read_table(spark, table_ref(cfg.lake, tables.SEGMENT_MEMBERSHIP))
    sources = {row[0] for row in membership.select(tables.ASSIGNMENT_ID).distinct().collect()}
    assert sources <= {run.assignment_id for run in runs}
    return tuple(run.assignment_id for run in runs)


def _gold_equal(spark: SparkSession, cfg: Config, clean: Config) -> None:
    lineage = (tables.ASSIGNED_AT, tables.WRITE_ID)
    for run, clean_run in zip(
        published_runs(spark, cfg.lake), published_runs(spark, clean.lake), strict=True
    ):
        assert run.assignment_id == clean_run.assignment_id
        assertDataFrameEqual(
            published_slice(spark, cfg.lake, table=tables.SEGMENT_ASSIGNMENTS, run=run).drop(*lineage),
            published_slice(spark, clean.lake, table=tables.SEGMENT_ASSIGNMENTS, run=clean_run).drop(
                *lineage
            ),
        )
        raw = read_table(spark, table_ref(cfg.lake, tables.SEGMENT_ASSIGNMENTS))
        assert (
            raw.filter(F.col(tables.ASSIGNMENT_ID) == run.assignment_id).count() == run.customers
        )  # no orphans
    membership = (
        tables.CUSTOMER_ID,
        tables.SEGMENT_ID,
        tables.VALID_FROM,
        tables.VALID_TO,
        tables.IS_CURRENT,
    )
    assertDataFrameEqual(
        _rows(spark, cfg, tables.SEGMENT_MEMBERSHIP).select(*membership),
        _rows(spark, clean, tables.SEGMENT_MEMBERSHIP).select(*membership),
    )


STAGES = {
    "ingest": StageFaults(
        "ingest",
        (f"ingest.max_order_ts={MIDDLE}T23:59:59",),
        (tables.TRANSACTIONS_REJECTED, tables.CUSTOMERS_REJECTED, tables.CUSTOMERS, tables.TRANSACTIONS),
        _bronze,
        _bronze_equal,
    ),
    "features": StageFaults(
        "features",
        (f"features.as_of_date={LATE}",),
        (tables.CUSTOMER_FEATURES,),
        _late_features,
        _features_equal,
    ),
    "assign": StageFaults(
        "assign",
        (f"features.as_of_date={LATE}",),
        (tables.SEGMENT_ASSIGNMENTS, tables.SEGMENT_PROFILES, tables.SEGMENT_RUNS, tables.SEGMENT_MEMBERSHIP),
        _gold,
        _gold_equal,
    ),
}


@dataclass(frozen=True)
class CleanRun:
    """A copy of the prepared lake after one clean run of a stage (the expected result), and
    when, in seconds from its start, that run committed first and last."""

    lake: Lake
    seconds: float
    first_commit: float
    last_commit: float


@pytest.fixture(scope="module")
def clean_runs(
    spark: SparkSession, prepared: Lake, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, CleanRun]:
    runs = {}
    for name, faults in STAGES.items():
        lake = prepared.copy(tmp_path_factory.mktemp(f"clean-{name}") / "lake-root")
        started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        seconds = _cli(lake, faults.stage, *faults.args)
        commits = [
            (commit["timestamp"] - started).total_seconds()
            for table in faults.watched
            for commit in table_history(spark, table_ref(lake.config().lake, table))
            if commit["timestamp"] >= started
        ]
        runs[name] = CleanRun(lake, seconds, min(commits), max(commits))
    return runs


@pytest.mark.parametrize("trial", range(TRIALS))
@pytest.mark.parametrize("name", list(STAGES))
def test_a_killed_stage_leaves_the_old_or_the_new_state_and_a_rerun_completes(
    spark, prepared, clean_runs, tmp_path, name, trial
):
    faults = STAGES[name]
    clean_run = clean_runs[name]
    clean = clean_run.lake
    lake = prepared.copy(tmp_path / "lake-root")
    cfg = lake.config()
    old_state = faults.state(spark, cfg)
    new_state = faults.state(spark, clean.config())
    assert old_state != new_state  # the stage changes what readers see
    before = _versions(spark, cfg, faults.watched)

    # Around the writes: from a few seconds before the clean run's first commit to just after
    # its last (the kill would otherwise mostly land in the JVM's start-up).
    delay = random.Random(f"{SEED}-{name}-{trial}").uniform(
        max(1.0, clean_run.first_commit - 5.0), clean_run.last_commit + 1.0
    )
    landed = _killed(lake, faults.stage, faults.args, delay)
    moved = {t: v for t, v in _versions(spark, cfg, faults.watched).items() if v != before[t]}
    seen = faults.state(spark, cfg)
    print(
        f"\nfault {name} trial {trial}: kill at {delay:.1f} s (clean run: {clean_run.seconds:.1f} s, commits "
        f"at {clean_run.first_commit:.1f}-{clean_run.last_commit:.1f} s), "
        f"{'killed' if landed else 'had finished'}; tables committed before the kill: "
        f"{sorted(moved) or 'none'}; readers saw the {'new' if seen == new_state else 'old'} state"
    )
    assert seen in (old_state, new_state)

    _cli(lake, faults.stage, *faults.args)
    assert faults.state(spark, cfg) == new_state
    faults.finished(spark, cfg, clean.config())


def _concurrently(lake: Lake, *runs: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Start every `(stage, *overrides)` at once; wait for all."""
    processes = [
        subprocess.Popen(
            _command(lake, stage, *more),
            cwd=lake.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stage, *more in runs
    ]
    outputs = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=STAGE_TIMEOUT)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        outputs.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return outputs


def test_two_assigns_on_different_dates_at_once_both_publish(spark, prepared, tmp_path):
    lake = prepared.copy(tmp_path / "lake-root")
    cfg = lake.config()
    runs_before = published_runs(spark, cfg.lake)
    early, late = _concurrently(
        lake, ("assign", f"features.as_of_date={EARLY}"), ("assign", f"features.as_of_date={LATE}")
    )
    assert early.returncode == 0, early.stderr[-3000:]
    assert late.returncode == 0, late.stderr[-3000:]
    published = _gold(spark, cfg)
    assert sorted(published) == sorted(
        {run.assignment_id for run in runs_before} | {f"{LATE}_customer-segmentation_v1"}
    )
    # The early assignment was published again (a newer slice), nothing of it lost.
    assert {r.assignment_id: r.write_id for r in published_runs(spark, cfg.lake)}[
        runs_before[0].assignment_id
    ] > (runs_before[0].write_id)
    assert all(run.membership_status is not None for run in published_runs(spark, cfg.lake))


def test_an_ingest_while_features_read_bronze_both_succeed(spark, prepared, tmp_path):
    lake = prepared.copy(tmp_path / "lake-root")
    ingest, features = _concurrently(
        lake,
        ("ingest", f"ingest.max_order_ts={MIDDLE}T23:59:59"),
        ("features", f"features.as_of_date={LATE}"),
    )
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    assert features.returncode == 0, features.stderr[-3000:]
    features_rows = read_table(spark, table_ref(lake.config().lake, tables.CUSTOMER_FEATURES)).filter(
        F.col(tables.AS_OF_DATE) == F.lit(LATE).cast("date")
    )
    assert features_rows.count() == features_rows.select(tables.CUSTOMER_ID).distinct().count() > 0
