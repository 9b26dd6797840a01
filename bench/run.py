"""Every stage of the pipeline on a cached generated dataset, each against its floor in the same run.

    make bench SCALE=100k|1m|10m          # = .venv/bin/python bench/run.py --scale 1m

The dataset of a scale is generated once into bench/.cache/ (ignored by git). A run starts from
its raw files: ingest -> features -> train -> assign -> report, each timed with its peak driver
memory, and the floors of bench/floors.py timed just before their stage; `segment clv` is
timed against the features stage of the same run (`--stages ingest,features,clv` runs only
those). The sweep grid is
k = 2..6 for the three algorithms, one start per fit (BENCH_SWEEP; `--full-sweep` keeps the
configured grid); the naive sweep, which fits on every customer, runs up to
`--naive-max-customers`. Each stage's result is printed as `segment` prints it
(`segmentation.cli.format_result`); the output is also written to bench/results/<scale>.txt.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bench_data import dataset_overrides, ensure_generated
from floors import assignment_floor, features_floor, naive_sweep
from pyspark.sql import SparkSession

from segmentation.cli import configure_logging, format_result
from segmentation.config import ALGORITHMS, Config, load_config
from segmentation.io import read_source, read_table, table_ref
from segmentation.spark import get_spark
from segmentation.stages.assign import run_assign
from segmentation.stages.clv import ClvResult, run_clv
from segmentation.stages.features import run_features
from segmentation.stages.ingest import run_ingest
from segmentation.stages.report import run_report
from segmentation.stages.train import run_train
from segmentation.tables import (
    CLV_FITS,
    CUSTOMER_FEATURES,
    CUSTOMER_VALUE,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_MEMBERSHIP,
    SEGMENT_PROFILES,
    SEGMENT_RUNS,
    TRANSACTIONS,
    Table,
)

SCALES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
STAGES = ("ingest", "features", "clv", "train", "assign", "report")
BENCH_SWEEP = (
    *[f"sweep.grid.{algorithm}.k=[2, 3, 4, 5, 6]" for algorithm in ALGORITHMS],
    "sweep.restarts=1",
)
TARGETS = {"features": 1.5, "train (sweep)": 0.3, "assign": 1.3}
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Measurement:
    stage: str
    input_rows: int
    seconds: float
    jvm_peak_mb: float
    python_peak_mb: float
    floor_seconds: Optional[float] = None
    note: str = ""

    @property
    def ratio(self) -> Optional[float]:
        return self.seconds / self.floor_seconds if self.floor_seconds else None


class PeakMemory:
    """Peak resident memory of the driver's JVM and Python processes since the last reset.

    Linux keeps the peak as VmHWM; writing 5 to /proc/<pid>/clear_refs resets it, so each
    stage gets its own peak. In local mode the JVM also runs the tasks, so its figure is
    bounded by `spark.driver_memory` plus off-heap; Python's shows what reached the driver.
    """

    def __init__(self) -> None:
        self.python_pid = os.getpid()
        self.jvm_pid = driver_jvm_pid(self.python_pid)

    def reset(self) -> None:
        for pid in (self.jvm_pid, self.python_pid):
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    def peaks_mb(self) -> tuple[float, float]:
        return _high_water_mb(self.jvm_pid), _high_water_mb(self.python_pid)


def driver_jvm_pid(python_pid: int) -> int:
    """The driver JVM of a local session: the child process of this Python that runs
    SparkSubmit (pyspark launches it with spark-submit, whose scripts exec the JVM in place).
    Read from /proc, not through the session's private gateway handles."""
    jvms = [pid for pid in _children(python_pid) if _SPARK_SUBMIT in _command_line(pid)]
    if len(jvms) != 1:
        raise RuntimeError(
            f"expected one driver JVM among the children of process {python_pid}, found {jvms}; "
            "the bench needs the local session it starts itself"
        )
    return jvms[0]


_SPARK_SUBMIT = "org.apache.spark.deploy.SparkSubmit"


def _children(pid: int) -> list[int]:
    """Child processes of `pid`, from the parent field of every /proc/<pid>/stat."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name in brackets may hold spaces: the fields follow its last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return sorted(children)


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _high_water_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, default="100k")
    parser.add_argument("--naive-max-customers", type=int, default=1_000_000)
    parser.add_argument("--full-sweep", action="store_true", help="the configured grid, not BENCH_SWEEP")
    parser.add_argument(
        "--stages",
        type=lambda text: [stage.strip() for stage in text.split(",")],
        default=list(STAGES),
        help=f"comma-separated, run in pipeline order; default all: {','.join(STAGES)}",
    )
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args()
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"--stages: unknown {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    return args


def main() -> None:
    args = parse_args()
    configure_logging(verbose=False)
    customers = SCALES[args.scale]
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{args.scale}-"))

    def configured(store: str) -> Config:
        """The bench config with MLflow (and the report) in a fresh store of its own."""
        return load_config(
            None,
            [
                *dataset_overrides(customers),
                *([] if args.full_sweep else BENCH_SWEEP),
                f"mlflow.tracking_uri=sqlite:///{scratch / store}.db",
                f"mlflow.artifact_location={scratch / store}-artifacts",
                f"report.output_dir={scratch / 'reports'}",
                *args.overrides,
            ],
        )

    cfg = configured("pipeline")
    spark = get_spark(cfg.spark)
    output = Output()
    output.line(f"$ {shlex.join([Path(sys.executable).name, *sys.argv])}")
    output.line(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    ensure_generated(cfg, spark, customers, say=output.line)
    derived = (
        CUSTOMER_FEATURES,
        CUSTOMER_VALUE,
        CLV_FITS,
        SEGMENT_ASSIGNMENTS,
        SEGMENT_PROFILES,
        SEGMENT_RUNS,
    )
    for table in (*derived, SEGMENT_MEMBERSHIP):
        shutil.rmtree(table_ref(cfg.lake, table).path, ignore_errors=True)

    memory = PeakMemory()
    measurements: list[Measurement] = []

    def measure(
        stage: str,
        run: Callable[[Config, SparkSession], Any],
        input_table: Optional[Table],
        *,
        floor: Optional[Callable[[], object]] = None,
    ) -> Any:
        """Run one stage (its floor first), print its result and return it."""
        floor_seconds = timed(floor)[0] if floor else None
        rows = count_rows(spark, cfg, input_table)
        memory.reset()
        seconds, result = timed(lambda: run(cfg, spark))
        measurements.append(Measurement(stage, rows, seconds, *memory.peaks_mb(), floor_seconds))
        output.line(format_result(result))
        floor_text = f", floor {floor_seconds:.1f} s" if floor_seconds is not None else ""
        output.line(f"[bench] {stage}: {seconds:.1f} s{floor_text}")
        return result

    if "ingest" in args.stages:
        measure("ingest", run_ingest, None)
    if "features" in args.stages:
        measure("features", run_features, TRANSACTIONS, floor=lambda: features_floor(cfg, spark))
    if "clv" in args.stages:
        clv = measure("clv", run_clv, TRANSACTIONS)
        measurements[-1].note = clv_note(clv, measurements)
    if "train" in args.stages:
        train_stage(
            args,
            measure,
            measurements,
            customers=customers,
            naive_floor=lambda: naive_sweep(configured("naive"), spark),
        )
    if "assign" in args.stages:
        assigned = measure(
            "assign",
            run_assign,
            CUSTOMER_FEATURES,
            floor=lambda: assignment_floor(cfg, spark, scratch / "floor"),
        )
        measurements[-1].note = "; ".join(f"{phase} {s:.1f} s" for phase, s in assigned.phase_seconds.items())
    if "report" in args.stages:
        measure("report", run_report, SEGMENT_ASSIGNMENTS)

    output.line("")
    output.line(
        f"scale {args.scale}: {customers:,} customers, cores {spark.sparkContext.defaultParallelism}, "
        f"driver memory {cfg.spark.driver_memory}, "
        f"sweep {'configured grid' if args.full_sweep else 'BENCH_SWEEP'}"
        f" (sweep.max_rows {cfg.sweep.max_rows:,}, restarts {cfg.sweep.restarts}, "
        f"parallelism {cfg.sweep.parallelism})"
    )
    for line in format_table(measurements):
        output.line(line)
    RESULTS.mkdir(exist_ok=True)
    name = args.scale if args.stages == list(STAGES) else "-".join([args.scale, *args.stages])
    (RESULTS / f"{name}.txt").write_text(output.text())
    shutil.rmtree(scratch, ignore_errors=True)


def clv_note(clv: ClvResult, measurements: list[Measurement]) -> str:
    """The clv stage's time as a multiple of the features stage's, and whether both fits converged."""
    features_seconds = next((m.seconds for m in measurements if m.stage == "features"), None)
    ratio = f"{measurements[-1].seconds / features_seconds:.2f}x features; " if features_seconds else ""
    return (
        f"{ratio}bg_nbd converged {clv.bg_nbd.converged} ({clv.bg_nbd.iterations} iterations), "
        f"gamma_gamma converged {clv.gamma_gamma.converged}"
    )


def train_stage(
    args: argparse.Namespace,
    measure: Callable[..., Any],
    measurements: list[Measurement],
    *,
    customers: int,
    naive_floor: Callable[[], str],
) -> None:
    """The sweep, against the naive sweep (every grid point on every customer) up to
    `--naive-max-customers`, noting whether both pick the same champion."""
    naive: dict[str, str] = {}
    trained = measure(
        "train (sweep)",
        run_train,
        CUSTOMER_FEATURES,
        floor=(lambda: naive.setdefault("champion", naive_floor()))
        if customers <= args.naive_max_customers
        else None,
    )
    if naive:
        same = trained.champion.name == naive["champion"]
        measurements[-1].note = f"naive champion {naive['champion']}: {'same' if same else 'DIFFERENT'}"
    else:
        measurements[-1].note = f"naive sweep not run above {args.naive_max_customers:,} customers"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def count_rows(spark: SparkSession, cfg: Config, table: Optional[Table]) -> int:
    """Rows of a lake table; None: of the raw transactions input, as ingest reads it."""
    if table is None:
        return read_source(spark, cfg.input.transactions, table=TRANSACTIONS.name).count()
    return read_table(spark, table_ref(cfg.lake, table)).count()


def format_table(measurements: list[Measurement]) -> list[str]:
    header = (
        f"{'stage':<14} {'input rows':>13} {'seconds':>9} {'rows/s':>11} {'JVM peak':>9} {'py peak':>8} "
        f"{'floor s':>8} {'ratio':>6} {'target':>7}  note"
    )
    lines = [header, "-" * len(header)]
    for m in measurements:
        ratio = f"{m.ratio:.2f}" if m.ratio is not None else "-"
        floor = f"{m.floor_seconds:.1f}" if m.floor_seconds is not None else "-"
        target = TARGETS.get(m.stage)
        verdict = (
            "-"
            if target is None
            else f"<={target}" + ("" if m.ratio is None else (" met" if m.ratio <= target else " MISS"))
        )
        lines.append(
            f"{m.stage:<14} {m.input_rows:>13,} {m.seconds:>9.1f} {m.input_rows / m.seconds:>11,.0f} "
            f"{m.jvm_peak_mb:>7,.0f}MB {m.python_peak_mb:>6,.0f}MB {floor:>8} {ratio:>6} {verdict:>7}"
            f"  {m.note}"
        )
    total = sum(m.seconds for m in measurements)
    jvm, python = max(m.jvm_peak_mb for m in measurements), max(m.python_peak_mb for m in measurements)
    lines.append(f"{'pipeline':<14} {'':>13} {total:>9.1f} {'':>11} {jvm:>7,.0f}MB {python:>6,.0f}MB")
    return lines


class Output:
    """Prints as it goes and keeps the text for bench/results/."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


if __name__ == "__main__":
    main()
