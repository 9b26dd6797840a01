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
from segmentation.tables import (
    AGE_YEARS,
    AMOUNT,
    AS_OF_DATE,
    AVG_ORDER_VALUE,
    BIRTH_DATE,
    CATEGORY,
    CATEGORY_SHARE_PREFIX,
    CHANNEL,
    CHANNEL_SHARE_PREFIX,
    CUSTOMER_ID,
    DAYS_SINCE_SIGNUP,
    DISTINCT_CATEGORIES,
    FREQUENCY,
    GROSS_SPEND,
    MEAN_DAYS_BETWEEN_ORDERS,
    MONETARY,
    ORDER_ID,
    ORDER_TS,
    RECENCY_DAYS,
    RETURN_SHARE,
    RETURNED_AMOUNT,
    SIGNUP_DATE,
    SPEND_TREND,
    STD_DAYS_BETWEEN_ORDERS,
    TENURE_DAYS,
    WEEKEND_SHARE,
    orders_in_window,
    spend_in_window,
)

MAX_CHANNELS = 50

_ORDERS = "_orders"
_ORDER_AGES = "_order_ages"
_WINDOW_MARKS = "_window_marks"
_KEY_BITS, _DAY_BITS = 43, 20
_DAY_OFFSET = 1 << 19


def feature_levels(
    transactions: DataFrame, as_of_date: dt.date, cfg: FeaturesConfig
) -> tuple[list[str], list[str]]:
    """Categories and channels that get a share column: from config, else the top
    `top_categories` categories by gross spend and every channel seen.

    Both come from one scan (grouping sets); only the ranked levels reach the driver.
    """
    if cfg.categories is not None and cfg.channels is not None:
        return list(cfg.categories), list(cfg.channels)
    purchases = transactions.filter(F.to_date(ORDER_TS) <= F.lit(as_of_date)).filter(F.col(AMOUNT) >= 0)
    level = F.coalesce(F.col(CATEGORY), F.col(CHANNEL))
    ranked = (
        purchases.groupingSets([[CATEGORY], [CHANNEL]], CATEGORY, CHANNEL)
        .agg(F.sum(AMOUNT).alias("spend"), F.grouping(CATEGORY).alias("is_channel"))
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
    *,
    categories: list[str],
    channels: list[str],
    customers: Optional[DataFrame] = None,
) -> DataFrame:
    """Per-customer features from canonical transactions, as of `as_of_date` (module docstring),
    with a share column per category in `categories` and channel in `channels`, from
    `feature_levels`, and the attributes of `customers` when given. Reads and writes nothing:
    `build_customer_features(transactions, date(2025, 12, 31), cfg, categories=["books"],
    channels=["web"])`."""
    as_of = F.lit(as_of_date)
    purchase = F.col(AMOUNT) >= 0
    age_days = F.datediff(as_of, F.to_date(ORDER_TS))
    trend_days = cfg.trend_window_days

    def net_spend_where(condition: Column) -> Column:
        return F.sum(F.when(condition, F.col(AMOUNT)).otherwise(F.lit(0.0)))

    def gross_spend_where(condition: Column) -> Column:
        return F.sum(F.when(purchase & condition, F.col(AMOUNT)).otherwise(F.lit(0.0)))

    order_key = F.coalesce(F.col(ORDER_ID), F.col(ORDER_TS).cast("string"))
    aggregates = [
        F.collect_list(F.when(purchase, _order_code(order_key, F.col(ORDER_TS)))).alias(_ORDERS),
        F.sum(AMOUNT).alias(MONETARY),
        gross_spend_where(F.lit(True)).alias(GROSS_SPEND),
        F.sum(F.when(~purchase, -F.col(AMOUNT)).otherwise(F.lit(0.0))).alias(RETURNED_AMOUNT),
        *[net_spend_where(age_days < days).alias(spend_in_window(days)) for days in cfg.windows_days],
        net_spend_where(age_days < trend_days).alias("_trend_recent"),
        net_spend_where((age_days >= trend_days) & (age_days < 2 * trend_days)).alias("_trend_previous"),
        F.size(F.collect_set(F.when(purchase, F.col(CATEGORY)))).alias(DISTINCT_CATEGORIES),
        *[
            gross_spend_where(F.col(CATEGORY) == F.lit(level)).alias(name)
            for level, name in zip(categories, _share_names(CATEGORY_SHARE_PREFIX, categories), strict=False)
        ],
        *[
            gross_spend_where(F.col(CHANNEL) == F.lit(level)).alias(name)
            for level, name in zip(channels, _share_names(CHANNEL_SHARE_PREFIX, channels), strict=False)
        ],
    ]
    per_customer = transactions.filter(F.to_date(ORDER_TS) <= as_of).groupBy(CUSTOMER_ID).agg(*aggregates)
    features = _order_features(per_customer, as_of_date, cfg.windows_days)
    gross = F.col(GROSS_SPEND)
    recent, previous = F.col("_trend_recent"), F.col("_trend_previous")
    magnitude = F.abs(recent) + F.abs(previous)
    share_columns = _share_names(CATEGORY_SHARE_PREFIX, categories) + _share_names(
        CHANNEL_SHARE_PREFIX, channels
    )
    features = features.select(
        CUSTOMER_ID,
        as_of.alias(AS_OF_DATE),
        FREQUENCY,
        MONETARY,
        RECENCY_DAYS,
        TENURE_DAYS,
        (F.col(MONETARY) / F.col(FREQUENCY)).alias(AVG_ORDER_VALUE),
        *[orders_in_window(days) for days in cfg.windows_days],
        *[spend_in_window(days) for days in cfg.windows_days],
        F.when(magnitude > 0, (recent - previous) / magnitude).otherwise(F.lit(0.0)).alias(SPEND_TREND),
        MEAN_DAYS_BETWEEN_ORDERS,
        STD_DAYS_BETWEEN_ORDERS,
        GROSS_SPEND,
        RETURNED_AMOUNT,
        F.when(gross > 0, F.col(RETURNED_AMOUNT) / gross).alias(RETURN_SHARE),
        DISTINCT_CATEGORIES,
        *[F.when(gross > 0, F.col(name) / gross).otherwise(F.lit(0.0)).alias(name) for name in share_columns],
        WEEKEND_SHARE,
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
        .withColumn(FREQUENCY, F.size(_ORDER_AGES).cast("long"))
        .withColumn(_WINDOW_MARKS, F.sort_array(F.concat(_ORDER_AGES, F.array(*map(F.lit, windows)))))
    )
    ages, frequency = F.col(_ORDER_AGES), F.col(FREQUENCY)
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
        recency.alias(RECENCY_DAYS),
        tenure.alias(TENURE_DAYS),
        mean_gap.alias(MEAN_DAYS_BETWEEN_ORDERS),
        F.when(frequency >= 3, F.sqrt(F.greatest(gap_variance, F.lit(0.0)))).alias(STD_DAYS_BETWEEN_ORDERS),
        *[
            (F.array_position(marks, days) - F.lit(rank)).alias(orders_in_window(days))
            for rank, days in enumerate(windows, start=1)
        ],
        (weekend / frequency).alias(WEEKEND_SHARE),
    )


def _at_least_zero(column: Column) -> Column:
    return F.greatest(column, F.lit(0)).cast("int")


def _customer_attributes(customers: DataFrame, as_of: Column) -> DataFrame:
    age_years = F.floor(F.months_between(as_of, F.col(BIRTH_DATE)) / 12).cast("int")
    extras = [c for c in customers.columns if c not in {CUSTOMER_ID, SIGNUP_DATE, BIRTH_DATE}]
    return customers.select(
        CUSTOMER_ID,
        SIGNUP_DATE,
        F.when(F.col(SIGNUP_DATE) <= as_of, F.datediff(as_of, F.col(SIGNUP_DATE))).alias(DAYS_SINCE_SIGNUP),
        age_years.alias(AGE_YEARS),
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
