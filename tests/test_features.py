"""Every feature definition against answers computed by hand, plus properties over random input."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual

from segmentation.config import FeaturesConfig
from segmentation.features import build_customer_features, feature_levels

AS_OF = dt.date(2025, 1, 31)
TRANSACTIONS_SCHEMA = (
    "customer_id string, order_ts timestamp, amount double, order_id string, "
    "quantity double, category string, channel string"
)
CONFIG = FeaturesConfig(as_of_date=AS_OF)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def transactions(spark):
    rows = [
        # 00001: orders A (two lines), B, C; a return; a purchase after the as-of date.
        ("00001", ts("2025-01-01 10:00"), 10.0, "A", 1.0, "grocery", "web"),  # Wednesday
        ("00001", ts("2025-01-01 10:00"), 20.0, "A", 1.0, "books", "web"),
        ("00001", ts("2025-01-05 12:00"), 30.0, "B", 1.0, "grocery", "store"),  # Sunday
        ("00001", ts("2025-01-09 09:00"), 40.0, "C", 1.0, "toys", "store"),  # Thursday
        ("00001", ts("2025-01-10 09:00"), -10.0, "RB", 1.0, "grocery", "web"),
        ("00001", ts("2025-02-02 09:00"), 100.0, "D", 1.0, "grocery", "web"),
        # 00002: no order ids; two lines at one timestamp are one order.
        ("00002", ts("2024-10-05 08:00"), 50.0, None, None, None, None),  # Saturday
        ("00002", ts("2024-12-01 08:00"), 5.0, None, None, None, None),  # Sunday
        ("00002", ts("2024-12-01 08:00"), 15.0, None, None, None, None),
        # 00003: only a return: no purchase, no row.
        ("00003", ts("2025-01-03 08:00"), -5.0, "Z", None, "toys", "web"),
        # 00004: order X spans midnight and takes its earliest line's date.
        ("00004", ts("2025-01-30 23:00"), 8.0, "X", 1.0, "toys", "app"),
        ("00004", ts("2025-01-31 01:00"), 2.0, "X", 1.0, "toys", "app"),
        ("00004", ts("2025-01-31 12:00"), 10.0, "Y", 1.0, "grocery", "app"),
    ]
    return spark.createDataFrame(rows, TRANSACTIONS_SCHEMA)


def test_rfm_and_order_features(spark, transactions):
    features = build_customer_features(
        transactions, AS_OF, CONFIG, categories=["grocery", "toys"], channels=["web", "store"]
    )
    expected = spark.createDataFrame(
        [
            # frequency, monetary, recency, tenure, aov, mean gap, std gap, weekend share
            ("00001", 3, 90.0, 22, 30, 30.0, 4.0, 0.0, 1 / 3),
            ("00002", 2, 70.0, 61, 118, 35.0, 57.0, None, 1.0),
            ("00004", 2, 20.0, 0, 1, 10.0, 1.0, None, 0.0),
        ],
        "customer_id string, frequency long, monetary double, recency_days int, tenure_days int, "
        "avg_order_value double, mean_days_between_orders double, std_days_between_orders double, "
        "weekend_share double",
    )
    assertDataFrameEqual(features.select(*expected.columns), expected, rtol=1e-9)


def test_window_trend_and_return_features(spark, transactions):
    features = build_customer_features(
        transactions, AS_OF, CONFIG, categories=["grocery", "toys"], channels=["web", "store"]
    )
    expected = spark.createDataFrame(
        [
            # 00001: Jan 1 is 30 days back, outside the 30-day window; the 90 days before hold nothing.
            ("00001", 2, 3, 3, 60.0, 90.0, 90.0, 1.0, 100.0, 10.0, 0.1, 3),
            # 00002: Oct 5 (118 days back) falls in the previous 90 days: (20 - 50) / (20 + 50).
            ("00002", 0, 1, 2, 0.0, 20.0, 70.0, -30 / 70, 70.0, 0.0, 0.0, 0),
            ("00004", 2, 2, 2, 20.0, 20.0, 20.0, 1.0, 20.0, 0.0, 0.0, 2),
        ],
        "customer_id string, orders_30d long, orders_90d long, orders_365d long, spend_30d double, "
        "spend_90d double, spend_365d double, spend_trend double, gross_spend double, "
        "returned_amount double, return_share double, distinct_categories int",
    )
    assertDataFrameEqual(features.select(*expected.columns), expected, rtol=1e-9)


def test_category_and_channel_shares_of_gross_spend(spark, transactions):
    features = build_customer_features(
        transactions, AS_OF, CONFIG, categories=["grocery", "toys"], channels=["web", "store"]
    )
    expected = spark.createDataFrame(
        [
            ("00001", 0.4, 0.4, 0.3, 0.7),
            ("00002", 0.0, 0.0, 0.0, 0.0),
            ("00004", 0.5, 0.5, 0.0, 0.0),
        ],
        "customer_id string, category_share_grocery double, category_share_toys double, "
        "channel_share_web double, channel_share_store double",
    )
    assertDataFrameEqual(features.select(*expected.columns), expected, rtol=1e-9)


def test_as_of_date_and_customer_attributes(spark, transactions):
    customers = spark.createDataFrame(
        [("00001", dt.date(2024, 12, 31), dt.date(2000, 2, 1), "F", "north", True)],
        "customer_id string, signup_date date, birth_date date, gender string, region string, "
        "marketing_opt_in boolean",
    )
    features = build_customer_features(
        transactions, AS_OF, CONFIG, categories=[], channels=[], customers=customers
    )
    expected = spark.createDataFrame(
        [
            ("00001", AS_OF, 31, 24, "F", "north", True),
            ("00002", AS_OF, None, None, None, None, None),
            ("00004", AS_OF, None, None, None, None, None),
        ],
        "customer_id string, as_of_date date, days_since_signup int, age_years int, gender string, "
        "region string, marketing_opt_in boolean",
    )
    assertDataFrameEqual(features.select(*expected.columns), expected)


def test_feature_levels_rank_categories_by_gross_spend(transactions):
    config = FeaturesConfig(as_of_date=AS_OF, top_categories=2)
    categories, channels = feature_levels(transactions, AS_OF, config)
    # Gross purchase spend up to Jan 31: grocery 50, toys 50, books 20; ties break by name.
    assert categories == ["grocery", "toys"]
    # web 30, store 70, app 20.
    assert channels == ["store", "web", "app"]


def test_share_column_names_are_safe_and_unique(spark, transactions):
    features = build_customer_features(
        transactions, AS_OF, CONFIG, categories=["Home & Garden", "home-garden"], channels=[]
    )
    assert "category_share_home_garden" in features.columns
    assert "category_share_home_garden_2" in features.columns


line = st.tuples(
    st.integers(0, 3),  # customer
    st.integers(0, 400),  # days before the as-of date (negative offsets below: after it)
    st.integers(0, 86_399),  # second of the day
    st.floats(-50, 200, allow_nan=False).map(lambda value: round(value, 2)),
    st.one_of(st.none(), st.sampled_from(["o1", "o2", "o3"])),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(line, min_size=1, max_size=25), after=st.lists(line, max_size=3))
def test_rfm_matches_a_plain_python_computation(spark, lines, after):
    """For any input: orders, net spend, recency and tenure agree with a direct computation."""
    midnight = dt.datetime.combine(AS_OF, dt.time())
    rows = [
        (f"c{c}", midnight - dt.timedelta(days=d) + dt.timedelta(seconds=s), a, o, None, None, None)
        for c, d, s, a, o in lines
    ] + [(f"c{c}", midnight + dt.timedelta(days=d + 1), a, o, None, None, None) for c, d, _, a, o in after]
    transactions = spark.createDataFrame(rows, TRANSACTIONS_SCHEMA)
    orders: dict[str, dict[str, dt.datetime]] = defaultdict(dict)
    monetary: dict[str, float] = defaultdict(float)
    for customer, order_ts, amount, order_id, *_ in rows:
        if order_ts.date() > AS_OF:
            continue
        monetary[customer] += amount
        if amount >= 0:
            key = order_id if order_id is not None else str(order_ts)
            orders[customer][key] = min(order_ts, orders[customer].get(key, order_ts))
    expected = [
        Row(
            customer_id=customer,
            frequency=len(times),
            monetary=monetary[customer],
            recency_days=(AS_OF - max(times.values()).date()).days,
            tenure_days=(AS_OF - min(times.values()).date()).days,
        )
        for customer, times in orders.items()
    ]
    features = build_customer_features(transactions, AS_OF, CONFIG, categories=[], channels=[])
    actual = features.select("customer_id", "frequency", "monetary", "recency_days", "tenure_days").collect()
    assert len(actual) == len(expected)
    by_customer = {row.customer_id: row for row in actual}
    for row in expected:
        got = by_customer[row.customer_id]
        assert (got.frequency, got.recency_days, got.tenure_days) == (
            row.frequency,
            row.recency_days,
            row.tenure_days,
        )
        assert math.isclose(got.monetary, row.monetary, abs_tol=1e-6)
        assert got.recency_days <= got.tenure_days
