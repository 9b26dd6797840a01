"""The generator is deterministic by seed, independent of partitioning, and plants its personas."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from segmentation.config import GenerateConfig
from segmentation.generate import PERSONAS, generate

START, END = dt.date(2023, 1, 1), dt.date(2025, 12, 31)


def test_same_seed_same_rows_whatever_the_partitioning(spark):
    two = generate(
        spark, GenerateConfig(customers=300, seed=11, start_date=START, partitions=2), end_date=END
    )
    five = generate(
        spark, GenerateConfig(customers=300, seed=11, start_date=START, partitions=5), end_date=END
    )
    assertDataFrameEqual(two.transactions, five.transactions)
    assertDataFrameEqual(two.customers, five.customers)
    other_seed = generate(spark, GenerateConfig(customers=300, seed=12, start_date=START), end_date=END)
    assert other_seed.personas.exceptAll(two.personas).count() > 0


def test_personas_shape_behaviour(spark):
    data = generate(
        spark, GenerateConfig(customers=3000, seed=3, start_date=START, dirty_share=0.0), end_date=END
    )
    assert data.customers.count() == 3000
    assert data.customers.select("customer_id").distinct().count() == 3000
    per_customer = (
        data.transactions.filter(F.col("amount") > 0)
        .groupBy("customer_id")
        .agg(
            F.countDistinct("order_id").alias("orders"),
            F.datediff(F.lit(END), F.max(F.to_date("order_ts"))).alias("recency"),
            F.avg("amount").alias("line_amount"),
        )
        .join(data.personas, "customer_id")
        .groupBy("persona")
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.avg("orders").alias("orders"),
            F.avg("recency").alias("recency"),
            F.avg("line_amount").alias("line_amount"),
        )
    )
    stats = {row.persona: row for row in per_customer.collect()}
    assert set(stats) == {persona.name for persona in PERSONAS}
    for persona in PERSONAS:
        assert abs(stats[persona.name].customers / 3000 - persona.weight) < 0.03
    assert stats["champions"].orders > 2 * stats["loyal_regulars"].orders > stats["hibernating"].orders
    assert stats["one_off_bargain_hunters"].orders < 1.5
    assert stats["at_risk"].recency > 100 and stats["hibernating"].recency > 350
    assert stats["champions"].recency < 25
    assert stats["big_ticket_newcomers"].line_amount > 3 * stats["champions"].line_amount


def test_dates_stay_in_range_and_dirty_rows_appear_only_when_asked(spark):
    clean = generate(
        spark, GenerateConfig(customers=500, seed=5, start_date=START, dirty_share=0.0), end_date=END
    )
    bounds = clean.transactions.agg(F.min("order_ts"), F.max("order_ts"), F.count(F.lit(1))).first()
    assert bounds[0].date() >= START and bounds[1].date() <= END
    assert clean.transactions.filter(F.col("customer_id").isNull()).count() == 0
    assert clean.transactions.count() == clean.transactions.distinct().count()
    dirty = generate(
        spark, GenerateConfig(customers=500, seed=5, start_date=START, dirty_share=0.05), end_date=END
    )
    assert dirty.transactions.filter(F.col("customer_id").isNull()).count() > 0
    assert dirty.transactions.filter(F.to_date("order_ts") > F.lit(END)).count() > 0
    assert dirty.transactions.count() > dirty.transactions.distinct().count()


def test_customer_ids_keep_leading_zeros(spark):
    data = generate(spark, GenerateConfig(customers=20, seed=1, start_date=START), end_date=END)
    ids = sorted(row.customer_id for row in data.customers.select("customer_id").collect())
    assert ids[0] == "00000001" and ids[-1] == "00000020"
