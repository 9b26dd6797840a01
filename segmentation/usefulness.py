"""Are segments useful on future behaviour? Next-period outcomes per segment, against RFM scores.

A segmentation is useful to a marketer when customers of different segments go on to behave
differently. This module measures that on what happened after the as-of date `D`, and measures
the classic RFM-score segmentation the same way, as the baseline to beat. Definitions:

* **Customers evaluated**: those of one published assignment as of `D`; the stage picks it
  (`segmentation.stages.evaluate`).
* **Next period**: the `H` days after `D`, by date as the features count them (a transaction
  belongs to the date of its `order_ts`, `D` included in the features): `D < date(order_ts) <=
  D + H`. A purchase on `D` itself is history, one on `D + H` is in, one after is out.
* **Next-period outcomes per customer**: `next_orders`, orders as the features define them
  (distinct `order_id`, or `order_ts` when the id is missing, among purchase lines `amount >= 0`);
  `next_spend`, the sum of `amount` (net of returns, as `monetary`); `bought_again` = 1 when
  `next_orders > 0`, else 0. A customer with no transaction in the period counts with 0, 0, 0.
* **Per segment**: customers, the share who bought again (mean of `bought_again`), the mean
  next-period spend per customer, and the segment's share of all next-period spend.
* **Eta squared** of an outcome = between-segment sum of squares / total sum of squares, over
  customers: the share of the outcome's variance that segment membership explains (the R^2 of
  predicting each customer's outcome by their segment's mean). From one `groupBy(segment)` with
  count, mean and population variance (Spark's numerically stable moments): between =
  sum_g n_g (mean_g - mean)^2, within = sum_g n_g var_g, total = between + within. For spend
  and for `bought_again` as 0/1; None when the outcome does not vary (total 0).
* **RFM baseline** as of `D`, from each customer's `customer_features` row: recency =
  `recency_days` (fewer days scores higher), frequency = `frequency` (orders), monetary =
  `monetary` (net spend up to `D`, the column that exists; `avg_order_value` would measure
  basket size, not value). Each is scored 1-5 by quintile: score = 1 + floor(5 * p) capped at 5,
  p = (customers with a strictly worse value) / (customers - 1), i.e. Spark's `percent_rank`
  with recent, frequent and high spend as better. Tied values get the same score (no tie
  broken by customer id), so scores are a function of the values alone and quintiles of
  heavily tied columns (most customers have one order) are uneven, as in the classic method.
* **RFM segments**: the (R, F, M) cells, at most 125, are ordered by the score sum R + F + M,
  then R, F, M (recency first: in the RFM literature the strongest predictor of a repeat
  purchase); a cell goes to segment 1 + floor(k * c / n), capped at k, where c is the number of
  customers in the cells before it plus half its own, n all customers, k the assignment's
  number of segments: k near-equal-count groups along the RFM ranking, as `ntile(k)` would
  make, except that a cell is never split, so customers with the same scores share a segment
  and the baseline is a function of RFM alone. A cell larger than n / k can leave a segment
  number empty; segments are then renumbered 1.. in order, and there are fewer than k. Segment
  1 is the lowest RFM rank; a segment is named by the range of its score sums (`RFM 3-5`).

Everything per customer stays in Spark; only k-row aggregates reach the driver.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from segmentation.tables import (
    AMOUNT,
    CUSTOMER_COUNT,
    CUSTOMER_ID,
    FREQUENCY,
    MONETARY,
    ORDER_ID,
    ORDER_TS,
    RECENCY_DAYS,
)

NEXT_ORDERS = "next_orders"
NEXT_SPEND = "next_spend"
BOUGHT_AGAIN = "bought_again"
R_SCORE, F_SCORE, M_SCORE = "r_score", "f_score", "m_score"
RFM_SEGMENT_ID, RFM_SEGMENT_NAME = "rfm_segment_id", "rfm_segment_name"
QUINTILES = 5

_SCORE_SUM, _CELL_BEFORE, _CELL_SEGMENT = "_score_sum", "_cell_before", "_cell_segment"
_MEAN_SPEND, _VAR_SPEND, _SUM_SPEND = "_mean_spend", "_var_spend", "_sum_spend"
_MEAN_BOUGHT, _VAR_BOUGHT, _MEAN_ORDERS = "_mean_bought", "_var_bought", "_mean_orders"


@dataclass(frozen=True)
class SegmentOutcome:
    """What one segment's customers did in the next period."""

    segment_id: int
    segment_name: str
    customers: int
    bought_again_share: float
    mean_spend: float  # next-period net spend per customer
    spend_share: Optional[float]  # of all next-period spend; None when that is 0
    mean_orders: float


@dataclass(frozen=True)
class SegmentationOutcome:
    """One segmentation's next-period table and how much of the outcomes' variance it explains."""

    method: str
    segments: tuple[SegmentOutcome, ...]
    customers: int
    bought_again_share: float
    mean_spend: float
    eta_squared_spend: Optional[float]
    eta_squared_bought_again: Optional[float]


def next_period_outcomes(
    transactions: DataFrame, customers: DataFrame, *, as_of_date: dt.date, horizon_days: int
) -> DataFrame:
    """`customers` (one row per customer, any columns) with `next_orders`, `next_spend` and
    `bought_again` from `transactions` dated in (as_of_date, as_of_date + horizon_days]; 0 for a
    customer without any. Reads and writes nothing."""
    day = F.to_date(ORDER_TS)
    window_end = as_of_date + dt.timedelta(days=horizon_days)
    in_period = transactions.filter((day > F.lit(as_of_date)) & (day <= F.lit(window_end)))
    order_key = F.coalesce(F.col(ORDER_ID), F.col(ORDER_TS).cast("string"))
    per_customer = in_period.join(customers.select(CUSTOMER_ID), CUSTOMER_ID, "left_semi").groupBy(
        CUSTOMER_ID
    )
    later = per_customer.agg(
        F.count_distinct(F.when(F.col(AMOUNT) >= 0, order_key)).alias(NEXT_ORDERS),
        F.sum(AMOUNT).alias(NEXT_SPEND),
    )
    orders = F.coalesce(F.col(NEXT_ORDERS), F.lit(0)).cast("long")
    return customers.join(later, CUSTOMER_ID, "left").select(
        *[F.col(name) for name in customers.columns],
        orders.alias(NEXT_ORDERS),
        F.coalesce(F.col(NEXT_SPEND), F.lit(0.0)).cast("double").alias(NEXT_SPEND),
        (orders > 0).cast("int").alias(BOUGHT_AGAIN),
    )


def rfm_scores(features: DataFrame) -> DataFrame:
    """(customer_id, r_score, f_score, m_score): quintile scores 1-5 of `recency_days` (fewer
    days score higher), `frequency` and `monetary` over the customers of `features` (module
    docstring).

    The ranks come from a window over each column's distinct values with their counts, not
    over customers: recency and frequency have few distinct values, so the window, which
    Spark runs in one partition, stays small where it can."""
    scored = features.select(CUSTOMER_ID, RECENCY_DAYS, FREQUENCY, MONETARY)
    for column, score, better_is_lower in (
        (RECENCY_DAYS, R_SCORE, True),
        (FREQUENCY, F_SCORE, False),
        (MONETARY, M_SCORE, False),
    ):
        scored = scored.join(
            _quintile_scores(features, column, score, better_is_lower=better_is_lower), column
        )
    return scored.select(CUSTOMER_ID, R_SCORE, F_SCORE, M_SCORE)


def _quintile_scores(features: DataFrame, column: str, score: str, *, better_is_lower: bool) -> DataFrame:
    """(value, score) for each distinct value of `column`: 1 + floor(5 * worse / (n - 1)),
    capped at 5, where `worse` counts the customers with a strictly worse value."""
    counts = features.groupBy(column).agg(F.count(F.lit(1)).alias(CUSTOMER_COUNT))
    value = F.col(column)
    ranking = Window.orderBy(value.desc() if better_is_lower else value.asc())
    worse = F.coalesce(
        F.sum(CUSTOMER_COUNT).over(ranking.rowsBetween(Window.unboundedPreceding, -1)), F.lit(0)
    )
    customers = F.sum(CUSTOMER_COUNT).over(
        ranking.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    )
    # Integer numerator and denominator: the floor of their exact quotient, no rounding at p = k/5.
    quintile = F.floor(F.lit(QUINTILES) * worse / F.greatest(customers - 1, F.lit(1)))
    return counts.select(value, F.least(F.lit(QUINTILES), F.lit(1) + quintile).cast("int").alias(score))


def rfm_segments(features: DataFrame, *, segments: int) -> DataFrame:
    """(customer_id, r_score, f_score, m_score, rfm_segment_id, rfm_segment_name): the RFM
    baseline grouped into at most `segments` segments (module docstring). Reads and writes
    nothing: `rfm_segments(customer_features_as_of_d, segments=6)`."""
    scores = rfm_scores(features)
    score_sum = F.col(R_SCORE) + F.col(F_SCORE) + F.col(M_SCORE)
    cells = scores.groupBy(R_SCORE, F_SCORE, M_SCORE).agg(F.count(F.lit(1)).alias(CUSTOMER_COUNT))
    ranking = Window.orderBy(score_sum, R_SCORE, F_SCORE, M_SCORE)
    before = F.coalesce(
        F.sum(CUSTOMER_COUNT).over(ranking.rowsBetween(Window.unboundedPreceding, -1)), F.lit(0)
    )
    total = F.sum(CUSTOMER_COUNT).over(
        ranking.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    )
    # Twice the position of the cell's middle customer, so the division stays exact.
    middle_twice = 2 * before + F.col(CUSTOMER_COUNT)
    group = F.least(F.lit(segments), F.lit(1) + F.floor(F.lit(segments) * middle_twice / (2 * total)))
    placed = cells.select(
        R_SCORE, F_SCORE, M_SCORE, score_sum.alias(_SCORE_SUM), group.cast("int").alias(_CELL_SEGMENT)
    )
    # At most 125 cells: the renumbering and naming windows are tiny.
    numbered = placed.select(
        "*", F.dense_rank().over(Window.orderBy(_CELL_SEGMENT)).cast("int").alias(RFM_SEGMENT_ID)
    )
    in_segment = Window.partitionBy(RFM_SEGMENT_ID)
    low, high = F.min(_SCORE_SUM).over(in_segment), F.max(_SCORE_SUM).over(in_segment)
    name = F.when(low == high, F.format_string("RFM %d", low)).otherwise(
        F.format_string("RFM %d-%d", low, high)
    )
    mapping = numbered.select(R_SCORE, F_SCORE, M_SCORE, RFM_SEGMENT_ID, name.alias(RFM_SEGMENT_NAME))
    return scores.join(F.broadcast(mapping), [R_SCORE, F_SCORE, M_SCORE]).select(
        CUSTOMER_ID, R_SCORE, F_SCORE, M_SCORE, RFM_SEGMENT_ID, RFM_SEGMENT_NAME
    )


def summarize(outcomes: DataFrame, *, method: str, segment: str, name: str) -> SegmentationOutcome:
    """The per-segment table and eta squared of `outcomes` (from `next_period_outcomes`) grouped
    by the `segment` id column, named by `name`: one aggregation, k rows to the driver."""
    spend, bought = F.col(NEXT_SPEND), F.col(BOUGHT_AGAIN).cast("double")
    rows = (
        outcomes.groupBy(segment, name)
        .agg(
            F.count(F.lit(1)).alias(CUSTOMER_COUNT),
            F.avg(spend).alias(_MEAN_SPEND),
            F.var_pop(spend).alias(_VAR_SPEND),
            F.sum(spend).alias(_SUM_SPEND),
            F.avg(bought).alias(_MEAN_BOUGHT),
            F.var_pop(bought).alias(_VAR_BOUGHT),
            F.avg(NEXT_ORDERS).alias(_MEAN_ORDERS),
        )
        .orderBy(segment)
        .collect()
    )
    customers = sum(row[CUSTOMER_COUNT] for row in rows)
    total_spend = sum(row[_SUM_SPEND] for row in rows)
    segments = tuple(
        SegmentOutcome(
            segment_id=row[segment],
            segment_name=row[name],
            customers=row[CUSTOMER_COUNT],
            bought_again_share=row[_MEAN_BOUGHT],
            mean_spend=row[_MEAN_SPEND],
            spend_share=row[_SUM_SPEND] / total_spend if total_spend else None,
            mean_orders=row[_MEAN_ORDERS],
        )
        for row in rows
    )
    sizes = [row[CUSTOMER_COUNT] for row in rows]
    return SegmentationOutcome(
        method=method,
        segments=segments,
        customers=customers,
        bought_again_share=_pooled_mean(sizes, [row[_MEAN_BOUGHT] for row in rows]),
        mean_spend=total_spend / customers if customers else 0.0,
        eta_squared_spend=eta_squared(
            sizes, [row[_MEAN_SPEND] for row in rows], [row[_VAR_SPEND] for row in rows]
        ),
        eta_squared_bought_again=eta_squared(
            sizes, [row[_MEAN_BOUGHT] for row in rows], [row[_VAR_BOUGHT] for row in rows]
        ),
    )


def _pooled_mean(sizes: list[int], means: list[float]) -> float:
    customers = sum(sizes)
    return sum(n * m for n, m in zip(sizes, means, strict=True)) / customers if customers else 0.0


def eta_squared(sizes: list[int], means: list[float], variances: list[float]) -> Optional[float]:
    """Between-group sum of squares over the total, from each group's size, mean and population
    variance; None when the total is 0 (the outcome does not vary).

    >>> eta_squared([2, 2], [1.0, 3.0], [1.0, 1.0])  # values 0, 2 | 2, 4: between 4, within 4
    0.5
    """
    grand = _pooled_mean(sizes, means)
    between = sum(n * (m - grand) ** 2 for n, m in zip(sizes, means, strict=True))
    within = sum(n * v for n, v in zip(sizes, variances, strict=True))
    total = between + within
    return between / total if total > 0 else None
