"""`make mlflow-ui` end to end: `mlflow server` on the finished pipeline's store, read back in
headless Chromium (Debian's, installed by `make setup`), with a screenshot of every page."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from conftest import FinishedPipeline
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from deploy.standalone_cluster import free_port

CHROMIUM = Path("/usr/bin/chromium")
MLFLOW = Path(sys.executable).with_name("mlflow")
# As root, in a container without a display, GPU or outside network: no sandbox, and none of
# the background fetches (component updates, sync, QUIC probes) that the network would refuse.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
# Virtual time: Chromium runs the page's timers and fetches until the budget is used up, then
# dumps the DOM and takes the screenshot. A slower machine gets a second, longer try.
VIRTUAL_TIME_BUDGETS_MS = (20_000, 60_000)
SERVER_START_SECONDS = 60
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_SCREENSHOT_BYTES = 20_000  # a blank 1600x1000 page compresses to a few KB


@dataclass(frozen=True)
class Sweep:
    experiment_id: str
    parent: Run
    children: list[Run]  # in grid order
    others: list[Run]  # the experiment's runs outside the sweep (the clv stage's)


@pytest.fixture(scope="module")
def sweep(finished_pipeline: FinishedPipeline) -> Sweep:
    """The pipeline's sweep as MlflowClient reads it: the parent run and its child runs, the
    ones the pipeline's train stage reported."""
    cfg = finished_pipeline.cfg
    client = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    assert experiment is not None, f"no experiment {cfg.mlflow.experiment!r} in {cfg.mlflow.tracking_uri}"
    runs = client.search_runs([experiment.experiment_id], "tags.stage = 'train'")
    parents = [run for run in runs if MLFLOW_PARENT_RUN_ID not in run.data.tags]
    assert len(parents) == 1, f"expected one sweep run, found {[run.info.run_name for run in parents]}"
    parent = parents[0]
    trained = finished_pipeline.result.train
    assert parent.info.run_id == trained.sweep_run_id
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'"
    )
    assert len(children) >= 2, f"sweep run {parent.info.run_id} has {len(children)} child runs"
    assert {run.info.run_id for run in children} == {row.run_id for row in trained.leaderboard}
    children.sort(key=lambda run: int(run.data.tags["grid_index"]))
    sweep_ids = {parent.info.run_id} | {run.info.run_id for run in children}
    everything = client.search_runs([experiment.experiment_id], max_results=1000)
    others = [run for run in everything if run.info.run_id not in sweep_ids]
    assert [run.data.tags.get("stage") for run in others] == ["clv"]
    return Sweep(experiment.experiment_id, parent, children, others)


@pytest.fixture(scope="module")
def mlflow_ui(finished_pipeline: FinishedPipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on the pipeline's store, on a free loopback port, as `make mlflow-ui`
    serves it; yields its base URL and stops it, uvicorn worker included."""
    cfg = finished_pipeline.cfg
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = folder / "mlflow-server.log"
    command = [
        str(MLFLOW),
        "server",
        "--backend-store-uri",
        cfg.mlflow.tracking_uri,
        "--default-artifact-root",
        (finished_pipeline.root / "mlruns").as_uri(),
        "--no-serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with log_path.open("wb") as log:
        # A session of its own: `mlflow server` runs uvicorn as a child process, and the whole
        # group is stopped at the end.
        server = subprocess.Popen(
            command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_healthy(base_url, server, log_path)
        yield base_url
    finally:
        _stop_group(server)


def test_experiment_page_lists_the_sweep_runs(mlflow_ui: str, sweep: Sweep, tmp_path: Path):
    # Sorted by a metric, the runs table lists the child runs on their own rows; sorted by start
    # time (the default) it nests them, collapsed, under the sweep run.
    query = urlencode({"orderByKey": "metrics.`silhouette`", "orderByAsc": "false"}, quote_via=quote)
    url = f"{mlflow_ui}/#/experiments/{sweep.experiment_id}/runs?{query}"
    names = [run.info.run_name for run in [*sweep.children, sweep.parent, *sweep.others]]
    screenshot = tmp_path / "mlflow_ui" / "experiment.png"

    page = _render(
        url, screenshot, window=(1600, 1000), ready=lambda page: all(name in page.texts for name in names)
    )

    assert "customer-segmentation" in page.texts, page.text[:2000]
    assert f"{len(names)} matching runs" in page.text, page.text[:2000]
    missing = [name for name in names if name not in page.texts]
    assert not missing, f"runs missing from the experiment page: {missing}\n{page.text[:2000]}"
    shown = sorted(names, key=page.texts.index)
    silhouettes = {run.info.run_name: run.data.metrics["silhouette"] for run in sweep.children}
    without = {sweep.parent.info.run_name, *(run.info.run_name for run in sweep.others)}
    assert set(shown[-len(without) :]) == without  # no silhouette of their own: sorted last
    shown_silhouettes = [silhouettes[name] for name in shown[: -len(without)]]
    assert shown_silhouettes == sorted(shown_silhouettes, reverse=True), shown
    _assert_screenshot(screenshot, (1600, 1000))


def test_compare_page_shows_child_runs_and_metrics(mlflow_ui: str, sweep: Sweep, tmp_path: Path):
    run_ids = [run.info.run_id for run in sweep.children]
    # The route the UI's own "Compare" button builds: JSON lists of run and experiment ids.
    query = urlencode(
        {"runs": json.dumps(run_ids), "experiments": json.dumps([sweep.experiment_id])},
        quote_via=quote,
    )
    url = f"{mlflow_ui}/#/compare-runs?{query}"
    screenshot = tmp_path / "mlflow_ui" / "compare.png"

    runs = len(run_ids)
    page = _render(
        url, screenshot, window=(1600, 2200), ready=lambda page: page.metric("silhouette", runs) is not None
    )

    assert f"Comparing {len(run_ids)} Runs from 1 Experiment" in page.text, page.text[:2000]
    assert page.rows.get("Run ID:") == run_ids, page.text[:3000]
    assert page.rows.get("Run Name:") == [run.info.run_name for run in sweep.children]
    assert page.rows.get("k") == [run.data.params["k"] for run in sweep.children]
    silhouettes = page.metric("silhouette", runs)
    assert silhouettes is not None, f"no silhouette row on the compare page\n{page.text[:3000]}"
    # The UI shows metrics between 0.001 and 10 to three decimals.
    shown = [float(value) for value in silhouettes]
    assert shown == pytest.approx([run.data.metrics["silhouette"] for run in sweep.children], abs=6e-4)
    _assert_screenshot(screenshot, (1600, 2200))


class _Page(HTMLParser):
    """A rendered DOM, read as its visible text nodes in document order and its table rows by
    their first cell: `rows["silhouette"] == ["0.868", "0.878", ...]`."""

    _SKIPPED = frozenset({"script", "style", "noscript"})

    def __init__(self, dom: str):
        super().__init__()
        self.texts: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self._skipping = 0
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(dom)
        self.close()
        self.text = " ".join(self.texts)

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIPPED:
            self._skipping += 1
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in self._SKIPPED:
            self._skipping -= 1
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row:
            self.rows.setdefault(self._row[0], self._row[1:])
            self._row = None

    def metric(self, name: str, runs: int) -> list[str] | None:
        """A metric's values on the compare page. MLflow 3.17 lays the Metrics section out as
        the metric names, then each metric's `runs` values in the same order; a page with one
        table row per metric (as MLflow 3.5 had) is read by its row."""
        if name in self.rows:
            return self.rows[name]
        if "Metrics" not in self.texts:
            return None
        section = self.texts[self.texts.index("Metrics") + 1 :]
        labels = list(itertools.takewhile(lambda text: not _is_number(text), section))
        names = [label for label in labels if label != "Show diff only"]  # the section's toggle
        values = section[len(labels) : len(labels) + len(names) * runs]
        if name not in names or len(values) < len(names) * runs:
            return None
        at = names.index(name) * runs
        return values[at : at + runs]

    def handle_data(self, data):
        text = re.sub(r"\s+", " ", data).strip()
        if text and not self._skipping:
            self.texts.append(text)
            if self._cell is not None:
                self._cell.append(text)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _render(url: str, screenshot: Path, *, window: tuple[int, int], ready: Callable[[_Page], bool]) -> _Page:
    """Load `url` in headless Chromium, save a screenshot and return the rendered DOM, once
    `ready` holds for it or the last time budget is used up."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: run `make setup`, which installs Debian's chromium")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    for budget_ms in VIRTUAL_TIME_BUDGETS_MS:
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            completed = subprocess.run(
                [
                    str(CHROMIUM),
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    f"--window-size={window[0]},{window[1]}",
                    f"--virtual-time-budget={budget_ms}",
                    f"--screenshot={screenshot}",
                    "--dump-dom",
                    url,
                ],
                capture_output=True,
                text=True,
                timeout=budget_ms / 1000 + 60,
            )
        assert completed.returncode == 0, f"chromium exited with {completed.returncode}:\n{completed.stderr}"
        page = _Page(completed.stdout)
        if ready(page):
            break
    print(f"\nscreenshot of {url}\n  {screenshot}")
    return page


def _assert_screenshot(path: Path, window: tuple[int, int]) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert (width, height) == window, f"{path} is {width}x{height}"
    assert len(data) > MIN_SCREENSHOT_BYTES, f"{path} is only {len(data)} bytes: a blank page?"


def _wait_until_healthy(base_url: str, server: subprocess.Popen, log_path: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError), opener.open(f"{base_url}/health", timeout=2) as response:
            if response.status == 200:
                return
        if time.monotonic() > deadline:
            pytest.fail(
                f"mlflow server not healthy on {base_url} after {SERVER_START_SECONDS} s:\n"
                f"{log_path.read_text()[-3000:]}"
            )
        time.sleep(0.25)


def _stop_group(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever of it still runs after 15 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=15)
    while _running_in_group(server.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _running_in_group(server.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _running_in_group(group_id: int) -> bool:
    """Whether a process of the group still runs: zombies don't count, since an orphaned worker
    may never be reaped in a container whose init does not reap."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(group) == group_id and state != "Z":
                return True
    return False
