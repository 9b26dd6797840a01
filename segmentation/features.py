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

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from segmentation.config import FeaturesConfig
from segmentation.errors import InputError

CUSTOMER_FEATURES = "customer_features"
CUSTOMER_ID = "customer_id"
AS_OF_DATE = "as_of_date"
MAX_CHANNELS = 50

_ORDERS = "_orders"
_ORDER_AGES = "_order_ages"
_WINDOW_MARKS = "_window_marks"
_KEY_BITS, _DAY_BITS = 43, 20
_DAY_OFFSET = 1 << 19
_GROSS = "gross_spend"


def feature_levels(
    transactions: DataFrame, as_of_date: dt.date, cfg: FeaturesConfig
) -> tuple[list[str], list[str]]:
    """Categories and channels that get a share column: from config, else the top
    `top_categories` categories by gross spend and every channel seen.

    Both come from one scan (grouping sets); only the ranked levels reach the driver.
    """
    if cfg.categories is not None and cfg.channels is not None:
        return list(cfg.categories), list(cfg.channels)
    purchases = transactions.filter(F.to_date("order_ts") <= F.lit(as_of_date)).filter(F.col("amount") >= 0)
    level = F.coalesce(F.col("category"), F.col("channel"))
    ranked = (
        purchases.groupingSets([["category"], ["channel"]], "category", "channel")
        .agg(F.sum("amount").alias("spend"), F.grouping("category").alias("is_channel"))
        .filter(level.isNotNull())
        .withColumn(
            "rank",
            F.row_number().over(Window.partitionBy("is_channel").orderBy(F.desc("spend"), level)),
        )
        .filter(
            F.col("rank") <= F.when(F.col("is_channel") == 1, MAX_CHANNELS + 1).otherwise(cfg.top_categories)
        )
        .orderBy("is_channel", "rank")
        .select(level.alias("level"), "is_channel")
        .collect()
    )
    categories = (
        cfg.categories if cfg.categories is not None else [r.level for r in ranked if r.is_channel == 0]
    )
    channels = cfg.channels if cfg.channels is not None else [r.level for r in ranked if r.is_channel == 1]
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
        F.collect_list(F.when(purchase, _order_code(order_key, F.col("order_ts")))).alias(_ORDERS),
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
    features = _order_features(per_customer, as_of_date, cfg.windows_days)
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


def _order_code(order_key: Column, order_ts: Column) -> Column:
    """One long per order line: 43 bits of the order key's hash, then 20 bits of its date.

    Sorting the codes groups each order's lines with its earliest date first; longs keep the
    per-customer list and its sort cheap (a 43-bit hash collides once in ~10^13 order pairs).
    """
    key_bits = F.xxhash64(order_key).bitwiseAND(F.lit((1 << _KEY_BITS) - 1))
    day_bits = F.unix_date(F.to_date(order_ts)) + F.lit(_DAY_OFFSET)
    return F.shiftleft(key_bits, _DAY_BITS).bitwiseOR(day_bits.cast("long"))


def _order_features(per_customer: DataFrame, as_of_date: dt.date, windows_days: list[int]) -> DataFrame:
    """Order-level facts from the per-customer list of order-line codes.

    Lambdas are interpreted per element, so they are few: arrays are built once as columns
    (a lambda referencing an expression would recompute it per element), duplicates go first
    with the native `array_distinct`, and window counts read positions in a sorted array.
    """
    codes = F.col(_ORDERS)
    first_line_per_order = F.filter(
        codes,
        lambda code, i: (i == 0)
        | (F.shiftright(F.element_at(codes, i), _DAY_BITS) != F.shiftright(code, _DAY_BITS)),
    )
    as_of_day = (as_of_date - dt.date(1970, 1, 1)).days
    day_mask = F.lit((1 << _DAY_BITS) - 1)
    # Days before the as-of date of each order, most recent first.
    order_ages = F.sort_array(
        F.transform(
            first_line_per_order,
            lambda code: F.lit(as_of_day + _DAY_OFFSET) - code.bitwiseAND(day_mask).cast("int"),
        )
    )
    windows = sorted(set(windows_days))
    with_ages = (
        per_customer.filter(F.size(_ORDERS) > 0)
        .withColumn(_ORDERS, F.sort_array(F.array_distinct(_ORDERS)))
        .withColumn(_ORDER_AGES, order_ages)
        .withColumn("frequency", F.size(_ORDER_AGES).cast("long"))
        .withColumn(_WINDOW_MARKS, F.sort_array(F.concat(_ORDER_AGES, F.array(*map(F.lit, windows)))))
    )
    ages, frequency = F.col(_ORDER_AGES), F.col("frequency")
    recency, tenure = F.element_at(ages, 1), F.element_at(ages, -1)
    mean_gap = F.when(frequency >= 2, (tenure - recency) / (frequency - 1))
    gap_count = _at_least_zero(frequency - 1)
    squared_gaps = F.aggregate(
        F.zip_with(
            F.slice(ages, 2, gap_count),
            F.slice(ages, 1, gap_count),
            lambda older, newer: (older - newer).cast("double"),
        ),
        F.lit(0.0),
        lambda total, gap: total + gap * gap,
    )
    # Sample variance from the sum of squares: (sum g^2 - m * mean^2) / (m - 1) over m gaps.
    gap_variance = (squared_gaps - (frequency - 1) * mean_gap * mean_gap) / (frequency - 2)
    # 1970-01-01 was a Thursday: (days since then + 3) mod 7 is 5 on Saturday, 6 on Sunday.
    weekend = F.size(F.filter(ages, lambda age: F.pmod(F.lit(as_of_day + 3) - age, F.lit(7)) >= 5))
    # Window w_j sits after every age below it and after the j - 1 smaller windows.
    marks = F.col(_WINDOW_MARKS)
    return with_ages.select(
        "*",
        recency.alias("recency_days"),
        tenure.alias("tenure_days"),
        mean_gap.alias("mean_days_between_orders"),
        F.when(frequency >= 3, F.sqrt(F.greatest(gap_variance, F.lit(0.0)))).alias("std_days_between_orders"),
        *[
            (F.array_position(marks, days) - F.lit(rank)).alias(f"orders_{days}d")
            for rank, days in enumerate(windows, start=1)
        ],
        (weekend / frequency).alias("weekend_share"),
    )


def _at_least_zero(column: Column) -> Column:
    return F.greatest(column, F.lit(0)).cast("int")


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
