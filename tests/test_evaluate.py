"""`segment evaluate` on a hand-built lake whose next-period answers are known: bronze lines
written by hand, `customer_features` built by the real features stage, two published
assignments as of the same date and one as of another. Expected figures are worked out by hand
from the rows below (the comments show the arithmetic); eta squared independently with numpy."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from conftest import config_under
from mlflow import MlflowClient
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from segmentation import tables
from segmentation.cli import format_result, main
from segmentation.config import overrides_under
from segmentation.errors import InputError, PeriodNotCovered
from segmentation.io import read_table, table_ref, write_table
from segmentation.publish import PublishedRun, publish
from segmentation.report import next_period_section
from segmentation.stages.evaluate import OUTCOMES_ARTIFACT, run_evaluate
from segmentation.stages.features import run_features
from segmentation.usefulness import (
    BOUGHT_AGAIN,
    NEXT_ORDERS,
    NEXT_SPEND,
    RFM_SEGMENT_ID,
    RFM_SEGMENT_NAME,
    eta_squared,
    next_period_outcomes,
    rfm_scores,
    rfm_segments,
)

D = dt.date(2025, 12, 31)
HORIZON = 30  # the next period is 2026-01-01 .. 2026-01-30


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# (customer, order_ts, amount, order_id)
LINES = [
    # History, up to D (the features' as-of date, its whole day included).
    ("c1", ts("2025-12-01 10:00"), 100.0, "c1-h1"),
    ("c2", ts("2025-06-01 10:00"), 50.0, "c2-h1"),
    ("c2", ts("2025-12-31 23:00"), 70.0, "c2-h2"),  # exactly on D: history, not next period
    ("c3", ts("2025-11-15 10:00"), 200.0, "c3-h1"),
    ("c3", ts("2025-12-20 10:00"), 80.0, "c3-h2"),
    ("c4", ts("2024-12-01 10:00"), 30.0, "c4-h1"),
    ("c5", ts("2025-12-30 10:00"), 500.0, None),
    ("c6", ts("2025-03-01 10:00"), 20.0, "c6-h1"),
    ("c7", ts("2025-10-01 10:00"), 60.0, "c7-h1"),  # not in the assignment
    # Next period.
    ("c1", ts("2026-01-05 09:00"), 20.0, "c1-f1"),  # one order of two lines
    ("c1", ts("2026-01-05 09:00"), 30.0, "c1-f1"),
    ("c1", ts("2026-01-30 23:59:59"), 10.0, "c1-f2"),  # on D + H: in
    ("c2", ts("2026-01-31 00:00"), 90.0, "c2-f1"),  # the day after D + H: out
    ("c3", ts("2026-01-10 12:00"), 40.0, "c3-f1"),
    ("c3", ts("2026-01-12 12:00"), -15.0, "c3-r1"),  # a return: spend, no order
    ("c5", ts("2026-01-02 08:00"), 120.0, None),  # no order id: one order per timestamp
    ("c5", ts("2026-01-02 08:00"), 30.0, None),
    ("c6", ts("2026-01-03 10:00"), -5.0, "c6-r1"),  # only a return: did not buy again
    ("c7", ts("2026-01-04 10:00"), 999.0, "c7-f1"),  # not assigned: not evaluated
    ("c8", ts("2026-01-06 10:00"), 45.0, "c8-f1"),  # new after D: not evaluated
]
# c4 buys nothing after D.
# customer: (orders, spend, bought again) in (D, D + 30 days]
EXPECTED = {
    "c1": (2, 60.0, 1),
    "c2": (0, 0.0, 0),
    "c3": (1, 25.0, 1),
    "c4": (0, 0.0, 0),
    "c5": (1, 150.0, 1),
    "c6": (0, -5.0, 0),
}
SEGMENTS = {"c1": 1, "c3": 1, "c5": 1, "c2": 2, "c4": 2, "c6": 2}
NAMES = {1: "Active", 2: "Lapsing"}
# RFM as of D from the features: recency days, frequency, monetary
#   c1 30, 1, 100 | c2 0, 2, 120 | c3 11, 2, 280 | c4 395, 1, 30 | c5 1, 1, 500 | c6 305, 1, 20.
# 6 customers: score = min(5, 1 + floor(5 * worse / 5)) = min(5, 1 + worse).
#   R (fewer days better): c4 1, c6 2, c1 3, c3 4, c5 5, c2 5 (1 + 5, capped)
#   F: the four with 1 order tie at worse 0 -> 1; c2, c3 with 2 orders: worse 4 -> 5
#   M: c6 1, c4 2, c1 3, c2 4, c3 5, c5 5
# Sums: c4 1+1+2=4, c6 2+1+1=4, c1 3+1+3=7, c5 5+1+5=11, c3 4+5+5=14, c2 5+5+4=14; every
# cell holds one customer; in (sum, R, F, M) order c4, c6, c1, c5, c3, c2, cell middles 0.5,
# 1.5, ..., 5.5; k = 2: segment 1 + floor(2 * middle / 6): c4, c6, c1 -> 1; c5, c3, c2 -> 2.
RFM_SCORES = {
    "c1": (3, 1, 3),
    "c2": (5, 5, 4),
    "c3": (4, 5, 5),
    "c4": (1, 1, 2),
    "c5": (5, 1, 5),
    "c6": (2, 1, 1),
}
RFM_EXPECTED = {"c4": 1, "c6": 1, "c1": 1, "c5": 2, "c3": 2, "c2": 2}
RFM_NAMES = {1: "RFM 4-7", 2: "RFM 11-14"}


def numpy_eta_squared(values: dict[str, float], groups: dict[str, int]) -> float:
    """Between-group over total sum of squares, straight from the definition."""
    customers = sorted(values)
    x = np.array([values[c] for c in customers])
    g = np.array([groups[c] for c in customers])
    between = sum((g == k).sum() * (x[g == k].mean() - x.mean()) ** 2 for k in np.unique(g))
    return float(between / ((x - x.mean()) ** 2).sum())


_FILLER = {
    T.BooleanType(): False,
    T.IntegerType(): 0,
    T.LongType(): 0,
    T.DoubleType(): 0.0,
    T.StringType(): "",
}


def assignment_rows(assignment_id: str, write_id: str, segments: dict[str, int], names: dict[int, str]):
    """Rows of `segment_assignments` with the columns evaluation reads set; the other columns
    null, or a neutral value where the table requires one (the schema may grow columns)."""
    lineage = {
        tables.MODEL_NAME: "m",
        tables.MODEL_VERSION: "1",
        tables.MLFLOW_RUN_ID: "model-run",
        tables.ALGORITHM: "kmeans",
        tables.K: len(names),
        tables.FEATURES_AS_OF_DATE: D,
        tables.FEATURES_TABLE_VERSION: 1,
        tables.ASSIGNED_AT: dt.datetime(2026, 2, 1),
        tables.WRITE_ID: write_id,
        tables.SEGMENT_PROBABILITY: 1.0,
        tables.DISTANCE_TO_CENTROID: 0.0,
    }
    rows = []
    for customer, segment in segments.items():
        known = lineage | {
            tables.ASSIGNMENT_ID: assignment_id,
            tables.CUSTOMER_ID: customer,
            tables.SEGMENT_ID: segment,
            tables.SEGMENT_NAME: names[segment],
            tables.MODEL_CLUSTER_ID: segment - 1,
        }
        rows.append(
            tuple(
                known[f.name] if f.name in known else None if f.nullable else _FILLER[f.dataType]
                for f in tables.SEGMENT_ASSIGNMENTS.schema.fields
            )
        )
    return rows


def write_assignment(spark, cfg, *, assignment_id, as_of, segments, names, published_at):
    write_id = f"{published_at:%Y%m%dT%H%M%S}000000Z-test"
    rows = assignment_rows(assignment_id, write_id, segments, names)
    write_table(
        spark,
        table_ref(cfg.lake, tables.SEGMENT_ASSIGNMENTS),
        spark.createDataFrame(rows, tables.SEGMENT_ASSIGNMENTS.schema),
        user_metadata={"test": assignment_id},
        append=True,
    )
    assert publish(
        spark,
        cfg.lake,
        PublishedRun(
            assignment_id=assignment_id,
            write_id=write_id,
            status=tables.PUBLISHED,
            model_name="m",
            model_version="1",
            mlflow_run_id="model-run",
            algorithm="kmeans",
            as_of_date=as_of,
            features_table_version=1,
            customers=len(rows),
            segments=len(names),
            assignments_version=1,
            profiles_version=1,
            assigned_at=published_at,
            published_at=published_at,
            config_hash="test",
        ),
    )


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """Bronze lines, features as of D by the real stage, and three published assignments: an
    older one as of D (everyone in one segment), the latest one as of D, one as of another day."""
    root = tmp_path_factory.mktemp("evaluate")
    cfg = config_under(root, f"features.as_of_date={D}")
    lines = [
        {
            tables.CUSTOMER_ID: c,
            tables.ORDER_TS: t,
            tables.AMOUNT: a,
            tables.ORDER_ID: o,
            tables.QUANTITY: 1.0,
            tables.CATEGORY: "cds",
            tables.CHANNEL: "web",
        }
        for c, t, a, o in LINES
    ]
    write_table(
        spark,
        table_ref(cfg.lake, tables.TRANSACTIONS),
        spark.createDataFrame(lines, tables.TRANSACTIONS.schema),
        user_metadata={"test": "evaluate"},
    )
    run_features(cfg, spark)
    everyone = dict.fromkeys(SEGMENTS, 1)
    write_assignment(
        spark,
        cfg,
        assignment_id="older",
        as_of=D,
        segments=everyone,
        names={1: "All"},
        published_at=dt.datetime(2026, 2, 1),
    )
    write_assignment(
        spark,
        cfg,
        assignment_id="latest",
        as_of=D,
        segments=SEGMENTS,
        names=NAMES,
        published_at=dt.datetime(2026, 2, 2),
    )
    write_assignment(
        spark,
        cfg,
        assignment_id="other-day",
        as_of=dt.date(2025, 11, 30),
        segments=SEGMENTS,
        names=NAMES,
        published_at=dt.datetime(2026, 2, 3),
    )
    return root, cfg


def test_next_period_outcomes_follow_the_window_and_the_order_definition(spark):
    transactions = spark.createDataFrame(
        [(c, t, a, o) for c, t, a, o in LINES],
        "customer_id string, order_ts timestamp, amount double, order_id string",
    )
    customers = spark.createDataFrame([(c,) for c in EXPECTED], "customer_id string")
    outcomes = next_period_outcomes(transactions, customers, as_of_date=D, horizon_days=HORIZON)
    expected = spark.createDataFrame(
        [(c, *values) for c, values in EXPECTED.items()],
        f"customer_id string, {NEXT_ORDERS} long, {NEXT_SPEND} double, {BOUGHT_AGAIN} int",
    )
    assertDataFrameEqual(outcomes, expected)


def test_rfm_scores_share_a_score_on_ties_and_cells_are_never_split(spark):
    """Six customers tie on every value: one cell holding 6 of 10, larger than 10 / 3, so the
    three segments asked for become two. n - 1 = 9: a value with w customers worse scores
    min(5, 1 + floor(5 w / 9)): w = 0 -> 1, 6 -> 4, 7 -> 4, 8 -> 5, 9 -> 5."""
    rows = [(f"t{i}", 100, 1, 10.0) for i in range(6)]
    rows += [("b50", 50, 2, 20.0), ("b40", 40, 3, 30.0), ("b30", 30, 4, 40.0), ("b20", 20, 5, 50.0)]
    features = spark.createDataFrame(
        rows, "customer_id string, recency_days int, frequency long, monetary double"
    )
    scores = {r.customer_id: (r.r_score, r.f_score, r.m_score) for r in rfm_scores(features).collect()}
    expected = {f"t{i}": (1, 1, 1) for i in range(6)} | {
        "b50": (4, 4, 4), "b40": (4, 4, 4), "b30": (5, 5, 5), "b20": (5, 5, 5)
    }  # fmt: skip
    assert scores == expected
    # Cells in order: (1,1,1) x 6, middle 3 of 10 -> 1 + floor(3 * 3 / 10) = 1; (4,4,4) x 2,
    # middle 7 -> 1 + floor(2.1) = 3; (5,5,5) x 2, middle 9 -> 3. Segment 2 is empty: renumbered.
    segments = rfm_segments(features, segments=3).select("customer_id", RFM_SEGMENT_ID, RFM_SEGMENT_NAME)
    assertDataFrameEqual(
        segments,
        spark.createDataFrame(
            [(f"t{i}", 1, "RFM 3") for i in range(6)]
            + [(c, 2, "RFM 12-15") for c in ("b50", "b40", "b30", "b20")],
            f"customer_id string, {RFM_SEGMENT_ID} int, {RFM_SEGMENT_NAME} string",
        ),
    )


def test_eta_squared_is_between_over_total():
    # Groups {0, 2} and {2, 4}: grand mean 2; between 2*(1-2)^2 + 2*(3-2)^2 = 4; total 4 + 4.
    assert eta_squared([2, 2], [1.0, 3.0], [1.0, 1.0]) == 0.5
    assert eta_squared([3, 1], [0.0, 0.0], [0.0, 0.0]) is None  # nothing varies


def test_segments_and_the_rfm_baseline_on_the_next_30_days(spark, lake):
    _, cfg = lake
    result = run_evaluate(cfg, spark, horizon_days=HORIZON)
    assert (result.assignment_id, result.as_of_date, result.period_end) == ("latest", D, dt.date(2026, 1, 30))
    assert result.last_transaction_date == dt.date(2026, 1, 31)
    spend = {c: v[1] for c, v in EXPECTED.items()}
    bought = {c: float(v[2]) for c, v in EXPECTED.items()}
    total_spend = sum(spend.values())  # 60 + 0 + 25 + 0 + 150 - 5 = 230

    for outcome, groups, names in ((result.segments, SEGMENTS, NAMES), (result.rfm, RFM_EXPECTED, RFM_NAMES)):
        assert outcome.customers == 6
        assert [(s.segment_id, s.segment_name) for s in outcome.segments] == sorted(names.items())
        for s in outcome.segments:
            members = [c for c, g in groups.items() if g == s.segment_id]
            assert s.customers == len(members)
            assert s.bought_again_share == pytest.approx(sum(bought[c] for c in members) / len(members))
            assert s.mean_spend == pytest.approx(sum(spend[c] for c in members) / len(members))
            assert s.spend_share == pytest.approx(sum(spend[c] for c in members) / total_spend)
        assert outcome.eta_squared_spend == pytest.approx(numpy_eta_squared(spend, groups), rel=1e-12)
        assert outcome.eta_squared_bought_again == pytest.approx(numpy_eta_squared(bought, groups), rel=1e-12)
    # By hand: the assigned segments split buyers from non-buyers exactly; spend means 235/3
    # and -5/3 around 230/6.
    assert result.segments.eta_squared_bought_again == pytest.approx(1.0)
    assert [s.mean_spend for s in result.segments.segments] == pytest.approx([235 / 3, -5 / 3])
    # RFM: buyers 1 of 3 (c1) and 2 of 3 (c5, c3); spend 55 and 175 of 230.
    assert [s.bought_again_share for s in result.rfm.segments] == pytest.approx([1 / 3, 2 / 3])
    assert [s.spend_share for s in result.rfm.segments] == pytest.approx([55 / 230, 175 / 230])

    client = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.data.params == {
        "as_of_date": str(D),
        "horizon_days": str(HORIZON),
        "assignment_id": "latest",
        "segments": "2",
        "rfm_segments": "2",
        "transactions_version": "1",
    }
    assert run.data.metrics["eta_squared_spend"] == pytest.approx(result.segments.eta_squared_spend)
    assert run.data.metrics["eta_squared_bought_again"] == pytest.approx(1.0)
    assert run.data.metrics["rfm_eta_squared_spend"] == pytest.approx(result.rfm.eta_squared_spend)
    assert run.data.metrics["rfm_eta_squared_bought_again"] == pytest.approx(
        result.rfm.eta_squared_bought_again
    )
    artifacts = {f.path for f in client.list_artifacts(result.mlflow_run_id)}
    assert {f"{OUTCOMES_ARTIFACT}.csv", f"{OUTCOMES_ARTIFACT}.html"} <= artifacts

    text = format_result(result)
    assert f"eta squared of spend {result.segments.eta_squared_spend:.4f}, of buying again 1.0000" in text
    rows = [line.split() for line in text.splitlines()]
    assert ["2", "Lapsing", "3", "0.0%", "-1.67", "-2.2%"] in rows  # -5 / 230 of the spend
    assert ["2", "RFM", "11-14", "3", "66.7%", "58.33", "76.1%"] in rows  # 175 / 3; 175 / 230

    # The report's section shows the same tables.
    page = "".join(next_period_section("intro", (("Segments", result.segments), ("RFM", result.rfm))))
    assert page.startswith("<h2>Next period</h2><p>intro</p><h3>Segments: eta squared of spend ")
    assert (
        "<tr><td>2 Lapsing</td><td>3</td><td>0.0%</td><td>-1.67</td><td>0.00</td><td>-2.2%</td></tr>" in page
    )
    assert "<h3>RFM: eta squared of spend" in page and "<td>66.7%</td><td>58.33</td>" in page


def test_the_rfm_scores_of_the_features_stage_rows(spark, lake):
    _, cfg = lake
    features = read_table(spark, table_ref(cfg.lake, tables.CUSTOMER_FEATURES)).filter(
        (F.col(tables.AS_OF_DATE) == D) & (F.col(tables.CUSTOMER_ID) != "c7")
    )
    assertDataFrameEqual(
        rfm_segments(features, segments=2),
        spark.createDataFrame(
            [(c, *RFM_SCORES[c], RFM_EXPECTED[c], RFM_NAMES[RFM_EXPECTED[c]]) for c in RFM_SCORES],
            f"customer_id string, r_score int, f_score int, m_score int, {RFM_SEGMENT_ID} int, "
            f"{RFM_SEGMENT_NAME} string",
        ),
    )


def test_an_assignment_by_id_and_a_horizon_the_data_does_not_cover(spark, lake):
    _, cfg = lake
    older = run_evaluate(cfg, spark, assignment_id="older", horizon_days=HORIZON)
    # One segment explains nothing; the baseline then has one segment as well.
    assert older.segments.eta_squared_spend == 0.0 and older.segments.eta_squared_bought_again == 0.0
    assert len(older.rfm.segments) == 1 and older.rfm.segments[0].customers == 6
    assert older.segments.bought_again_share == pytest.approx(0.5)
    with pytest.raises(InputError, match="assignment other-day is as of 2025-11-30, not 2025-12-31"):
        run_evaluate(cfg, spark, as_of_date=D, assignment_id="other-day")
    # The last line is on 2026-01-31: 31 days after D.
    with pytest.raises(
        PeriodNotCovered, match=r"last transaction is on 2026-01-31.*--horizon-days 31 or less"
    ):
        run_evaluate(cfg, spark, horizon_days=32)


def test_an_as_of_date_without_a_published_assignment_fails_naming_the_table_and_date(spark, lake, capsys):
    root, _ = lake
    sets = [f"--set={override}" for override in overrides_under(root)]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--as-of-date", "2024-06-30", "--horizon-days", "30", *sets])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: table segment_runs at ")
    assert "no published assignment as of 2024-06-30 (3 published, as of 2025-11-30, 2025-12-31)" in error
