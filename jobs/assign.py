"""`segment assign`: score silver `customer_features` at `features.as_of_date` with the
registered model and write the gold tables in one all-or-nothing step.

* `segment_assignments`: one row per customer and assignment, partitioned by `assignment_id`
  (every read is of one assignment, and re-assigning replaces exactly one partition);
* `segment_profiles`: one row per segment and assignment, with names, descriptions and rules;
* `segment_membership`: each customer's segment over time, slowly changing type 2.

An assignment is identified by the as-of date, the registered model name and its version, so
assigning again with the same model version and date replaces that slice and never adds rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common import PhaseTimer, log, stage_main
from segmentation import tracking
from segmentation.assign import (
    ASSIGNMENT_ID,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_ID,
    SEGMENT_MEMBERSHIP,
    SEGMENT_NAME,
    SEGMENT_PROFILES,
    ClusterProfile,
    ModelIdentity,
    SegmentMatch,
    algorithm_of,
    cluster_centers,
    label_assignments,
    match_segments,
    member_overlaps,
    numeric_features,
    profile_clusters,
    profiles_frame,
    score_customers,
)
from segmentation.config import Config
from segmentation.errors import InputError
from segmentation.evaluation import hash_sample, in_hash_sample
from segmentation.features import AS_OF_DATE, CUSTOMER_FEATURES, CUSTOMER_ID
from segmentation.history import MEMBERSHIP_TRACKED, membership_rows
from segmentation.io import (
    TableRef,
    all_or_nothing,
    last_commit,
    merge_scd2,
    read_table,
    table_exists,
    table_ref,
    table_version,
    write_table,
)
from segmentation.models import feature_columns_of
from segmentation.naming import assign_names, describe
from segmentation.report import segment_table
from segmentation.rules import RULE_PREDICTION, fit_rule_tree, predict_rules, segment_rules


def assignment_id_for(as_of_date: dt.date, model: ModelIdentity) -> str:
    """`<as_of_date>_<model name>_v<version>`; a run's unregistered model: `..._run-<run id>`."""
    if "'" in model.name:
        raise InputError(f"registered model name {model.name!r}: a quote cannot go into an assignment id")
    version = f"v{model.version}" if model.version is not None else f"run-{model.run_id[:12]}"
    return f"{as_of_date.isoformat()}_{model.name}_{version}"


def run_assign(cfg: Config, spark: SparkSession) -> str:
    as_of_date = cfg.features.as_of_date
    features_ref = table_ref(cfg.lake, CUSTOMER_FEATURES)
    if not table_exists(spark, features_ref):
        raise InputError(
            f"table {CUSTOMER_FEATURES} does not exist at {features_ref}; run `segment features` first"
        )
    features_version = table_version(spark, features_ref)
    features = read_table(spark, features_ref, features_version).filter(
        F.col(AS_OF_DATE) == F.lit(as_of_date)
    )

    tracking.configure(cfg.mlflow)
    model, identity = tracking.load_model(cfg.model, cfg.assign)
    model_columns = feature_columns_of(model)
    missing = [column for column in model_columns if column not in features.columns]
    if missing:
        raise InputError(
            f"table {CUSTOMER_FEATURES}: column {missing[0]!r}, read by model {identity.name} "
            f"version {identity.version}, is missing"
        )
    algorithm = algorithm_of(model)
    assignment_id = assignment_id_for(as_of_date, identity)
    refs = {
        table: table_ref(cfg.lake, table)
        for table in (SEGMENT_ASSIGNMENTS, SEGMENT_PROFILES, SEGMENT_MEMBERSHIP)
    }

    timer = PhaseTimer()
    # Not persisted: scoring is cheap next to caching every feature column (measured on 1M
    # customers: persisting 10.7 s, profiles from the cache slower than recomputed).
    scored = score_customers(model, features)
    customers = features.count()
    if customers == 0:
        raise InputError(f"table {CUSTOMER_FEATURES}: no rows with as_of_date {as_of_date}")
    seed = cfg.sweep.seed
    with timer("rules"):
        tree_rows = hash_sample(scored, CUSTOMER_ID, cfg.assign.rules_max_rows / customers, seed)
        tree = fit_rule_tree(tree_rows, model_columns, cfg.assign.rules_max_depth, seed)
        rules = segment_rules(tree, model_columns)
    with timer("profiles"):
        profiles = profile_clusters(
            predict_rules(tree, scored, model_columns),
            numeric_features(features),
            cfg.assign.median_accuracy,
            len(cluster_centers(model)),
            RULE_PREDICTION,
            in_hash_sample(CUSTOMER_ID, cfg.assign.median_max_rows / customers, seed),
        )
    fidelity = sum(p.rule_hits for p in profiles) / customers
    with timer("identity"):
        matched = _identify(
            spark, refs[SEGMENT_PROFILES], refs[SEGMENT_ASSIGNMENTS], scored, profiles, assignment_id, cfg
        )
    for profile in profiles:
        profile.description = describe(profile)
        profile.rule = rules.get(profile.cluster, "no rule: the tree places no customer here")

    assigned_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)
    lineage = (identity, algorithm, as_of_date, features_version, assigned_at)
    assignments = label_assignments(scored, profiles, assignment_id, *lineage)
    metadata = {
        "stage": "assign",
        ASSIGNMENT_ID: assignment_id,
        "mlflow_run_id": identity.run_id,
        "model_name": identity.name,
        "model_version": identity.version,
        "as_of_date": as_of_date,
        "features_table_version": features_version,
        "customers": customers,
        "segments": len(profiles),
        "config_hash": cfg.fingerprint(),
    }
    slice_predicate = f"{ASSIGNMENT_ID} = '{assignment_id}'"
    with all_or_nothing(spark, list(refs.values())):
        with timer("write assignments"):
            write_table(
                assignments,
                refs[SEGMENT_ASSIGNMENTS],
                metadata,
                partition_by=[ASSIGNMENT_ID],
                replace_where=slice_predicate,
            )
        with timer("write profiles"):
            write_table(
                profiles_frame(spark, profiles, assignment_id, *lineage, fidelity),
                refs[SEGMENT_PROFILES],
                metadata,
                replace_where=slice_predicate,
            )
        with timer("membership"):
            # From the slice just written: narrow columns, no rescoring.
            written = read_table(spark, refs[SEGMENT_ASSIGNMENTS]).filter(
                F.col(ASSIGNMENT_ID) == assignment_id
            )
            membership_note = _update_membership(
                spark, refs[SEGMENT_MEMBERSHIP], written, as_of_date, metadata
            )
    log.info("assign phases: %s", timer)

    assignments_commit = last_commit(spark, refs[SEGMENT_ASSIGNMENTS])
    return "\n".join(
        [
            f"assignment {assignment_id}: {customers:,} customers scored by {identity.name} version "
            f"{identity.version} ({algorithm}, {len(profiles)} segments, MLflow run {identity.run_id}) "
            f"-> {refs[SEGMENT_ASSIGNMENTS]} (version {assignments_commit['version']})",
            *segment_table(profiles, matched),
            f"rules fidelity {fidelity:.1%} (decision tree of depth {cfg.assign.rules_max_depth} on "
            f"{', '.join(model_columns)})",
            membership_note,
        ]
    )


def _identify(
    spark: SparkSession,
    profiles_ref: TableRef,
    assignments_ref: TableRef,
    scored: DataFrame,
    profiles: list[ClusterProfile],
    assignment_id: str,
    cfg: Config,
) -> bool:
    """Stable ids and names for this assignment's clusters; True when a previous assignment
    existed to match against."""
    sizes = {p.cluster: p.customers for p in profiles}
    previous = _previous_profiles(spark, profiles_ref, assignment_id)
    if previous is None:
        by_size = sorted(sizes, key=lambda cluster: (-sizes[cluster], cluster))
        matches = {cluster: SegmentMatch(rank + 1, None, None) for rank, cluster in enumerate(by_size)}
    else:
        previous_id, previous_rows, next_id = previous
        overlaps = member_overlaps(
            scored, read_table(spark, assignments_ref).filter(F.col(ASSIGNMENT_ID) == F.lit(previous_id))
        )
        matches = match_segments(
            sizes,
            {row[SEGMENT_ID]: row["customers"] for row in previous_rows},
            overlaps,
            cfg.assign.min_match_jaccard,
            next_id,
        )
    previous_names = {row[SEGMENT_ID]: row[SEGMENT_NAME] for row in (previous[1] if previous else [])}
    kept = []
    for profile in profiles:
        match = matches[profile.cluster]
        profile.segment_id = match.segment_id
        profile.previous_segment_id = match.previous_segment_id
        profile.match_jaccard = match.jaccard
        if match.segment_id in previous_names:
            profile.segment_name = previous_names[match.segment_id]
            kept.append(match.segment_id)
    assign_names(profiles, kept)
    return previous is not None


def _previous_profiles(
    spark: SparkSession, profiles_ref: TableRef, assignment_id: str
) -> Optional[tuple[str, list[Any], int]]:
    """The most recently assigned other assignment: its id, its profile rows and the next
    segment id never used in any assignment. The profiles table has k rows per assignment,
    so it is read once, whole."""
    if not table_exists(spark, profiles_ref):
        return None
    every = (
        read_table(spark, profiles_ref)
        .select(ASSIGNMENT_ID, SEGMENT_ID, SEGMENT_NAME, "customers", "assigned_at")
        .collect()
    )
    others = [row for row in every if row[ASSIGNMENT_ID] != assignment_id]
    if not others:
        return None
    latest = max(others, key=lambda row: (row.assigned_at, row[ASSIGNMENT_ID]))[ASSIGNMENT_ID]
    rows = [row for row in others if row[ASSIGNMENT_ID] == latest]
    return latest, rows, max(row[SEGMENT_ID] for row in every) + 1


def _update_membership(
    spark: SparkSession,
    ref: TableRef,
    assignments: DataFrame,
    as_of_date: dt.date,
    metadata: dict[str, Any],
) -> str:
    """SCD2 merge, unless a later as-of date is already current (a backfill leaves it alone)."""
    if table_exists(spark, ref):
        latest = read_table(spark, ref).filter(F.col("is_current")).agg(F.max("valid_from")).first()[0]
        if latest is not None and latest > as_of_date:
            return (
                f"{SEGMENT_MEMBERSHIP}: unchanged, it is already current as of {latest} "
                f"(later than {as_of_date})"
            )
    before = table_version(spark, ref)
    merge_scd2(
        spark, ref, membership_rows(assignments), CUSTOMER_ID, MEMBERSHIP_TRACKED, as_of_date, metadata
    )
    commit = last_commit(spark, ref)
    if commit["version"] == before:  # Delta commits nothing when a MERGE has nothing to change
        return f"{SEGMENT_MEMBERSHIP}: no customer changed segment -> {ref} (version {before}, unchanged)"
    metrics = {name: int(value) for name, value in commit["metrics"].items() if value.isdigit()}
    closed = metrics.get("numTargetRowsUpdated", 0)
    opened = metrics.get("numTargetRowsInserted", metrics.get("numOutputRows", 0))
    version = commit["version"]
    return f"{SEGMENT_MEMBERSHIP}: {closed:,} rows closed, {opened:,} opened -> {ref} (version {version})"


def main() -> None:
    stage_main("assign")


if __name__ == "__main__":
    main()
