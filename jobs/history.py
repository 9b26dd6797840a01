"""`segment history`, `segment show` and `segment diff`: past assignment versions read back
from the gold tables, by assignment id or by Delta version (time travel)."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common import stage_main
from segmentation.assign import (
    ASSIGNMENT_ID,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_ID,
    SEGMENT_MIGRATIONS,
    SEGMENT_NAME,
)
from segmentation.config import Config
from segmentation.errors import InputError
from segmentation.history import MigrationSummary, assignment_versions, migration
from segmentation.io import read_assignments, table_history, table_ref, write_table


def run_history(cfg: Config, spark: SparkSession) -> str:
    ref = table_ref(cfg.lake, SEGMENT_ASSIGNMENTS)
    versions = assignment_versions(table_history(spark, ref))
    if not versions:
        return f"no assignments yet in {ref}; run `segment assign`"
    lines = [
        f"{'delta version':>13}  {'written (UTC)':<19}  {'assignment_id':<44} {'model':<28} "
        f"{'as of':<10} {'customers':>10}"
    ]
    for v in versions:
        lines.append(
            f"{v['version']:>13}  {v['timestamp']:%Y-%m-%d %H:%M:%S}  {v[ASSIGNMENT_ID]:<44} "
            f"{v['model_name'] + ' v' + str(v['model_version']):<28} {v['as_of_date']:<10} "
            f"{v['customers']:>10,}"
        )
    return "\n".join(lines)


def run_show(
    cfg: Config, spark: SparkSession, assignment_id: Optional[str] = None, version: Optional[int] = None
) -> str:
    """One assignment, summarised per segment (the rows stay in the table)."""
    assignment_id, rows = read_assignments(spark, cfg.lake, assignment_id, version)
    first = rows.select(
        "model_name", "model_version", "algorithm", "features_as_of_date", "assigned_at"
    ).first()
    segments = (
        rows.groupBy(SEGMENT_ID, SEGMENT_NAME)
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.avg("segment_probability").alias("mean_probability"),
            F.avg("distance_to_centroid").alias("mean_distance"),
        )
        .orderBy(SEGMENT_ID)
        .collect()
    )
    at = f" at Delta version {version}" if version is not None else ""
    lines = [
        f"assignment {assignment_id}{at}: {first.model_name} version {first.model_version} "
        f"({first.algorithm}), features as of {first.features_as_of_date}, assigned {first.assigned_at}",
        f"  {'id':>3}  {'segment':<22} {'customers':>10} {'mean probability':>17} {'mean distance':>14}",
    ]
    lines += [
        f"  {s[SEGMENT_ID]:>3}  {s[SEGMENT_NAME]:<22} {s.customers:>10,} {s.mean_probability:>17.3f} "
        f"{s.mean_distance:>14.3f}"
        for s in segments
    ]
    return "\n".join(lines)


def run_diff(
    cfg: Config, spark: SparkSession, source: Optional[str] = None, target: Optional[str] = None
) -> str:
    """Migration between two assignments (default: the two most recent), printed and written to
    gold `segment_migrations`. Each side is an assignment id or a Delta version number."""
    if source is None or target is None:
        written = list(
            dict.fromkeys(
                v[ASSIGNMENT_ID]
                for v in reversed(
                    assignment_versions(table_history(spark, table_ref(cfg.lake, SEGMENT_ASSIGNMENTS)))
                )
            )
        )
        target = target or (written[0] if written else None)
        earlier = [a for a in written if a != target]
        source = source or (earlier[0] if earlier else None)
        if source is None or target is None:
            raise InputError(
                f"table {SEGMENT_ASSIGNMENTS}: diff needs two assignments; name them with --from and --to"
            )
    source_id, before = _read_side(spark, cfg, source)
    target_id, after = _read_side(spark, cfg, target)
    summary, cells = summarize_migration(spark, before, after)
    ref = table_ref(cfg.lake, SEGMENT_MIGRATIONS)
    write_table(
        cells.select(
            F.lit(source_id).alias("from_assignment_id"),
            F.lit(target_id).alias("to_assignment_id"),
            "*",
            F.lit(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).alias("computed_at"),
        ),
        ref,
        {"stage": "diff", "from_assignment_id": source_id, "to_assignment_id": target_id},
        replace_where=f"from_assignment_id = '{source_id}' AND to_assignment_id = '{target_id}'",
    )
    retention = ", ".join(
        f"{segment} {summary.names[segment]} {share:.0%}"
        for segment, share in sorted(summary.retention.items())
    )
    return "\n".join(
        [
            f"migration {source_id} -> {target_id} (rows: before, columns: after; share of the row)",
            *summary.matrix_lines(),
            f"customers new: {summary.new_customers:,}; gone: {summary.gone_customers:,}",
            f"retention (same segment id after): {retention}",
            f"written to {ref}",
        ]
    )


def summarize_migration(
    spark: SparkSession, before: DataFrame, after: DataFrame
) -> tuple[MigrationSummary, DataFrame]:
    """The migration summary and its cells as a DataFrame (at most (k + 1)^2 rows, computed once)."""
    cells = migration(before, after)
    rows = cells.collect()
    return MigrationSummary.from_cells([row.asDict() for row in rows]), spark.createDataFrame(
        rows, cells.schema
    )


def _read_side(spark: SparkSession, cfg: Config, side: str):
    if side.isdigit():
        return read_assignments(spark, cfg.lake, version=int(side))
    return read_assignments(spark, cfg.lake, assignment_id=side)


def main() -> None:
    stage_main("history")


if __name__ == "__main__":
    main()
