"""The `segment` command: one subcommand per stage, all taking `--conf` and `--set`.

A few subcommands have their own options. Those that choose what a stage does (`--as-of-date`,
`--model-version`, `--run-id`) are config keys under another name, so a scheduler can pass
either; the rest (`--from`, `--to`, `--assignment-id`, `--version`) only select what to read.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from jobs.assign import run_assign
from jobs.build_features import run_features
from jobs.common import add_config_arguments, run_stage
from jobs.generate_data import run_generate
from jobs.history import run_diff, run_history, run_show
from jobs.ingest import run_ingest
from jobs.pipeline import run_pipeline
from jobs.report import run_report
from jobs.train import run_train


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    config_key: Optional[str] = None  # set: the option is `--set config_key=value`
    dest: Optional[str] = None  # else: passed to the stage as this keyword
    type: Callable[[str], Any] = str


AS_OF_DATE = Option("--as-of-date", "features as of this date (YYYY-MM-DD)", config_key="features.as_of_date")
ASSIGNMENT = Option("--assignment-id", "an assignment id (default: the latest)", dest="assignment_id")

COMMANDS: dict[str, tuple[Callable, str, tuple[Option, ...]]] = {
    "generate": (run_generate, "generate synthetic customers and transactions with planted personas", ()),
    "ingest": (run_ingest, "validate and clean raw input into bronze Delta tables", ()),
    "features": (run_features, "build silver customer_features as of features.as_of_date", (AS_OF_DATE,)),
    "train": (run_train, "sweep clustering models in MLflow and register the champion", (AS_OF_DATE,)),
    "assign": (
        run_assign,
        "score customers with the registered model into the gold segment tables",
        (
            AS_OF_DATE,
            Option(
                "--model-version", "a registered model version instead of the alias", "assign.model_version"
            ),
            Option("--run-id", "an MLflow run's logged model instead of the alias", "assign.run_id"),
        ),
    ),
    "report": (run_report, "write the HTML report of an assignment and log it to MLflow", (ASSIGNMENT,)),
    "history": (run_history, "list the assignment versions of segment_assignments", ()),
    "show": (
        run_show,
        "summarise one assignment, by id or by Delta version (time travel)",
        (ASSIGNMENT, Option("--version", "a Delta version of segment_assignments", dest="version", type=int)),
    ),
    "diff": (
        run_diff,
        "migration matrix between two assignments (default: the two latest)",
        (
            Option("--from", "assignment id or Delta version before", dest="source"),
            Option("--to", "assignment id or Delta version after", dest="target"),
        ),
    ),
    "pipeline": (
        run_pipeline,
        "run every stage in order: ingest, features, train, assign, report",
        (AS_OF_DATE,),
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segment", description="Customer segmentation on Spark.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text, options) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        add_config_arguments(command)
        for option in options:
            command.add_argument(
                option.flag, help=option.help, type=option.type, dest=option.dest or option.config_key
            )
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    stage, _, options = COMMANDS[args.command]
    keywords = {}
    for option in options:
        value = getattr(args, option.dest or option.config_key)
        if value is None:
            continue
        if option.config_key:
            args.overrides.append(f"{option.config_key}={_yaml_string(value)}")
        else:
            keywords[option.dest] = value
    sys.exit(run_stage(functools.partial(stage, **keywords) if keywords else stage, args))


def _yaml_string(value: str) -> str:
    """A single-quoted YAML scalar, so a run id such as 1234e567 stays a string."""
    return "'" + str(value).replace("'", "''") + "'"


if __name__ == "__main__":
    main()
