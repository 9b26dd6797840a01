"""`segment assign`: score silver `customer_features` at `features.as_of_date` with the
registered model and write the gold tables by the commit protocol of `segmentation.publish`:

* `segment_assignments`: one row per customer and assignment, partitioned by `assignment_id`,
  with the customer's top two segments, their probabilities and the boundary flag;
* `segment_profiles`: one row per segment and assignment, with names, descriptions, rules
  (with recall and precision) and boundary shares;
* `segment_runs`: one row per assignment, written last; it publishes the two slices above;
* `segment_membership`: each customer's segment over time, slowly changing type 2, brought up
  to date from published assignments after the publish.

An assignment is identified by the as-of date, the registered model name and its version, so
assigning again with the same model version and date publishes a new slice in place of the
old one (deleted after the publish) and never adds rows to what readers see.
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
from segmentation.config import Config, LakeConfig
from segmentation.errors import ConflictError, InputError
from segmentation.evaluation import hash_sample, in_hash_sample
from segmentation.io import TableRef, TableWrite, read_table, table_exists, table_ref, write_table
from segmentation.lineage import Lineage, ModelIdentity
from segmentation.membership import MembershipUpdate
from segmentation.models import feature_columns_of
from segmentation.naming import describe
from segmentation.profiles import (
    ClusterCounts,
    ClusterProfile,
    RulePredictions,
    SegmentSummary,
    numeric_features,
    profile_clusters,
    profiles_frame,
)
from segmentation.publish import (
    PublishedRun,
    apply_membership,
    check_slice,
    discard_slices,
    new_write_id,
    publish,
    published_rows,
    published_runs,
    published_slice,
    resolve_run,
)
from segmentation.rules import fit_segment_rules
from segmentation.stages.features import read_customer_features
from segmentation.tables import (
    AS_OF_DATE,
    ASSIGNED_AT,
    ASSIGNMENT_ID,
    CONFIG_HASH,
    CUSTOMER_COUNT,
    CUSTOMER_FEATURES,
    CUSTOMER_ID,
    FEATURES_TABLE_VERSION,
    MLFLOW_RUN_ID,
    MODEL_NAME,
    MODEL_VERSION,
    PUBLISHED,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_ID,
    SEGMENT_NAME,
    SEGMENT_PROFILES,
    WRITE_ID,
    clv_in,
)
from segmentation.timing import PhaseTimer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleSummary:
    """One segment's readable rule with its recall and precision on every customer."""

    segment_id: int
    segment_name: str
    rule: str
    recall: float
    precision: Optional[float]  # None: the rule covers nobody


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
    rules: tuple[RuleSummary, ...]
    boundary_probability: float
    boundary_share: float  # share of all customers whose top probability is below it
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
    lake: LakeConfig
    boundary_probability: float  # what `boundary` was scored with
    timer: PhaseTimer = field(default_factory=PhaseTimer)


def run_assign(cfg: Config, spark: SparkSession) -> AssignResult:
    started_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
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
        assigned_at=started_at.replace(microsecond=0),
        write_id=new_write_id(started_at),
    )
    metadata = {
        "stage": "assign",
        ASSIGNMENT_ID: assignment_id,
        WRITE_ID: lineage.write_id,
        MLFLOW_RUN_ID: scoring.identity.run_id,
        MODEL_NAME: scoring.identity.name,
        MODEL_VERSION: scoring.identity.version,
        AS_OF_DATE: as_of_date,
        FEATURES_TABLE_VERSION: scoring.features_version,
        CUSTOMER_COUNT: scoring.customers,
        "segments": len(profiles),
        CONFIG_HASH: cfg.fingerprint(),
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
        rules=tuple(
            RuleSummary(
                p.segment_id,
                p.segment_name,
                p.rule,
                p.rule_hits / p.customers,
                p.rule_hits / p.rule_predicted if p.rule_predicted else None,
            )
            for p in sorted(profiles, key=lambda p: p.segment_id)
        ),
        boundary_probability=cfg.assign.boundary_probability,
        boundary_share=sum(p.boundary_customers for p in profiles) / scoring.customers,
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
    model, identity = tracking.load_model(spark, cfg.model, cfg.assign)
    missing = [column for column in feature_columns_of(model) if column not in features.columns]
    if missing:
        raise InputError(
            f"table {CUSTOMER_FEATURES.name}: column {missing[0]!r}, read by model {identity.name} "
            f"version {identity.version}, is missing"
        )
    # Not persisted: scoring is cheap next to caching every feature column (measured on 1M
    # customers: persisting 10.7 s, profiles from the cache slower than recomputed).
    scored = score_customers(model, features, boundary_probability=cfg.assign.boundary_probability)
    customers = features.count()
    if customers == 0:
        raise InputError(f"table {CUSTOMER_FEATURES.name}: no rows with as_of_date {as_of_date}")
    refs = {table.name: table_ref(cfg.lake, table) for table in (SEGMENT_ASSIGNMENTS, SEGMENT_PROFILES)}
    return _Scored(
        model,
        identity,
        features,
        features_version,
        scored,
        customers,
        refs,
        cfg.lake,
        cfg.assign.boundary_probability,
    )


def _profile(
    cfg: Config, spark: SparkSession, scoring: _Scored, *, assignment_id: str
) -> tuple[list[ClusterProfile], float, bool]:
    """Profiles with rules, stable ids, names and descriptions; the rules' fidelity; whether a
    previous assignment was matched against."""
    columns = feature_columns_of(scoring.model)
    seed, customers, timer = cfg.sweep.seed, scoring.customers, scoring.timer
    clusters = len(cluster_centers(scoring.model))
    with timer("rules"):
        tree_rows = hash_sample(scoring.scored, CUSTOMER_ID, cfg.assign.rules_max_rows / customers, seed=seed)
        rules = fit_segment_rules(
            tree_rows, columns, clusters=range(clusters), max_depth=cfg.assign.rules_max_depth, seed=seed
        )
    with timer("profiles"):
        profiles = profile_clusters(
            scoring.scored,
            numeric_features(scoring.features),
            median_accuracy=cfg.assign.median_accuracy,
            counts=ClusterCounts(
                clusters, rules=RulePredictions(rules.matches(), rules.placed()), boundary=True
            ),
            median_sample=in_hash_sample(CUSTOMER_ID, cfg.assign.median_max_rows / customers, seed),
            value_column=_value_column(cfg, scoring.features),
        )
    fidelity = sum(p.rule_placed for p in profiles) / customers
    with timer("identity"):
        previous = _previous(cfg, spark, assignment_id)
        overlaps = {}
        if previous is not None:
            run = resolve_run(spark, cfg.lake, assignment_id=previous.assignment_id)
            before = published_slice(spark, cfg.lake, table=SEGMENT_ASSIGNMENTS, run=run)
            overlaps = member_overlaps(scoring.scored, before)
        identify_segments(profiles, previous, overlaps, min_jaccard=cfg.assign.min_match_jaccard)
    for profile in profiles:
        profile.description = describe(profile)
        profile.rule = rules.rules[profile.cluster].text
    return profiles, fidelity, previous is not None


def _value_column(cfg: Config, features: DataFrame) -> Optional[str]:
    """The customers' expected value over the longest horizon, when customer_value was joined."""
    column = clv_in(max(cfg.clv.horizons))
    return column if column in features.columns else None


def _previous(cfg: Config, spark: SparkSession, assignment_id: str):
    """The previous published assignment from `segment_profiles`, which has k rows per
    assignment and so is read whole."""
    if not table_exists(spark, table_ref(cfg.lake, SEGMENT_PROFILES)) or not published_runs(spark, cfg.lake):
        return None
    rows = (
        published_rows(spark, cfg.lake, SEGMENT_PROFILES)
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
    """Slices, invariants, publish, clean-up, membership: `segmentation.publish` says why."""
    assignment_id = metadata[ASSIGNMENT_ID]
    refs, timer = scoring.refs, scoring.timer
    slice_of = (F.col(ASSIGNMENT_ID) == F.lit(assignment_id)) & (F.col(WRITE_ID) == F.lit(lineage.write_id))
    with timer("write assignments"):
        assignments_written = write_table(
            spark,
            refs[SEGMENT_ASSIGNMENTS.name],
            label_assignments(scoring.scored, profiles, assignment_id=assignment_id, lineage=lineage),
            user_metadata=metadata,
            append=True,
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
                boundary_probability=scoring.boundary_probability,
            ),
            user_metadata=metadata,
            append=True,
        )
    with timer("publish"):
        check_slice(
            read_table(spark, refs[SEGMENT_ASSIGNMENTS.name]).filter(slice_of),
            read_table(spark, refs[SEGMENT_PROFILES.name]).filter(slice_of),
            customers=scoring.customers,
            assignment_id=assignment_id,
        )
        run = PublishedRun(
            assignment_id=assignment_id,
            write_id=lineage.write_id,
            status=PUBLISHED,
            model_name=lineage.model.name,
            model_version=lineage.model.version,
            mlflow_run_id=lineage.model.run_id,
            algorithm=lineage.algorithm,
            as_of_date=lineage.as_of_date,
            features_table_version=lineage.features_version,
            customers=scoring.customers,
            segments=len(profiles),
            assignments_version=assignments_written.version,
            profiles_version=profiles_written.version,
            assigned_at=lineage.assigned_at,
            published_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
            config_hash=metadata[CONFIG_HASH],
        )
        if not publish(spark, scoring.lake, run):
            discard_slices(spark, scoring.lake, run, own=True)
            raise ConflictError(
                f"table segment_runs: a newer run of assignment {assignment_id} published it first; "
                "this run's rows were discarded"
            )
        discard_slices(spark, scoring.lake, run)
    with timer("membership"):
        membership = apply_membership(spark, scoring.lake)[assignment_id]
    return assignments_written, profiles_written, membership
