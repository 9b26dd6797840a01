"""`segment assign`, `report`, `history`, `show` and `diff` on generated customers, with two
registered model versions that find the same partition under different cluster numbers."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil

import pytest
from conftest import config_under
from deltalake import DeltaTable as DeltaRsTable
from mlflow import MlflowClient
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

import segmentation.membership
import segmentation.stages.assign
from segmentation import tracking
from segmentation.errors import InputError
from segmentation.io import read_table, table_history, table_ref, table_version
from segmentation.publish import published_runs, read_assignments
from segmentation.stages.assign import run_assign
from segmentation.stages.features import run_features
from segmentation.stages.generate import run_generate
from segmentation.stages.history import run_diff, run_history, run_show
from segmentation.stages.ingest import run_ingest
from segmentation.stages.report import run_report
from segmentation.stages.train import run_train
from segmentation.tables import (
    MODEL_CLUSTER_ID,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_MEMBERSHIP,
    SEGMENT_PROFILES,
    SEGMENT_RUNS,
)

CUSTOMERS = 2000
GOLD = (SEGMENT_ASSIGNMENTS, SEGMENT_PROFILES, SEGMENT_MEMBERSHIP, SEGMENT_RUNS)
# Seeds 42 and 43 find the same six segments on this data with every cluster renumbered
# (checked in test_identity_is_kept_when_the_same_customers_are_segmented_again).
MODEL_SETTINGS = ("sweep.algorithms=[kmeans]", "sweep.grid.kmeans.k=[6]", "sweep.restarts=1")
V1, V2 = "2025-12-31_customer-segmentation_v1", "2025-12-31_customer-segmentation_v2"


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    """Features as of the default date and two registered model versions (seeds 42 and 43)."""
    root = tmp_path_factory.mktemp("assign")
    cfg = config_under(root, f"generate.customers={CUSTOMERS}", *MODEL_SETTINGS)
    for stage in (run_generate, run_ingest, run_features):
        stage(cfg, spark)
    run_train(cfg, spark)
    run_train(config_under(root, *MODEL_SETTINGS, "sweep.seed=43"), spark)
    # The second training moved the alias; the tests assign version 1 by alias, 2 by number.
    MlflowClient().set_registered_model_alias(cfg.model.registered_name, cfg.model.alias, "1")
    return root


@pytest.fixture
def make_gold_config(trained, tmp_path):
    """A private copy of the trained lake (the MLflow store is shared) and a config on it."""
    shutil.copytree(trained / "lake", tmp_path / "lake")

    def make(*overrides):
        return config_under(
            trained, f"lake.root={tmp_path / 'lake'}", f"report.output_dir={tmp_path / 'reports'}", *overrides
        )

    return make


def gold_state(spark, cfg):
    """Version and sorted content of each gold table that exists."""
    state = {}
    for table in GOLD:
        ref = table_ref(cfg.lake, table)
        version = table_version(spark, ref)
        if version is not None:
            state[table.name] = (version, sorted(map(str, read_table(spark, ref).collect())))
    return state


def test_assign_writes_every_customer_once_and_reassigning_replaces_the_slice(spark, make_gold_config):
    cfg = make_gold_config()
    assigned = run_assign(cfg, spark)
    assert (assigned.assignment_id, assigned.customers) == (V1, CUSTOMERS)
    assert (assigned.model.name, assigned.model.version) == ("customer-segmentation", "1")
    assert 0 < assigned.rules_fidelity <= 1 and len(assigned.segments) == 6
    assert assigned.membership.status == "merged" and assigned.membership.opened == CUSTOMERS

    assignments_ref = table_ref(cfg.lake, SEGMENT_ASSIGNMENTS)
    first = read_table(spark, assignments_ref)
    assert first.count() == CUSTOMERS == first.select("customer_id").distinct().count()
    first_rows = first.collect()  # a snapshot: `first` reads the latest version
    row = first_rows[0]
    assert (row.model_name, row.model_version, row.algorithm, row.k) == (
        "customer-segmentation",
        "1",
        "kmeans",
        6,
    )
    # Version 0 of the features table is its creation, version 1 the features' one write.
    assert row.features_as_of_date == dt.date(2025, 12, 31) and row.features_table_version == 1
    check_soft_membership(first)

    again_result = run_assign(cfg, spark)
    assert again_result.membership.status == "unchanged"
    assert again_result.membership.version == assigned.membership.version
    again = read_table(spark, assignments_ref)  # the raw table: the first slice was deleted
    assert again.count() == CUSTOMERS
    assert again.first().assigned_at >= row.assigned_at and again.first().write_id > row.write_id
    snapshot = spark.createDataFrame(first_rows, first.schema)
    assertDataFrameEqual(again.drop("assigned_at", "write_id"), snapshot.drop("assigned_at", "write_id"))
    profiles = read_table(spark, table_ref(cfg.lake, SEGMENT_PROFILES))
    assert profiles.count() == 6 and profiles.select("segment_name").distinct().count() == 6
    assert profiles.agg(F.sum("customers")).first()[0] == CUSTOMERS
    check_boundaries_and_rules(first, profiles, assigned)

    # Every commit of every gold table says what produced it: its creation, then the
    # assignment's slices, publish, clean-up and membership.
    for table in GOLD:
        creation, *commits = table_history(spark, table_ref(cfg.lake, table))
        assert creation["user_metadata"] == {"stage": "create", "table": table.name}
        assert creation["operation"] == "CREATE TABLE"
        assert commits
        for commit in commits:
            metadata = commit["user_metadata"]
            assert metadata["assignment_id"] == V1 and metadata["write_id"], (table.name, metadata)
            if metadata["stage"] == "assign":
                assert metadata["model_version"] == "1" and metadata["as_of_date"] == "2025-12-31"
                assert len(metadata["mlflow_run_id"]) == 32

    # One published assignment, re-published: `segment_runs` names the slice and its version.
    (run,) = published_runs(spark, cfg.lake)
    assert (run.assignment_id, run.write_id) == (V1, again.first().write_id)
    assert run.assignments_version == again_result.assignments.version
    assert (run.customers, run.segments, run.membership_status) == (CUSTOMERS, 6, "unchanged")
    assignment_id, at_version = read_assignments(spark, cfg.lake, version=run.assignments_version)
    assert assignment_id == V1
    assertDataFrameEqual(at_version, again)
    assert run_show(cfg, spark, version=run.assignments_version).delta_version == run.assignments_version
    with pytest.raises(InputError, match="no published assignment was committed at version 0"):
        read_assignments(spark, cfg.lake, version=0)
    with pytest.raises(InputError, match="no published assignment 'nope'"):
        read_assignments(spark, cfg.lake, assignment_id="nope")
    assert [v.assignment_id for v in run_history(cfg, spark).versions] == [V1]


def check_soft_membership(assignments):
    """The assigned segment is the most probable of six, its runner-up another segment."""
    top, second = F.col("segment_probability"), F.col("second_probability")
    assert assignments.filter((top < 1 / 6) | (top > 1) | (second > top) | (second < 0)).count() == 0
    assert assignments.filter(F.col("second_segment_id") == F.col("segment_id")).count() == 0
    assert assignments.filter(F.col("boundary") != (top < 0.6)).count() == 0


def check_boundaries_and_rules(assignments, profiles, assigned):
    """Profiles' boundary shares are the assignments' own; every segment has a rule."""
    boundary = F.avg(F.col("boundary").cast("double")).alias("share")
    by_segment = {r.segment_id: r.share for r in assignments.groupBy("segment_id").agg(boundary).collect()}
    rows = profiles.collect()
    for profile in rows:
        assert profile.boundary_share == pytest.approx(by_segment[profile.segment_id])
        assert profile.rule and not profile.rule.startswith("no rule") and profile.rule_recall > 0
    assert [(r.segment_id, r.rule) for r in assigned.rules] == sorted((p.segment_id, p.rule) for p in rows)


def test_identity_is_kept_when_the_same_customers_are_segmented_again(spark, make_gold_config):
    cfg = make_gold_config()
    run_assign(cfg, spark)
    second_result = run_assign(make_gold_config("assign.model_version=2"), spark)
    assert second_result.matched
    assert [(s.previous_segment_id, s.match_jaccard) for s in second_result.segments] == [
        (s.segment_id, 1.0) for s in second_result.segments
    ]

    first = read_assignments(spark, cfg.lake, assignment_id=V1)[1].alias("a")
    second = read_assignments(spark, cfg.lake, assignment_id=V2)[1].alias("b")
    pairs = first.join(second, "customer_id")
    assert pairs.count() == CUSTOMERS
    # The models number their clusters differently for every customer ...
    assert pairs.filter(F.col(f"a.{MODEL_CLUSTER_ID}") == F.col(f"b.{MODEL_CLUSTER_ID}")).count() == 0
    # ... yet every customer keeps segment id and name.
    assert pairs.filter(F.col("a.segment_id") != F.col("b.segment_id")).count() == 0
    assert pairs.filter(F.col("a.segment_name") != F.col("b.segment_name")).count() == 0

    membership = read_table(spark, table_ref(cfg.lake, SEGMENT_MEMBERSHIP))
    assert membership.count() == CUSTOMERS and membership.filter("is_current").count() == CUSTOMERS

    diff = run_diff(cfg, spark, source=V1, target=V2).summary
    assert (diff.new_customers, diff.gone_customers) == (0, 0)
    assert sorted(diff.retention.values()) == [1.0] * 6
    assert sorted(c["share_of_from"] for c in diff.cells) == [1.0] * 6


def test_delta_rs_reads_the_same_gold_rows_as_spark(spark, make_gold_config):
    cfg = make_gold_config()
    run_assign(cfg, spark)
    run_assign(make_gold_config("assign.model_version=2"), spark)
    for table, key in (
        (SEGMENT_ASSIGNMENTS, "customer_id"),
        (SEGMENT_PROFILES, "segment_id"),
        (SEGMENT_MEMBERSHIP, "customer_id"),
    ):
        ref = table_ref(cfg.lake, table)
        by_spark = [row.asDict(recursive=True) for row in read_table(spark, ref).collect()]
        by_delta_rs = DeltaRsTable(ref.path).to_pyarrow_table().to_pylist()
        assert sorted(map(_naive, by_delta_rs), key=_order(key)) == sorted(by_spark, key=_order(key)), table
    assert DeltaRsTable(table_ref(cfg.lake, SEGMENT_ASSIGNMENTS).path).metadata().partition_columns == [
        "assignment_id"
    ]


def _order(key: str):
    return lambda row: (str(row.get("assignment_id")), row[key], str(row.get("valid_from")))


def _naive(row: dict) -> dict:
    """delta-rs returns timestamps in UTC with a zone; Spark (session zone UTC) without."""
    return {k: v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v for k, v in row.items()}


def test_a_failure_before_the_publish_leaves_readers_on_the_previous_assignment(
    spark, make_gold_config, monkeypatch
):
    """The slices are written, then the run dies before `segment_runs`: nothing is restored,
    readers see only the previous assignment, and the next run publishes and removes the
    orphan slices."""
    cfg = make_gold_config()
    run_assign(cfg, spark)
    runs_before = published_runs(spark, cfg.lake)

    def fail(*args, **kwargs):
        raise RuntimeError("injected failure after assignments and profiles were written")

    monkeypatch.setattr(segmentation.stages.assign, "publish", fail)
    second = make_gold_config("assign.model_version=2")
    with pytest.raises(RuntimeError, match="injected failure"):
        run_assign(second, spark)
    assert published_runs(spark, cfg.lake) == runs_before
    assert read_assignments(spark, cfg.lake)[0] == V1
    assert run_history(cfg, spark).versions[-1].assignment_id == V1
    raw = read_table(spark, table_ref(cfg.lake, SEGMENT_ASSIGNMENTS))
    assert raw.filter(F.col("assignment_id") == V2).count() == CUSTOMERS  # unpublished: unseen

    monkeypatch.undo()
    run_assign(second, spark)
    assert [r.assignment_id for r in published_runs(spark, cfg.lake)] == [V1, V2]
    raw = read_table(spark, table_ref(cfg.lake, SEGMENT_ASSIGNMENTS))
    assert raw.filter(F.col("assignment_id") == V2).count() == CUSTOMERS  # the orphan is gone
    assert read_assignments(spark, cfg.lake)[0] == V2


def test_a_failure_after_the_publish_leaves_membership_to_the_next_run(spark, make_gold_config, monkeypatch):
    cfg = make_gold_config()
    run_assign(cfg, spark)

    def fail(*args, **kwargs):
        raise RuntimeError("injected failure after the publish")

    monkeypatch.setattr(segmentation.membership, "merge_scd2", fail)
    with pytest.raises(RuntimeError, match="injected failure"):
        run_assign(make_gold_config("assign.model_version=2", "features.as_of_date=2025-12-31"), spark)
    v2 = next(r for r in published_runs(spark, cfg.lake) if r.assignment_id == V2)
    assert v2.membership_status is None  # published, membership pending
    monkeypatch.undo()
    again = run_assign(cfg, spark)  # another assignment's run applies what is missing
    statuses = {r.assignment_id: r.membership_status for r in published_runs(spark, cfg.lake)}
    assert statuses == {V1: again.membership.status, V2: "unchanged"}
    current = read_table(spark, table_ref(cfg.lake, SEGMENT_MEMBERSHIP)).filter("is_current")
    assert current.count() == CUSTOMERS


def test_report_is_written_and_logged_to_the_model_run(spark, make_gold_config, tmp_path):
    cfg = make_gold_config()
    run_assign(cfg, spark)
    run_assign(make_gold_config("assign.model_version=2"), spark)
    reported = run_report(cfg, spark)
    path = tmp_path / "reports" / f"{V2}.html"
    assert (reported.assignment_id, reported.path, reported.matched) == (V2, path, True)
    page = path.read_text()
    profiles = read_table(spark, table_ref(cfg.lake, SEGMENT_PROFILES)).filter(F.col("assignment_id") == V2)
    for profile in profiles.collect():
        assert profile.segment_name in page and profile.rule.replace(">", "&gt;").replace("<", "&lt;") in page
    assert f"From {V1}: 0 customers new, 0 gone" in page
    assert page.count("data:image/png;base64,") == 2
    # The lake's transactions end near the features' date: the next period is not there yet.
    assert reported.evaluation is None
    assert re.fullmatch(
        r"Not evaluable yet: the 180 days after 2025-12-31 end on 2026-06-29, and the last "
        r"transaction in bronze is on 202\d-\d\d-\d\d; `segment report` shows them once ingest has "
        r"the transactions to that date\.",
        reported.evaluation_note,
    )
    assert f"<h2>Next period</h2>\n<p>{html.escape(reported.evaluation_note)}</p>" in page

    tracking.configure(cfg.mlflow)
    run_id = profiles.first().mlflow_run_id
    assert reported.mlflow_run_id == run_id
    assert [a.path for a in MlflowClient().list_artifacts(run_id, "reports")] == [f"reports/{V2}.html"]


def test_a_backfill_leaves_current_membership_alone(spark, make_gold_config):
    cfg = make_gold_config()
    run_assign(cfg, spark)
    run_features(make_gold_config("features.as_of_date=2025-06-30"), spark)
    membership_before = gold_state(spark, cfg)[SEGMENT_MEMBERSHIP.name]
    backfill = run_assign(make_gold_config("features.as_of_date=2025-06-30"), spark)
    assert backfill.membership.status == "backfill"
    assert backfill.membership.current_as_of == dt.date(2025, 12, 31)
    assert gold_state(spark, cfg)[SEGMENT_MEMBERSHIP.name] == membership_before
    assert (
        read_assignments(spark, cfg.lake, assignment_id="2025-06-30_customer-segmentation_v1")[1].count() > 0
    )
    (backfilled,) = [r for r in published_runs(spark, cfg.lake) if r.as_of_date == dt.date(2025, 6, 30)]
    assert backfilled.membership_status == "backfill"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("assign.model_version=99", "registered model customer-segmentation: cannot load version 99"),
        ("model.alias=nobody", "cannot load alias 'nobody'"),
        ("features.as_of_date=2020-01-01", "no rows with as_of_date 2020-01-01"),
    ],
)
def test_bad_model_choice_or_date_is_a_clear_error(spark, make_gold_config, override, message):
    cfg = make_gold_config(override)
    before = gold_state(spark, cfg)
    with pytest.raises(InputError, match=message):
        run_assign(cfg, spark)
    assert gold_state(spark, cfg) == before
