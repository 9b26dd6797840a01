"""What every entry point shares: the `--conf`/`--set` arguments, config loading, error reporting."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from pyspark.sql import SparkSession

from segmentation.config import Config, load_config
from segmentation.errors import SegmentationError
from segmentation.spark import get_spark

log = logging.getLogger("segmentation")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="OVERLAY",
        help="YAML overlay on conf/base.yaml: a file, or local|cluster|databricks for a shipped one; "
        "repeatable, later wins (default: local)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="override one dotted config key, e.g. --set generate.customers=1000000",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging and full tracebacks")


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(stage: Callable[[Config, SparkSession], Any], args: argparse.Namespace) -> int:
    """Load config, get the session, run one stage; people get one line on error, not a traceback."""
    configure_logging(args.verbose)
    try:
        cfg = load_config(args.conf, args.overrides)
        spark = get_spark(cfg.spark)
        result = stage(cfg, spark)
    except SegmentationError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result is not None:
        print(result)
    return 0


def stage_main(command: str) -> None:
    """`python jobs/<stage>.py ...` under spark-submit and the wheel's `segment-<stage>` entry
    points (Databricks `python_wheel_task`): the `segment <command>` subcommand, same options."""
    from jobs.cli import main  # imported here: the CLI imports every stage module

    main([command, *sys.argv[1:]])


class PhaseTimer:
    """Wall-clock seconds per named phase of a stage, for the log and the benchmarks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started

    def __str__(self) -> str:
        return ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in self.seconds.items())
