"""Silver: one row of behavioural features per customer, computed as of a date.

Definitions (only transactions dated on or before `as_of_date` count):

* an order is a distinct `order_id`, or, when the id is missing, a distinct `order_ts`;
  only purchase lines (`amount >= 0`) make orders, returns (`amount < 0`) only reduce spend;
  an order's time is its earliest line's;
* `frequency` = number of orders; `monetary` = sum of amount (net of returns);
  `avg_order_value` = monetary / frequency;
* `recency_days` / `tenure_days` = days from the date of the last / first order to `as_of_date`;
* `orders_<w>d`, `spend_<w>d` = orders and net spend in the last w days (as_of_date included);
* `spend_trend` = (a - b) / (|a| + |b|) for net spend a in the last 90 days and b in the 90
  before, in [-1, 1], 0 when both are 0;
* `mean_days_between_orders` over consecutive orders (null below 2 orders),
  `std_days_between_orders` the sample standard deviation of those gaps (null below 3);
* `return_share` = returned amount / gross purchase amount; shares of gross purchase amount
  per top category and per channel; `weekend_share` = share of orders on Saturday or Sunday.

Customers with no purchase on or before the date have no row. The core aggregates are one
`groupBy(customer_id)` (one shuffle); order-level facts come from a per-customer array.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Optional

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from segmentation.config import FeaturesConfig
from segmentation.errors import InputError

CUSTOMER_FEATURES = "customer_features"
CUSTOMER_ID = "customer_id"
AS_OF_DATE = "as_of_date"
MAX_CHANNELS = 50

_ORDERS = "_orders"
_ORDER_DATES = "_order_dates"
_ORDERS_BY_KEY = "_orders_by_key"
_GROSS = "gross_spend"


def feature_levels(
    transactions: DataFrame, as_of_date: dt.date, cfg: FeaturesConfig
) -> tuple[list[str], list[str]]:
    """Categories and channels that get a share column: from config, else the top N categories
    by gross spend and every channel seen (small aggregations; only levels reach the driver)."""
    history = transactions.filter(F.to_date("order_ts") <= F.lit(as_of_date)).filter(F.col("amount") >= 0)
    categories = cfg.categories
    if categories is None:
        categories = [
            row["category"]
            for row in history.filter(F.col("category").isNotNull())
            .groupBy("category")
            .agg(F.sum("amount").alias("spend"))
            .orderBy(F.desc("spend"), "category")
            .limit(cfg.top_categories)
            .collect()
        ]
    channels = cfg.channels
    if channels is None:
        channels = [
            row["channel"]
            for row in history.filter(F.col("channel").isNotNull())
            .groupBy("channel")
            .agg(F.sum("amount").alias("spend"))
            .orderBy(F.desc("spend"), "channel")
            .limit(MAX_CHANNELS + 1)
            .collect()
        ]
        if len(channels) > MAX_CHANNELS:
            raise InputError(
                f"table transactions, column channel: more than {MAX_CHANNELS} distinct values; "
                "list the channels to keep in features.channels"
            )
    return list(categories), list(channels)


def build_customer_features(
    transactions: DataFrame,
    as_of_date: dt.date,
    cfg: FeaturesConfig,
    categories: list[str],
    channels: list[str],
    customers: Optional[DataFrame] = None,
) -> DataFrame:
    """Per-customer features from canonical transactions, as of `as_of_date`.

    >>> features = build_customer_features(transactions, date(2025, 12, 31), cfg, ["books"], ["web"])
    """
    as_of = F.lit(as_of_date)
    purchase = F.col("amount") >= 0
    age_days = F.datediff(as_of, F.to_date("order_ts"))
    trend_days = cfg.trend_window_days

    def net_spend_where(condition: Column) -> Column:
        return F.sum(F.when(condition, F.col("amount")).otherwise(F.lit(0.0)))

    def gross_spend_where(condition: Column) -> Column:
        return F.sum(F.when(purchase & condition, F.col("amount")).otherwise(F.lit(0.0)))

    order_key = F.coalesce(F.col("order_id"), F.col("order_ts").cast("string"))
    aggregates = [
        F.collect_set(
            F.when(purchase, F.struct(order_key.alias("key"), F.col("order_ts").alias("ts")))
        ).alias(_ORDERS),
        F.sum("amount").alias("monetary"),
        gross_spend_where(F.lit(True)).alias(_GROSS),
        F.sum(F.when(~purchase, -F.col("amount")).otherwise(F.lit(0.0))).alias("returned_amount"),
        *[net_spend_where(age_days < days).alias(f"spend_{days}d") for days in cfg.windows_days],
        net_spend_where(age_days < trend_days).alias("_trend_recent"),
        net_spend_where((age_days >= trend_days) & (age_days < 2 * trend_days)).alias("_trend_previous"),
        F.size(F.collect_set(F.when(purchase, F.col("category")))).alias("distinct_categories"),
        *[
            gross_spend_where(F.col("category") == F.lit(level)).alias(name)
            for level, name in zip(categories, _share_names("category_share", categories), strict=False)
        ],
        *[
            gross_spend_where(F.col("channel") == F.lit(level)).alias(name)
            for level, name in zip(channels, _share_names("channel_share", channels), strict=False)
        ],
    ]
    per_customer = transactions.filter(F.to_date("order_ts") <= as_of).groupBy(CUSTOMER_ID).agg(*aggregates)
    features = _order_features(per_customer, as_of, cfg.windows_days)
    gross = F.col(_GROSS)
    recent, previous = F.col("_trend_recent"), F.col("_trend_previous")
    magnitude = F.abs(recent) + F.abs(previous)
    share_columns = _share_names("category_share", categories) + _share_names("channel_share", channels)
    features = features.select(
        CUSTOMER_ID,
        as_of.alias(AS_OF_DATE),
        "frequency",
        "monetary",
        "recency_days",
        "tenure_days",
        (F.col("monetary") / F.col("frequency")).alias("avg_order_value"),
        *[f"orders_{days}d" for days in cfg.windows_days],
        *[f"spend_{days}d" for days in cfg.windows_days],
        F.when(magnitude > 0, (recent - previous) / magnitude).otherwise(F.lit(0.0)).alias("spend_trend"),
        "mean_days_between_orders",
        "std_days_between_orders",
        gross.alias(_GROSS),
        "returned_amount",
        F.when(gross > 0, F.col("returned_amount") / gross).alias("return_share"),
        "distinct_categories",
        *[F.when(gross > 0, F.col(name) / gross).otherwise(F.lit(0.0)).alias(name) for name in share_columns],
        "weekend_share",
    )
    if customers is not None:
        features = features.join(_customer_attributes(customers, as_of), CUSTOMER_ID, "left")
    return features


def _order_features(per_customer: DataFrame, as_of: Column, windows_days: list[int]) -> DataFrame:
    """Order-level facts from the per-customer set of (order key, line time) pairs.

    Sorted by key, the first element of each key run is that order's earliest line; its date
    is the order date. Each array is built once as a column, since lambdas that reference an
    expression would recompute it per element.
    """
    by_key = F.col(_ORDERS_BY_KEY)
    first_line_per_order = F.filter(
        by_key, lambda order, i: (i == 0) | (F.element_at(by_key, i).getField("key") != order.getField("key"))
    )
    order_dates = F.sort_array(
        F.transform(first_line_per_order, lambda order: F.to_date(order.getField("ts")))
    )
    with_dates = (
        per_customer.filter(F.size(_ORDERS) > 0)
        .withColumn(_ORDERS_BY_KEY, F.sort_array(_ORDERS))
        .withColumn(_ORDER_DATES, order_dates)
        .withColumn("frequency", F.size(_ORDER_DATES).cast("long"))
    )
    dates, frequency = F.col(_ORDER_DATES), F.col("frequency")
    first_date, last_date = F.element_at(dates, 1), F.element_at(dates, -1)
    mean_gap = F.when(frequency >= 2, F.datediff(last_date, first_date) / (frequency - 1))
    gaps = F.transform(
        F.slice(dates, 2, F.greatest(frequency - 1, F.lit(0)).cast("int")),
        lambda day, i: F.datediff(day, F.element_at(dates, i + 1)),
    )
    squared_deviations = F.aggregate(
        gaps, F.lit(0.0), lambda total, gap: total + F.pow(gap - F.col("mean_days_between_orders"), 2)
    )
    return (
        with_dates.withColumn("recency_days", F.datediff(as_of, last_date))
        .withColumn("tenure_days", F.datediff(as_of, first_date))
        .withColumn("mean_days_between_orders", mean_gap)
        .withColumn(
            "std_days_between_orders",
            F.when(frequency >= 3, F.sqrt(squared_deviations / (frequency - 2))),
        )
        .withColumns({f"orders_{days}d": _count_within(dates, as_of, days) for days in windows_days})
        .withColumn(
            "weekend_share",
            F.size(F.filter(dates, lambda day: F.dayofweek(day).isin(1, 7))) / frequency,
        )
    )


def _count_within(dates: Column, as_of: Column, days: int) -> Column:
    return F.size(F.filter(dates, lambda day: F.datediff(as_of, day) < days)).cast("long")


def _customer_attributes(customers: DataFrame, as_of: Column) -> DataFrame:
    age_years = F.floor(F.months_between(as_of, F.col("birth_date")) / 12).cast("int")
    extras = [c for c in customers.columns if c not in {CUSTOMER_ID, "signup_date", "birth_date"}]
    return customers.select(
        CUSTOMER_ID,
        "signup_date",
        F.when(F.col("signup_date") <= as_of, F.datediff(as_of, F.col("signup_date"))).alias(
            "days_since_signup"
        ),
        age_years.alias("age_years"),
        *extras,
    )


def _share_names(prefix: str, levels: list[str]) -> list[str]:
    """Column-safe, unique names: `category_share_home_garden` for "Home & Garden"."""
    names: list[str] = []
    for level in levels:
        slug = re.sub(r"[^0-9a-z]+", "_", str(level).lower()).strip("_") or "blank"
        name, suffix = f"{prefix}_{slug}", 2
        while name in names:
            name, suffix = f"{prefix}_{slug}_{suffix}", suffix + 1
        names.append(name)
    return names
