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
import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation import tracking
from segmentation.assign import (
    algorithm_of,
    assignment_id_for,
    cluster_centers,
    identify_segments,
    label_assignments,
    member_overlaps,
    previous_assignment,
    score_customers,
)
from segmentation.config import Config
from segmentation.errors import InputError
from segmentation.evaluation import hash_sample, in_hash_sample
from segmentation.io import (
    TableRef,
    TableWrite,
    all_or_nothing,
    read_table,
    table_exists,
    table_ref,
    write_table,
)
from segmentation.lineage import Lineage, ModelIdentity
from segmentation.membership import MembershipUpdate, update_membership
from segmentation.models import feature_columns_of
from segmentation.naming import describe
from segmentation.profiles import (
    ClusterProfile,
    RulePredictions,
    SegmentSummary,
    numeric_features,
    profile_clusters,
    profiles_frame,
)
from segmentation.rules import RULE_PREDICTION, fit_rule_tree, predict_rules, segment_rules
from segmentation.stages.features import read_customer_features
from segmentation.tables import (
    AS_OF_DATE,
    ASSIGNED_AT,
    ASSIGNMENT_ID,
    CUSTOMER_COUNT,
    CUSTOMER_FEATURES,
    CUSTOMER_ID,
    FEATURES_TABLE_VERSION,
    MLFLOW_RUN_ID,
    MODEL_NAME,
    MODEL_VERSION,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_ID,
    SEGMENT_MEMBERSHIP,
    SEGMENT_NAME,
    SEGMENT_PROFILES,
    clv_in,
)
from segmentation.timing import PhaseTimer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AssignResult:
    assignment_id: str
    as_of_date: dt.date
    customers: int
    model: ModelIdentity
    algorithm: str
    segments: tuple[SegmentSummary, ...]
    matched: bool  # a previous assignment existed to match segments against
    rules_fidelity: float
    rules_max_depth: int
    feature_columns: tuple[str, ...]
    assignments: TableWrite
    profiles: TableWrite
    membership: MembershipUpdate
    phase_seconds: dict[str, float]


@dataclass(frozen=True)
class _Scored:
    """One assignment in the making: the model, its scored customers and where it goes."""

    model: PipelineModel
    identity: ModelIdentity
    features: DataFrame
    features_version: int
    scored: DataFrame
    customers: int
    refs: dict[str, TableRef]
    timer: PhaseTimer = field(default_factory=PhaseTimer)


def run_assign(cfg: Config, spark: SparkSession) -> AssignResult:
    scoring = _score(cfg, spark)
    as_of_date = cfg.features.as_of_date
    assignment_id = assignment_id_for(as_of_date, scoring.identity)
    timer = scoring.timer
    profiles, fidelity, matched = _profile(cfg, spark, scoring, assignment_id=assignment_id)
    lineage = Lineage(
        model=scoring.identity,
        algorithm=algorithm_of(scoring.model),
        segments=len(profiles),
        as_of_date=as_of_date,
        features_version=scoring.features_version,
        assigned_at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None),
    )
    metadata = {
        "stage": "assign",
        ASSIGNMENT_ID: assignment_id,
        MLFLOW_RUN_ID: scoring.identity.run_id,
        MODEL_NAME: scoring.identity.name,
        MODEL_VERSION: scoring.identity.version,
        AS_OF_DATE: as_of_date,
        FEATURES_TABLE_VERSION: scoring.features_version,
        CUSTOMER_COUNT: scoring.customers,
        "segments": len(profiles),
        "config_hash": cfg.fingerprint(),
    }
    written = _write_gold(
        spark,
        scoring,
        profiles,
        lineage=lineage,
        rules_fidelity=fidelity,
        metadata=metadata,
    )
    log.info("assign phases: %s", timer)
    return AssignResult(
        assignment_id=assignment_id,
        as_of_date=as_of_date,
        customers=scoring.customers,
        model=scoring.identity,
        algorithm=lineage.algorithm,
        segments=tuple(SegmentSummary.of(p) for p in profiles),
        matched=matched,
        rules_fidelity=fidelity,
        rules_max_depth=cfg.assign.rules_max_depth,
        feature_columns=tuple(feature_columns_of(scoring.model)),
        assignments=written[0],
        profiles=written[1],
        membership=written[2],
        phase_seconds=dict(timer.seconds),
    )


def _score(cfg: Config, spark: SparkSession) -> _Scored:
    as_of_date = cfg.features.as_of_date
    features, features_version = read_customer_features(spark, cfg)
    tracking.configure(cfg.mlflow)
    model, identity = tracking.load_model(cfg.model, cfg.assign)
    missing = [column for column in feature_columns_of(model) if column not in features.columns]
    if missing:
        raise InputError(
            f"table {CUSTOMER_FEATURES.name}: column {missing[0]!r}, read by model {identity.name} "
            f"version {identity.version}, is missing"
        )
    # Not persisted: scoring is cheap next to caching every feature column (measured on 1M
    # customers: persisting 10.7 s, profiles from the cache slower than recomputed).
    scored = score_customers(model, features)
    customers = features.count()
    if customers == 0:
        raise InputError(f"table {CUSTOMER_FEATURES.name}: no rows with as_of_date {as_of_date}")
    refs = {
        table.name: table_ref(cfg.lake, table)
        for table in (SEGMENT_ASSIGNMENTS, SEGMENT_PROFILES, SEGMENT_MEMBERSHIP)
    }
    return _Scored(model, identity, features, features_version, scored, customers, refs)


def _profile(
    cfg: Config, spark: SparkSession, scoring: _Scored, *, assignment_id: str
) -> tuple[list[ClusterProfile], float, bool]:
    """Profiles with rules, stable ids, names and descriptions; the rules' fidelity; whether a
    previous assignment was matched against."""
    columns = feature_columns_of(scoring.model)
    seed, customers, timer = cfg.sweep.seed, scoring.customers, scoring.timer
    with timer("rules"):
        tree_rows = hash_sample(scoring.scored, CUSTOMER_ID, cfg.assign.rules_max_rows / customers, seed=seed)
        tree = fit_rule_tree(tree_rows, columns, max_depth=cfg.assign.rules_max_depth, seed=seed)
        rules = segment_rules(tree, columns)
    with timer("profiles"):
        profiles = profile_clusters(
            predict_rules(tree, scoring.scored, columns),
            numeric_features(scoring.features),
            median_accuracy=cfg.assign.median_accuracy,
            rules=RulePredictions(RULE_PREDICTION, len(cluster_centers(scoring.model))),
            median_sample=in_hash_sample(CUSTOMER_ID, cfg.assign.median_max_rows / customers, seed),
            value_column=_value_column(cfg, scoring.features),
        )
    fidelity = sum(p.rule_hits for p in profiles) / customers
    with timer("identity"):
        previous = _previous(spark, scoring.refs[SEGMENT_PROFILES.name], assignment_id)
        overlaps = {}
        if previous is not None:
            before = read_table(spark, scoring.refs[SEGMENT_ASSIGNMENTS.name]).filter(
                F.col(ASSIGNMENT_ID) == F.lit(previous.assignment_id)
            )
            overlaps = member_overlaps(scoring.scored, before)
        identify_segments(profiles, previous, overlaps, min_jaccard=cfg.assign.min_match_jaccard)
    for profile in profiles:
        profile.description = describe(profile)
        profile.rule = rules.get(profile.cluster, "no rule: the tree places no customer here")
    return profiles, fidelity, previous is not None


def _value_column(cfg: Config, features: DataFrame) -> Optional[str]:
    """The customers' expected value over the longest horizon, when customer_value was joined."""
    column = clv_in(max(cfg.clv.horizons))
    return column if column in features.columns else None


def _previous(spark: SparkSession, profiles_ref: TableRef, assignment_id: str):
    """The previous assignment from `segment_profiles`, which has k rows per assignment and so
    is read whole."""
    if not table_exists(spark, profiles_ref):
        return None
    rows = (
        read_table(spark, profiles_ref)
        .select(ASSIGNMENT_ID, SEGMENT_ID, SEGMENT_NAME, CUSTOMER_COUNT, ASSIGNED_AT)
        .collect()
    )
    return previous_assignment(rows, assignment_id)


def _write_gold(
    spark: SparkSession,
    scoring: _Scored,
    profiles: list[ClusterProfile],
    *,
    lineage: Lineage,
    rules_fidelity: Optional[float],
    metadata: dict[str, Any],
) -> tuple[TableWrite, TableWrite, MembershipUpdate]:
    assignment_id = metadata[ASSIGNMENT_ID]
    refs, timer = scoring.refs, scoring.timer
    slice_predicate = f"{ASSIGNMENT_ID} = '{assignment_id}'"
    assignments = label_assignments(scoring.scored, profiles, assignment_id=assignment_id, lineage=lineage)
    with all_or_nothing(spark, list(refs.values())):
        with timer("write assignments"):
            assignments_written = write_table(
                spark,
                refs[SEGMENT_ASSIGNMENTS.name],
                assignments,
                user_metadata=metadata,
                replace_where=slice_predicate,
            )
        with timer("write profiles"):
            profiles_written = write_table(
                spark,
                refs[SEGMENT_PROFILES.name],
                profiles_frame(
                    spark,
                    profiles,
                    assignment_id=assignment_id,
                    lineage=lineage,
                    rules_fidelity=rules_fidelity,
                ),
                user_metadata=metadata,
                replace_where=slice_predicate,
            )
        with timer("membership"):
            # From the slice just written: narrow columns, no rescoring.
            written = read_table(spark, refs[SEGMENT_ASSIGNMENTS.name]).filter(
                F.col(ASSIGNMENT_ID) == assignment_id
            )
            membership = update_membership(
                spark,
                refs[SEGMENT_MEMBERSHIP.name],
                written,
                as_of_date=lineage.as_of_date,
                user_metadata=metadata,
            )
    return assignments_written, profiles_written, membership
