"""The `segment` command: one subcommand per stage, all taking `--conf` and `--set`.

This module only parses arguments and prints: each subcommand calls one stage function of
`segmentation.stages`, which returns a result object, and the formatter below turns that
result into text. A few subcommands have their own options. Those that choose what a stage does
(`--as-of-date`, `--model-version`, `--run-id`) are config keys under another name, so a
scheduler can pass either; the rest (`--from`, `--to`, `--assignment-id`, `--version`) only
select what to read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from segmentation.config import load_config
from segmentation.errors import SegmentationError
from segmentation.history import MigrationSummary
from segmentation.profiles import SegmentSummary
from segmentation.report import eta_text, identity_text
from segmentation.spark import get_spark
from segmentation.stages.assign import AssignResult, run_assign
from segmentation.stages.clv import ClvResult, run_clv
from segmentation.stages.evaluate import EvaluationResult, run_evaluate
from segmentation.stages.features import FeaturesResult, run_features
from segmentation.stages.generate import GenerateResult, run_generate
from segmentation.stages.history import (
    DiffResult,
    HistoryResult,
    ShowResult,
    run_diff,
    run_history,
    run_show,
)
from segmentation.stages.ingest import IngestedTable, IngestResult, run_ingest
from segmentation.stages.pipeline import PipelineResult, run_pipeline
from segmentation.stages.report import ReportResult, run_report
from segmentation.stages.train import TrainResult, run_train
from segmentation.tables import CUSTOMER_COUNT, SEGMENT_MEMBERSHIP, SHARE_OF_FROM
from segmentation.usefulness import SegmentationOutcome

log = logging.getLogger("segmentation")

RULE = "=" * 72
_LEADERBOARD_ROWS = 5


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    config_key: Optional[str] = None  # set: the option is `--set config_key=value`
    dest: Optional[str] = None  # else: passed to the stage as this keyword
    type: Callable[[str], Any] = str


@dataclass(frozen=True)
class Command:
    run: Callable[..., Any]
    help: str
    options: tuple[Option, ...] = ()


AS_OF_DATE = Option("--as-of-date", "features as of this date (YYYY-MM-DD)", config_key="features.as_of_date")
ASSIGNMENT = Option("--assignment-id", "an assignment id (default: the latest)", dest="assignment_id")

COMMANDS: dict[str, Command] = {
    "generate": Command(run_generate, "generate synthetic customers and transactions with planted personas"),
    "ingest": Command(run_ingest, "validate and clean raw input into bronze Delta tables"),
    "features": Command(
        run_features, "build silver customer_features as of features.as_of_date", (AS_OF_DATE,)
    ),
    "clv": Command(
        run_clv,
        "fit BG/NBD and Gamma-Gamma: P(alive), expected purchases and CLV per customer",
        (
            AS_OF_DATE,
            Option(
                "--holdout-end",
                "compare the predictions with what customers did up to this date (YYYY-MM-DD)",
                dest="holdout_end",
                type=dt.date.fromisoformat,
            ),
        ),
    ),
    "train": Command(run_train, "sweep clustering models in MLflow and register the champion", (AS_OF_DATE,)),
    "assign": Command(
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
    "report": Command(
        run_report, "write the HTML report of an assignment and log it to MLflow", (ASSIGNMENT,)
    ),
    "history": Command(run_history, "list the published assignments (segment_runs)"),
    "show": Command(
        run_show,
        "summarise one published assignment, by id or by the Delta version that committed it",
        (
            ASSIGNMENT,
            Option(
                "--version",
                "the Delta version of segment_assignments that committed an assignment (segment history)",
                dest="version",
                type=int,
            ),
        ),
    ),
    "diff": Command(
        run_diff,
        "migration matrix between two assignments (default: the two latest)",
        (
            Option("--from", "assignment id or Delta version before", dest="source"),
            Option("--to", "assignment id or Delta version after", dest="target"),
        ),
    ),
    "evaluate": Command(
        run_evaluate,
        "next-period behaviour per segment (buy again, spend, eta squared) against RFM-score segments",
        (
            Option(
                "--as-of-date",
                "the assignment as of this date (YYYY-MM-DD; default: that of --assignment-id, else "
                "features.as_of_date)",
                dest="as_of_date",
                type=dt.date.fromisoformat,
            ),
            Option(
                "--horizon-days",
                "the next period: dates in (as-of date, as-of date + days] (default evaluate.horizon_days)",
                dest="horizon_days",
                type=int,
            ),
            Option(
                "--assignment-id",
                "a published assignment id (default: the latest published as of --as-of-date)",
                dest="assignment_id",
            ),
        ),
    ),
    "pipeline": Command(
        run_pipeline, "run every stage in order: ingest, features, clv, train, assign, report", (AS_OF_DATE,)
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segment", description="Customer segmentation on Spark.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help, description=command.help)
        _add_config_arguments(sub)
        for option in command.options:
            sub.add_argument(
                option.flag, help=option.help, type=option.type, dest=option.dest or option.config_key
            )
    return parser


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
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


def main(argv: Optional[Sequence[str]] = None) -> None:
    """`segment <command> ...`; exits 0 on success, 1 with a one-line error otherwise."""
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    keywords = {}
    for option in command.options:
        value = getattr(args, option.dest or option.config_key)
        if value is None:
            continue
        if option.config_key:
            args.overrides.append(f"{option.config_key}={_yaml_string(value)}")
        else:
            keywords[option.dest] = value
    sys.exit(_run(functools.partial(command.run, **keywords), args))


def _run(stage: Callable[..., Any], args: argparse.Namespace) -> int:
    """Load config, get the session, run one stage, print its result; people get one line on
    error, not a traceback."""
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
    print(format_result(result))
    return 0


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A Spark Connect client logs every error the server returns, with its stack, before raising
    # it, including those the code expects and handles (a table that does not exist yet). Its
    # logger is off unless SPARK_CONNECT_LOG_LEVEL is set, but MLflow's logging set-up turns
    # every existing logger back on; the errors that matter are raised and reported anyway.
    if not verbose and "SPARK_CONNECT_LOG_LEVEL" not in os.environ:
        logging.getLogger("pyspark.sql.connect.logging").setLevel(logging.CRITICAL)


def _yaml_string(value: str) -> str:
    """A single-quoted YAML scalar, so a run id such as 1234e567 stays a string."""
    return "'" + str(value).replace("'", "''") + "'"


# Formatting: one function per result type; nothing below touches Spark, storage or MLflow.


def format_result(result: Any) -> str:
    formatter = _FORMATTERS[type(result)]
    return "\n".join(formatter(result))


def _generate_lines(result: GenerateResult) -> list[str]:
    return [
        f"generated {result.customers:,} customers",
        f"  transactions  {result.transactions_path} ({result.format})",
        f"  customers     {result.customers_path} ({result.format})",
        f"  personas      {result.personas.location}",
    ]


def _ingest_lines(result: IngestResult) -> list[str]:
    lines = ["ingested"]
    for table in result.tables:
        written, rejected, report = table.written, table.rejected, table.report
        lines += [
            f"  {table.table:<22}{written.rows or 0:>12,} rows  -> {written.location}",
            f"  {rejected.table:<22}{report.rows_rejected:>12,} rows  -> {rejected.location}"
            f"  ({report.describe()}; {_duplicates_text(table)})",
        ]
    return lines


def _duplicates_text(table: IngestedTable) -> str:
    if table.dedupe == "exact":
        return f"{table.duplicates_dropped:,} exact duplicates dropped"
    if table.dedupe == "key":
        return f"{table.duplicates_dropped:,} lines with a repeated ingest.dedupe_key dropped"
    return f"{table.possible_duplicates:,} identical lines kept as separate purchases (possible duplicates)"


def _features_lines(result: FeaturesResult) -> list[str]:
    return [
        f"customer features as of {result.as_of_date}: {result.customers:,} customers, "
        f"{result.columns} columns -> {result.written.location} (version {result.written.version})"
    ]


def _clv_lines(result: ClvResult) -> list[str]:
    bg, gg = result.bg_nbd, result.gamma_gamma
    correlation = result.frequency_spend_correlation
    lines = [
        f"customer value as of {result.as_of_date} ({result.time_unit}): {result.customers:,} customers, "
        f"{result.repeat_customers:,} with repeat purchases -> {result.values.location} "
        f"(version {result.values.version}); MLflow run {result.mlflow_run_id}",
        f"  BG/NBD       r={bg.r:.4f} alpha={bg.alpha:.4f} a={bg.a:.4f} b={bg.b:.4f}  "
        f"log-likelihood {bg.log_likelihood:,.2f}{'' if bg.converged else '  NOT CONVERGED'}",
        f"  Gamma-Gamma  p={gg.p:.4f} q={gg.q:.4f} v={gg.v:.4f}  log-likelihood {gg.log_likelihood:,.2f}"
        f"{'' if gg.converged else '  NOT CONVERGED'}; corr(frequency, spend) "
        f"{'-' if correlation is None else f'{correlation:.3f}'}",
        f"  fits -> {result.fits.location} (version {result.fits.version})",
    ]
    holdout = result.holdout
    if holdout is not None:
        lines += [
            f"  holdout to {holdout.holdout_end} ({holdout.periods:.1f} {result.time_unit}): repeat "
            f"purchases predicted {holdout.predicted_total:,.1f}, actual {holdout.actual_total:,}; "
            f"mean absolute error per customer {holdout.mean_absolute_error:.3f}",
            f"  {'x':>4} {'customers':>10} {'predicted':>10} {'actual':>8}",
            *[
                f"  {(str(x) + '+') if x == holdout.by_frequency[-1][0] and x >= 7 else str(x):>4} "
                f"{n:>10,} {predicted:>10.3f} {actual:>8.3f}"
                for x, n, predicted, actual in holdout.by_frequency
            ],
        ]
    return lines


def _train_lines(result: TrainResult) -> list[str]:
    lines = [
        f"sweep of {len(result.leaderboard)} fits on {result.sweep_customers:,} of {result.customers:,} "
        f"customers (features as of {result.as_of_date}, table version {result.features_version}) "
        f"-> MLflow run {result.sweep_run_id}",
        f"  {'fit':<28} {'silhouette':>10} {'smallest':>9} {'stability':>9}  verdict",
    ]
    for row in result.leaderboard[:_LEADERBOARD_ROWS]:
        stability = f"{row.stability:.3f}" if row.stability is not None else "-"
        silhouette = f"{row.silhouette:.4f}" if row.silhouette is not None else "None"
        smallest = f"{row.min_segment_share:.2%}" if row.min_segment_share is not None else "-"
        lines.append(
            f"  {row.algorithm + ' k=' + str(row.k):<28} {silhouette:>10} {smallest:>9} {stability:>9}  "
            f"{row.verdict}"
        )
    return [*lines, *_champion_lines(result)]


def _champion_lines(result: TrainResult) -> list[str]:
    champion, registered = result.champion, result.registered
    return [
        f"champion: {champion.name}, {champion.segments} segments, silhouette {champion.silhouette:.4f}, "
        f"smallest segment {champion.min_segment_share:.2%}, stability {champion.stability:.3f}",
        f"registered: {registered.name} version {registered.version}, alias '{registered.alias}'",
    ]


def _assign_lines(result: AssignResult) -> list[str]:
    model = result.model
    return [
        f"assignment {result.assignment_id}: {result.customers:,} customers scored by {model.name} version "
        f"{model.version} ({result.algorithm}, {len(result.segments)} segments, MLflow run {model.run_id}) "
        f"-> {result.assignments.location} (version {result.assignments.version})",
        *segment_table(result.segments, matched=result.matched),
        f"rules fidelity {result.rules_fidelity:.1%} (one decision tree of depth {result.rules_max_depth} "
        f"per segment on {', '.join(result.feature_columns)}):",
        *[
            f"  {r.segment_id:>3}  recall {r.recall:>6.1%}  precision "
            f"{'-' if r.precision is None else format(r.precision, '.1%'):>6}  {r.rule}"
            for r in result.rules
        ],
        f"boundary customers (top segment probability below {result.boundary_probability:g}): "
        f"{result.boundary_share:.1%}",
        _membership_line(result),
    ]


def _membership_line(result: AssignResult) -> str:
    update, table = result.membership, SEGMENT_MEMBERSHIP.name
    if update.status == "backfill":
        return (
            f"{table}: unchanged, it is already current as of {update.current_as_of} "
            f"(later than {result.as_of_date})"
        )
    if update.status == "unchanged":
        return (
            f"{table}: no customer changed segment -> {update.location} (version {update.version}, unchanged)"
        )
    return (
        f"{table}: {update.closed:,} rows closed, {update.opened:,} opened -> {update.location} "
        f"(version {update.version})"
    )


def segment_table(segments: Sequence[SegmentSummary], *, matched: bool = False) -> list[str]:
    """Segments as text, largest first, with their identity to the previous assignment when
    there was one."""
    header = f"  {'id':>3}  {'segment':<22} {'customers':>10} {'share':>7} {'revenue':>8}"
    lines = [header + ("  identity (Jaccard)" if matched else "")]
    for s in sorted(segments, key=lambda s: (-s.customers, s.segment_id)):
        line = (
            f"  {s.segment_id:>3}  {s.segment_name:<22} {s.customers:>10,} {s.customer_share:>7.1%} "
            f"{s.revenue_share:>8.1%}"
        )
        lines.append(line + ("  " + identity_text(s) if matched else ""))
    return lines


def _report_lines(result: ReportResult) -> list[str]:
    uri, run_id = result.tracking_uri, result.mlflow_run_id
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        ui = (
            f"mlflow ui: make mlflow-ui (or .venv/bin/mlflow ui --backend-store-uri {uri}), then "
            f"http://127.0.0.1:5000/#/experiments/{result.experiment_id}/runs/{run_id}"
        )
    else:
        ui = f"mlflow: experiment {result.experiment_id}, run {run_id} at {uri}"
    return [
        f"segments of assignment {result.assignment_id} ({result.model_name} version {result.model_version}, "
        f"{result.algorithm}):",
        *segment_table(result.segments, matched=result.matched),
        _next_period_line(result),
        f"report: {result.path} (logged to MLflow run {run_id} under {result.artifact_dir}/)",
        ui,
        f"open the report: xdg-open {result.path}   (or file://{result.path})",
    ]


def _next_period_line(result: ReportResult) -> str:
    """The report's next-period figures beside the RFM-score baseline's, or why there are none."""
    evaluation = result.evaluation
    if evaluation is None:
        return f"next period: {result.evaluation_note}"
    segments, rfm = evaluation.segments, evaluation.rfm
    return (
        f"next period ({evaluation.horizon_days} days): eta squared of spend "
        f"{eta_text(segments.eta_squared_spend)} (RFM-score baseline {eta_text(rfm.eta_squared_spend)}), "
        f"of buying again {eta_text(segments.eta_squared_bought_again)} "
        f"({eta_text(rfm.eta_squared_bought_again)})"
    )


def _history_lines(result: HistoryResult) -> list[str]:
    if not result.versions:
        return [f"no published assignment yet in {result.location}; run `segment assign`"]
    lines = [
        f"{'delta version':>13}  {'published (UTC)':<19}  {'assignment_id':<44} {'model':<28} "
        f"{'as of':<10} {'customers':>10}"
    ]
    for v in result.versions:
        lines.append(
            f"{v.version:>13}  {v.timestamp:%Y-%m-%d %H:%M:%S}  {v.assignment_id:<44} "
            f"{v.model_name + ' v' + str(v.model_version):<28} {v.as_of_date!s:<10} {v.customers:>10,}"
        )
    return lines


def _show_lines(result: ShowResult) -> list[str]:
    at = f" at Delta version {result.delta_version}" if result.delta_version is not None else ""
    lines = [
        f"assignment {result.assignment_id}{at}: {result.model_name} version {result.model_version} "
        f"({result.algorithm}), features as of {result.features_as_of_date}, assigned {result.assigned_at}",
        f"  {'id':>3}  {'segment':<22} {'customers':>10} {'mean probability':>17} {'mean distance':>14}",
    ]
    return lines + [
        f"  {s.segment_id:>3}  {s.segment_name:<22} {s.customers:>10,} {s.mean_probability:>17.3f} "
        f"{s.mean_distance:>14.3f}"
        for s in result.segments
    ]


def _diff_lines(result: DiffResult) -> list[str]:
    summary = result.summary
    retention = ", ".join(
        f"{segment} {summary.names[segment]} {share:.0%}"
        for segment, share in sorted(summary.retention.items())
    )
    return [
        f"migration {result.source_id} -> {result.target_id} "
        "(rows: before, columns: after; share of the row)",
        *matrix_lines(summary),
        f"customers new: {summary.new_customers:,}; gone: {summary.gone_customers:,}",
        f"retention (same segment id after): {retention}",
        f"written to {result.written.location}",
    ]


def matrix_lines(summary: MigrationSummary) -> list[str]:
    """The migration matrix as text: rows "from", columns "to", counts with row shares."""
    sources, targets = summary.sources(), summary.targets()
    texts = {}
    for source in sources:
        for target in targets:
            cell = summary.cell(source, target)
            texts[source, target] = f"{cell[CUSTOMER_COUNT]:,} ({cell[SHARE_OF_FROM]:.0%})" if cell else "-"
    corner = "from \\ to"
    width = max(*(len(summary.label(t, "gone")) for t in targets), *(len(t) for t in texts.values())) + 2
    first = max(len(corner), *(len(summary.label(source, "new")) for source in sources)) + 2
    lines = [f"{corner:<{first}}" + "".join(f"{summary.label(t, 'gone'):>{width}}" for t in targets)]
    for source in sources:
        row = f"{summary.label(source, 'new'):<{first}}"
        lines.append(row + "".join(f"{texts[source, target]:>{width}}" for target in targets))
    return lines


def _evaluate_lines(result: EvaluationResult) -> list[str]:
    return [
        f"assignment {result.assignment_id}: next {result.horizon_days} days after {result.as_of_date} "
        f"(to {result.period_end}, transactions version {result.transactions_version}), "
        f"{result.segments.customers:,} customers; MLflow run {result.mlflow_run_id}",
        *outcome_table("segments", result.segments),
        *outcome_table("RFM-score baseline (quintiles, cells by score sum)", result.rfm),
    ]


def outcome_table(title: str, outcome: SegmentationOutcome) -> list[str]:
    """One segmentation's next-period table: who bought again, spend, and eta squared."""
    lines = [
        f"  {title}: eta squared of spend {eta_text(outcome.eta_squared_spend)}, of buying again "
        f"{eta_text(outcome.eta_squared_bought_again)}; {outcome.bought_again_share:.1%} bought again, "
        f"{outcome.mean_spend:,.2f} spent per customer",
        f"    {'id':>3}  {'segment':<22} {'customers':>10} {'bought again':>12} {'spend/customer':>14} "
        f"{'spend share':>11}",
    ]
    for s in outcome.segments:
        share = "-" if s.spend_share is None else f"{s.spend_share:.1%}"
        lines.append(
            f"    {s.segment_id:>3}  {s.segment_name:<22} {s.customers:>10,} {s.bought_again_share:>12.1%} "
            f"{s.mean_spend:>14,.2f} {share:>11}"
        )
    return lines


def _pipeline_lines(result: PipelineResult) -> list[str]:
    """Every stage's output, then a closing summary: the champion and the segments (from the
    report, which ends with the commands to open the MLflow UI and the report)."""
    return [
        *_ingest_lines(result.ingest),
        *_features_lines(result.features),
        *(_clv_lines(result.clv) if result.clv else []),
        *_train_lines(result.train),
        *_assign_lines(result.assign),
        "",
        RULE,
        *_champion_lines(result.train),
        *_report_lines(result.report),
    ]


_FORMATTERS: dict[type, Callable[[Any], list[str]]] = {
    GenerateResult: _generate_lines,
    IngestResult: _ingest_lines,
    FeaturesResult: _features_lines,
    ClvResult: _clv_lines,
    TrainResult: _train_lines,
    AssignResult: _assign_lines,
    ReportResult: _report_lines,
    HistoryResult: _history_lines,
    ShowResult: _show_lines,
    DiffResult: _diff_lines,
    EvaluationResult: _evaluate_lines,
    PipelineResult: _pipeline_lines,
}


if __name__ == "__main__":
    main()
