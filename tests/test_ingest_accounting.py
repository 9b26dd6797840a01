"""A property of parsing for every messy input: each raw row lands exactly once, kept or
rejected with its reason, and the kept rows are exactly the raw rows that break no rule,
recomputed here in plain Python. (Duplicates among the kept rows are then dropped or kept by
`ingest.dedupe`, and counted: tests/test_ingest.py.)"""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmentation.config import TransactionsInput
from segmentation.ingest import TRANSACTION_RULES, parse_transactions
from segmentation.tables import REJECT_REASON

MAX_ORDER_TS = dt.datetime(2025, 6, 30, 12, 0)
SCHEMA = "customer_id string, order_ts string, amount string, order_id string"

ids = st.sampled_from(["00001", "00002", " 00003 ", "", "   ", None, "a\ufffdb"])
timestamps = st.sampled_from(
    [
        "2025-01-02 10:00:00",
        "2025-06-30 12:00:00",
        "2025-06-30 12:00:01",
        "1899-12-31",
        "13/01/2025",
        "",
        None,
    ]
)
amounts = st.sampled_from(["10.5", "-3", "0", "NaN", "Infinity", "-1e309", "$5", "1,5", "", None])
order_ids = st.sampled_from(["A", "B", None])
rows = st.lists(st.tuples(ids, timestamps, amounts, order_ids), min_size=1, max_size=30)


def expected_kept(raw: list[tuple]) -> int:
    """Rows breaking no rule, by the documented rules, without Spark."""

    def blank(value):
        return value is None or not value.strip()

    def timestamp(value):
        for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
            try:
                return dt.datetime.strptime(value.strip(), layout)
            except ValueError:
                continue
        return None

    def number(value):
        try:
            return float(value)
        except ValueError:
            return None

    kept = 0
    for customer_id, order_ts, amount, _ in raw:
        if blank(customer_id) or "\ufffd" in customer_id or blank(order_ts) or blank(amount):
            continue
        parsed_ts, parsed_amount = timestamp(order_ts), number(amount)
        if parsed_ts is None or parsed_amount is None or not math.isfinite(parsed_amount):
            continue
        if parsed_ts > MAX_ORDER_TS or parsed_ts < dt.datetime(1900, 1, 1):
            continue
        kept += 1
    return kept


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=rows)
def test_every_raw_row_is_kept_rejected_or_dropped_exactly_once(spark, raw):
    source = TransactionsInput.model_validate(
        {"path": "unused", "columns": {"quantity": None, "category": None, "channel": None}}
    )
    frame = spark.createDataFrame(raw, SCHEMA)
    parsed = parse_transactions(frame, source, max_order_ts=MAX_ORDER_TS, source="generated")
    kept, rejected = parsed.valid.count(), parsed.rejected.count()
    assert kept + rejected == len(raw)
    assert kept == expected_kept(raw)
    assert parsed.rejected.filter(f"{REJECT_REASON} IS NULL").count() == 0
    assert {rule.name for rule in TRANSACTION_RULES} <= set(parsed.valid.columns)
