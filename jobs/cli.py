"""The `segment` command: one subcommand per stage, all taking `--conf` and `--set`."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from jobs.build_features import run_features
from jobs.common import add_config_arguments, run_stage
from jobs.generate_data import run_generate
from jobs.ingest import run_ingest
from jobs.pipeline import run_pipeline
from jobs.train import run_train

COMMANDS = {
    "generate": (run_generate, "generate synthetic customers and transactions with planted personas"),
    "ingest": (run_ingest, "validate and clean raw input into bronze Delta tables"),
    "features": (run_features, "build silver customer_features as of features.as_of_date"),
    "train": (run_train, "sweep clustering models in MLflow and register the champion"),
    "pipeline": (run_pipeline, "run every stage in order: ingest, features, train"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segment", description="Customer segmentation on Spark.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        add_config_arguments(commands.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    stage, _ = COMMANDS[args.command]
    sys.exit(run_stage(stage, args))


if __name__ == "__main__":
    main()
