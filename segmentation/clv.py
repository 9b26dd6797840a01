"""Customer lifetime value: BG/NBD purchase counts and Gamma-Gamma order values, fitted on Spark.

Models and equation numbers:

* BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to
  the Pareto/NBD model", Marketing Science 24(2). Likelihood eq. (6), in the log-sum-exp form
  ln(A1 A2 (A3 + delta(x>0) A4)) of their note "Implementing the BG/NBD model for customer base
  analysis in Excel"; conditional expected purchases eq. (10), whose denominator is 1 / P(alive).
* Gamma-Gamma: Fader & Hardie (2013), "The Gamma-Gamma model of monetary value": the marginal
  density of a customer's mean repeat-order value m_x (the gamma prior on the scale nu
  integrated out), and the conditional expectation E(M | x, m_x), eq. (5).

Definitions (`summary_frame`), chosen to reproduce the published CDNOW figures:

* orders are the features' orders (`segmentation.features`): a distinct `order_id`, or a
  distinct `order_ts` when the id is null; only purchase lines (amount >= 0) make orders; an
  order's time is its earliest line's, its value the sum of its purchase lines; only lines
  dated on or before `as_of_date` count;
* time is whole days between calendar dates (the order timestamps' dates in the session time
  zone, UTC here; the as-of date counts as a date, not as its end of day), divided by 7 for
  weeks: a customer who first bought on 1997-01-01 has T = 272 / 7 = 38.857 weeks as of
  1997-09-30, the CDNOW data set's 38.86 (to the end of that day, 273 / 7, the fit moves
  to a = 0.814 and a log-likelihood of -9589.9 instead of the published 0.793 and -9582.4);
* x = orders - 1 (repeat purchases), t_x = days from the first to the last order, T = days
  from the first order to `as_of_date`;
* m_x = mean value of the x repeat orders: the first order is left out, as in Fader & Hardie's
  CDNOW analysis (with it, the CDNOW fit gives p = 13.5 instead of 6.25); null when x = 0.
  Of several orders on the first day, the first is the one with the earliest timestamp, then
  the smallest order key.

Why the fits never bring customer-sized data to the driver: the BG/NBD likelihood depends on a
customer only through (x, t_x, T), so `combination_counts` groups customers into distinct
combinations with a count; when those are few (at most `max_driver_rows`) they are collected
and fitted with numpy, else each optimiser step is one Spark aggregate returning the
log-likelihood and its gradient. Spark has no log-gamma or digamma, but in both models every
log-gamma and digamma term depends on a customer through x alone: those are evaluated with
scipy on the driver over the distinct x and their counts (collected once; x is bounded by a
customer's orders, so there are few), and the rest of each row's term is built-in Spark
arithmetic summed with `F.sum`. No Python runs per row in the optimiser's loop: a Python UDF
there cost a serialisation round trip of every row at every step (at 1M customers, 234 s for
BG/NBD's and 308 s for Gamma-Gamma's Spark fits, see bench/RESULTS.md). m_x is continuous, so
Gamma-Gamma's (x, m_x) combinations barely shrink the data: past `max_driver_rows` its Spark
path aggregates over the cached combinations, about one row per repeat buyer. Each optimiser
step of a Spark path is one job; `starts` multiplies the number of steps.

Numerical care: the likelihood is summed as log-sum-exp of ln A3 and ln A4 (both overflow or
underflow as powers (r + x)); P(alive) is a logistic function of a log-odds, so
((alpha + T)/(alpha + t_x))^(r + x) is never formed; the 2F1 of eq. (10) is used after
Euler's transformation (see `expected_purchases`), which keeps its parameters bounded in x.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType
from scipy import optimize, special

from segmentation.errors import InputError
from segmentation.tables import (
    AMOUNT,
    CUSTOMER_AGE,
    CUSTOMER_ID,
    EXPECTED_ORDER_VALUE,
    LAST_PURCHASE_AGE,
    ORDER_ID,
    ORDER_TS,
    P_ALIVE,
    REPEAT_ORDER_VALUE,
    REPEAT_PURCHASES,
    clv_in,
    expected_purchases_in,
)

# Columns of the per-customer summary (customer_value's names) and of the combination counts.
X = REPEAT_PURCHASES
T_X = LAST_PURCHASE_AGE
T_CAL = CUSTOMER_AGE
M_X = REPEAT_ORDER_VALUE
COUNT = "count"

DAYS_PER_UNIT = {"weeks": 7.0, "days": 1.0}
DAYS_PER_YEAR = 365.25
DEFAULT_MAX_DRIVER_ROWS = 200_000

# Optimisation runs over log-parameters inside these bounds: exp(+-13.8) = 1e-6 .. 1e6.
_LOG_BOUND = math.log(1e6)
_OPTIONS = {"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-9}
# Eq. (10) divides by a - 1 (its limit at a = 1 is finite): a is moved off 1 by this much.
_A_NEAR_ONE = 1e-6

_ORDER_KEY, _ORDER_TIME, _ORDER_VALUE = "_order_key", "_order_time", "_order_value"
_ORDERS, _FIRST, _LAST, _TOTAL, _FIRST_VALUE = "_orders", "_first", "_last", "_total", "_first_value"
_DATA = "_data"

Params = Sequence[float]
Terms = Callable[..., tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class BgNbdFit:
    """Maximum-likelihood BG/NBD parameters: purchase rates ~ gamma(r, alpha), dropout
    probabilities ~ beta(a, b). `converged` is L-BFGS-B's success with no parameter at its
    bound; `iterations` and `message` are the best start's."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int
    converged: bool
    iterations: int
    message: str

    @property
    def params(self) -> tuple[float, float, float, float]:
        return (self.r, self.alpha, self.a, self.b)


@dataclass(frozen=True)
class GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma parameters: order values ~ gamma(p, nu), nu ~ gamma(q, v)
    (rates); `customers` counts the repeat buyers fitted."""

    p: float
    q: float
    v: float
    log_likelihood: float
    customers: int
    converged: bool
    iterations: int
    message: str

    @property
    def params(self) -> tuple[float, float, float]:
        return (self.p, self.q, self.v)


# ---------------------------------------------------------------------------------------------
# Summary per customer


def summary_frame(transactions: DataFrame, as_of_date: dt.date, *, time_unit: str = "weeks") -> DataFrame:
    """(customer_id, x, t_x, T, m_x) as of `as_of_date`, with the definitions of the module
    docstring. Two aggregations: orders per (customer, order key), then customers."""
    days = _days_per_unit(time_unit)
    orders = _orders(transactions.filter(F.to_date(ORDER_TS) <= F.lit(as_of_date)))
    order_date = F.to_date(F.col(_ORDER_TIME))
    first_value = F.min_by(F.col(_ORDER_VALUE), F.struct(F.col(_ORDER_TIME), F.col(_ORDER_KEY)))
    customers = orders.groupBy(CUSTOMER_ID).agg(
        F.count(F.lit(1)).alias(_ORDERS),
        F.min(order_date).alias(_FIRST),
        F.max(order_date).alias(_LAST),
        F.sum(_ORDER_VALUE).alias(_TOTAL),
        first_value.alias(_FIRST_VALUE),
    )
    repeats = F.col(_ORDERS) - 1
    return customers.select(
        F.col(CUSTOMER_ID),
        repeats.cast("long").alias(X),
        (F.datediff(F.col(_LAST), F.col(_FIRST)) / F.lit(days)).alias(T_X),
        (F.datediff(F.lit(as_of_date), F.col(_FIRST)) / F.lit(days)).alias(T_CAL),
        F.when(repeats > 0, (F.col(_TOTAL) - F.col(_FIRST_VALUE)) / repeats).alias(M_X),
    )


def order_dates(transactions: DataFrame) -> DataFrame:
    """(customer_id, order_ts, amount): one row per order as `summary_frame` counts orders, with
    the order's date (a date, not a timestamp) and value, over all dates: what a holdout period
    after the as-of date is checked against."""
    orders = _orders(transactions)
    return orders.select(
        F.col(CUSTOMER_ID),
        F.to_date(F.col(_ORDER_TIME)).alias(ORDER_TS),
        F.col(_ORDER_VALUE).alias(AMOUNT),
    )


def _orders(transactions: DataFrame) -> DataFrame:
    """Orders as the features define them: purchase lines grouped by order id, or by timestamp
    when the id is null; an order's time is its earliest line's, its value their sum."""
    timestamp = F.col(ORDER_TS)
    order_key = F.coalesce(F.col(ORDER_ID), timestamp.cast("string")).alias(_ORDER_KEY)
    return (
        transactions.filter(F.col(AMOUNT) >= 0)
        .groupBy(F.col(CUSTOMER_ID), order_key)
        .agg(F.min(timestamp).alias(_ORDER_TIME), F.sum(AMOUNT).alias(_ORDER_VALUE))
    )


def combination_counts(summary: DataFrame) -> DataFrame:
    """(x, t_x, T, count): BG/NBD's sufficient statistics, far fewer rows than customers when
    time is in whole days."""
    return summary.groupBy(F.col(X), F.col(T_X), F.col(T_CAL)).count()


def spend_counts(summary: DataFrame) -> DataFrame:
    """(x, m_x, count) over the customers Gamma-Gamma is fitted on: repeat buyers (x >= 1)
    whose mean repeat-order value is positive (the model's m_x is gamma-distributed)."""
    repeat_buyers = summary.filter((F.col(X) > 0) & (F.col(M_X) > 0))
    return repeat_buyers.groupBy(F.col(X), F.col(M_X)).count()


def frequency_spend_correlation(summary: DataFrame) -> float | None:
    """Pearson correlation of x and m_x over repeat buyers. Gamma-Gamma assumes spend is
    independent of frequency; a value far from 0 says its expectations are biased."""
    row = summary.filter(F.col(X) > 0).agg(F.corr(F.col(X), F.col(M_X))).first()
    return None if row is None or row[0] is None else float(row[0])


# ---------------------------------------------------------------------------------------------
# BG/NBD


def bgnbd_log_likelihood(params: Params, x, t_x, *, T, weights=None) -> float:
    """Weighted sum of eq. (6) over customers (or combinations weighted by their counts).

    >>> round(bgnbd_log_likelihood((1.0, 1.0, 1.0, 1.0), [0], [0.0], T=[1.0]), 6)
    -0.693147
    """
    log_likelihood, _ = _bgnbd_terms(params, (x, t_x, T))
    return float(np.sum(log_likelihood * _weights(weights, log_likelihood)))


def bgnbd_gradient(params: Params, x, t_x, *, T, weights=None) -> np.ndarray:
    """d/d(r, alpha, a, b) of `bgnbd_log_likelihood`: what L-BFGS-B needs to converge in a few
    dozen Spark jobs rather than hundreds of finite-difference ones."""
    log_likelihood, gradient = _bgnbd_terms(params, (x, t_x, T))
    return _weights(weights, log_likelihood) @ gradient


def bgnbd_spark_log_likelihood(params: Params, combinations: DataFrame) -> tuple[float, np.ndarray]:
    """Log-likelihood and gradient over (x, t_x, T, count) in one Spark job (module docstring)."""
    objective, _ = _spark_objective(_BGNBD, combinations)
    return objective(np.asarray(params, dtype=float))


def fit_bgnbd(
    combinations: DataFrame,
    *,
    max_driver_rows: int = DEFAULT_MAX_DRIVER_ROWS,
    starts: int = 3,
    seed: int = 0,
) -> BgNbdFit:
    """Maximum-likelihood (r, alpha, a, b) from `combination_counts`: on the driver when there
    are at most `max_driver_rows` combinations, else one Spark aggregate per step. The best of
    `starts` deterministic L-BFGS-B runs (from `seed`) over log-parameters is kept."""
    fitted = _fit(combinations, _BGNBD, max_driver_rows=max_driver_rows, starts=starts, seed=seed)
    return BgNbdFit(*fitted.params, **fitted.report())


def p_alive(params: Params, x, t_x, *, T) -> np.ndarray:
    """P(alive | x, t_x, T): 1 / (1 + delta(x>0) a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)), the
    reciprocal of eq. (10)'s denominator, as a logistic function of its log-odds so the power
    never overflows for large x.

    >>> float(p_alive((0.243, 4.414, 0.793, 2.426), 0, 0.0, T=38.86))
    1.0
    """
    r, alpha, a, b = _positive(params, 4)
    x, t_x, T = (np.asarray(value, dtype=float) for value in (x, t_x, T))
    repeat = x > 0
    log_odds_dead = np.where(
        repeat,
        math.log(a)
        - np.log(np.where(repeat, b + x - 1, 1.0))
        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)),
        -np.inf,
    )
    return special.expit(-log_odds_dead)


def expected_purchases(params: Params, t, x, *, t_x, T) -> np.ndarray:
    """E(Y(t) | x, t_x, T), eq. (10): expected purchases in the next t periods.

    Eq. (10)'s numerator (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x;
    a+b+x-1; z)], z = t/(alpha+T+t) in (0, 1), is evaluated after Euler's transformation
    2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z): the product becomes
    (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z). The original 2F1 grows like (1-z)^-(r+x) and
    its prefactor vanishes like (1-z)^(r+x), which overflows and underflows for large x; the
    transformed one has bounded upper parameters and tends to 1 as x grows. 1 - (1-z)^(a-1) F
    is taken as -expm1((a-1) log1p(-z)) - (1-z)^(a-1) (F-1) to keep small t accurate. Like
    eq. (10) itself, this needs a+b+x-1 off the non-positive integers (x = 0 with a+b <= 1).

    >>> round(float(expected_purchases((0.243, 4.414, 0.793, 2.426), 39, 2, t_x=30.43, T=38.86)), 3)
    1.226
    """
    return _purchases_if_alive(params, t, x, T=T) * p_alive(params, x, t_x, T=T)


def p_alive_column(
    params: Params, x_col: str | Column = X, t_x_col: str | Column = T_X, *, T_col: str | Column = T_CAL
) -> Column:
    """`p_alive` in built-in Spark arithmetic: 1 / (1 + e^(log-odds)), which is 0, not an
    overflow, when the exponential is infinite."""
    r, alpha, a, b = (F.lit(value) for value in _positive(params, 4))
    x, t_x, T = _column(x_col).cast("double"), _column(t_x_col), _column(T_col)
    log_odds_dead = F.log(a) - F.log(b + x - 1) + (r + x) * (F.log(alpha + T) - F.log(alpha + t_x))
    return F.when(x > 0, 1 / (1 + F.exp(log_odds_dead))).otherwise(F.lit(1.0))


def with_expected_purchases(summary: DataFrame, params: Params, periods: Mapping[str, float]) -> DataFrame:
    """`summary` with a column per name of `periods`: `expected_purchases` in the next t
    periods, P(alive) in Spark times eq. (10)'s numerator once per history (`_with_histories`)."""
    values = _positive(params, 4)
    alive = p_alive_column(values)
    if_alive = [f"_if_alive_{i}" for i in range(len(periods))]

    def evaluate(x: np.ndarray, T: np.ndarray) -> list[np.ndarray]:
        return [_purchases_if_alive(values, t, x, T=T) for t in periods.values()]

    with_terms = _with_histories(summary, if_alive, evaluate)
    return with_terms.select(
        *summary.columns,
        *[(alive * F.col(term)).alias(name) for term, name in zip(if_alive, periods, strict=True)],
    )


# ---------------------------------------------------------------------------------------------
# Gamma-Gamma


def gamma_gamma_log_likelihood(params: Params, x, m_x, *, weights=None) -> float:
    """Weighted sum of ln f(m_x | p, q, v, x), the note's marginal density of the mean of x
    repeat-order values: repeat buyers only (x >= 1, m_x > 0)."""
    log_likelihood, _ = _gamma_gamma_terms(params, (x, m_x))
    return float(np.sum(log_likelihood * _weights(weights, log_likelihood)))


def gamma_gamma_gradient(params: Params, x, m_x, *, weights=None) -> np.ndarray:
    """d/d(p, q, v) of `gamma_gamma_log_likelihood`."""
    log_likelihood, gradient = _gamma_gamma_terms(params, (x, m_x))
    return _weights(weights, log_likelihood) @ gradient


def gamma_gamma_spark_log_likelihood(params: Params, spend: DataFrame) -> tuple[float, np.ndarray]:
    """Log-likelihood and gradient over (x, m_x, count) in one Spark job."""
    objective, _ = _spark_objective(_GAMMA_GAMMA, spend)
    return objective(np.asarray(params, dtype=float))


def fit_gamma_gamma(
    spend: DataFrame,
    *,
    max_driver_rows: int = DEFAULT_MAX_DRIVER_ROWS,
    starts: int = 3,
    seed: int = 0,
) -> GammaGammaFit:
    """Maximum-likelihood (p, q, v) from `spend_counts`, as `fit_bgnbd` does it. m_x is nearly
    unique per customer, so past `max_driver_rows` the Spark path runs over the cached rows."""
    fitted = _fit(spend, _GAMMA_GAMMA, max_driver_rows=max_driver_rows, starts=starts, seed=seed)
    return GammaGammaFit(*fitted.params, **fitted.report())


def expected_order_value(params: Params, x, m_x) -> np.ndarray:
    """E(M | x, m_x), eq. (5): the weighted mean (q-1)/(px+q-1) * vp/(q-1) + px/(px+q-1) * m_x
    of the population mean vp/(q-1) and the customer's own mean, which the customer's x orders
    pull towards m_x. Customers with x = 0 (m_x null) get the population mean. Needs q > 1.

    >>> round(float(expected_order_value((6.25, 3.74, 15.44), 0, float("nan"))), 3)
    35.219
    """
    p, q, v = _gamma_gamma_mean_params(params)
    x = np.asarray(x, dtype=float)
    own_mean = np.where(x > 0, np.asarray(m_x, dtype=float), 0.0)
    return (v * p + p * x * own_mean) / (p * x + q - 1)


def expected_order_value_column(
    params: Params, x_col: str | Column = X, m_x_col: str | Column = M_X
) -> Column:
    """`expected_order_value` as built-in Spark arithmetic (no UDF needed)."""
    p, q, v = _gamma_gamma_mean_params(params)
    x = _column(x_col)
    own_mean = F.when(x > 0, _column(m_x_col)).otherwise(F.lit(0.0))
    return (F.lit(v * p) + F.lit(p) * x * own_mean) / (F.lit(p) * x + F.lit(q - 1))


# ---------------------------------------------------------------------------------------------
# Customer lifetime value


def clv(
    bgnbd_params: Params,
    gamma_gamma_params: Params,
    summary: Mapping[str, object],
    *,
    horizon: float,
    annual_discount_rate: float,
    time_unit: str = "weeks",
) -> np.ndarray:
    """Discounted value of each customer's purchases over the next `horizon` periods:
    E(M | x, m_x) * sum_k [E(Y(t_k)) - E(Y(t_(k-1)))] / (1 + annual_discount_rate)^(t_k / year).

    The horizon is cut into K = ceil(horizon) equal steps (one per time unit when the horizon
    is whole), t_k = k * horizon / K; the purchases expected within a step are discounted at its
    end, so the sum is a right Riemann sum of the continuous discounting integral: it
    undervalues by at most one step's discount (under 0.2% for weekly steps at 10% a year).
    `summary` maps the summary column names (x, t_x, T, m_x) to arrays, as a pandas frame does.
    """
    x, t_x, T, m_x = (np.asarray(summary[name], dtype=float) for name in (X, T_X, T_CAL, M_X))
    discounted = _discounted_purchases_if_alive(
        bgnbd_params, x, T=T, schedule=_discount_schedule(horizon, annual_discount_rate, time_unit)
    )
    purchases = discounted * p_alive(bgnbd_params, x, t_x, T=T)
    return purchases * expected_order_value(gamma_gamma_params, x, m_x)


def with_customer_value(
    summary: DataFrame,
    bgnbd_params: Params,
    gamma_gamma_params: Params,
    *,
    horizons: Sequence[int],
    annual_discount_rate: float,
    time_unit: str = "weeks",
) -> DataFrame:
    """`summary` with P(alive), the expected order value, and per horizon h the expected
    purchases and `clv` (named as in customer_value: `expected_purchases_in(h)`, `clv_in(h)`).
    P(alive) and the order value are Spark arithmetic; eq. (10)'s numerator, with scipy's 2F1,
    runs once per history (`_with_histories`), not once per customer."""
    bgnbd, gamma_gamma = _positive(bgnbd_params, 4), _gamma_gamma_mean_params(gamma_gamma_params)
    schedules = [_discount_schedule(float(h), annual_discount_rate, time_unit) for h in horizons]  # fail here
    if_alive = {h: f"_if_alive_{h}" for h in horizons}
    discounted = {h: f"_discounted_if_alive_{h}" for h in horizons}

    def evaluate(x: np.ndarray, T: np.ndarray) -> list[np.ndarray]:
        return [_purchases_if_alive(bgnbd, float(h), x, T=T) for h in horizons] + [
            _discounted_purchases_if_alive(bgnbd, x, T=T, schedule=schedule) for schedule in schedules
        ]

    with_terms = _with_histories(summary, [*if_alive.values(), *discounted.values()], evaluate)
    alive, order_value = p_alive_column(bgnbd), expected_order_value_column(gamma_gamma)
    return with_terms.select(
        *summary.columns,
        alive.alias(P_ALIVE),
        order_value.alias(EXPECTED_ORDER_VALUE),
        *[(alive * F.col(if_alive[h])).alias(expected_purchases_in(h)) for h in horizons],
        *[(alive * F.col(discounted[h]) * order_value).alias(clv_in(h)) for h in horizons],
    )


def _discounted_purchases_if_alive(
    params: Params, x, *, T, schedule: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """`clv`'s discounted sum of eq. (10)'s numerator over the steps of `_discount_schedule`."""
    times, factors = schedule
    cumulative = np.stack([_purchases_if_alive(params, t, x, T=T) for t in times])
    return factors @ np.diff(cumulative, axis=0, prepend=0.0)


# ---------------------------------------------------------------------------------------------
# Per-row terms: log-likelihood and gradient, shared by the driver and the Spark paths


def _bgnbd_terms(params: Params, data: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Per-row eq. (6) and its gradient.

    ln L = ln A1 + ln A2 + ln(A3 + delta A4), with ln A1 = lnG(r+x) - lnG(r) + r ln alpha,
    ln A2 = lnB(a, b+x) - lnB(a, b), ln A3 = -(r+x) ln(alpha+T), ln A4 = ln a - ln(b+x-1)
    - (r+x) ln(alpha+t_x). With w3, w4 = A3, A4 / (A3 + delta A4) (softmax weights):
    d/dr = psi(r+x) - psi(r) + ln alpha - w3 ln(alpha+T) - w4 ln(alpha+t_x),
    d/dalpha = r/alpha - (r+x) (w3/(alpha+T) + w4/(alpha+t_x)),
    d/da = psi(a+b) - psi(a+b+x) + w4/a,
    d/db = psi(b+x) - psi(b) + psi(a+b) - psi(a+b+x) - w4/(b+x-1).
    The gamma-function parts depend on x alone (`_bgnbd_x_terms`); the rest is
    `_bgnbd_row_columns` in Spark.
    """
    r, alpha, a, b = _positive(params, 4)
    x, t_x, T = (np.asarray(value, dtype=float) for value in data)
    repeat = x > 0
    b_x_1 = np.where(repeat, b + x - 1, 1.0)  # b + x - 1 only where x > 0, positive there
    ln_a3 = -(r + x) * np.log(alpha + T)
    ln_a4 = np.where(repeat, math.log(a) - np.log(b_x_1) - (r + x) * np.log(alpha + t_x), -np.inf)
    ln_a34 = np.logaddexp(ln_a3, ln_a4)
    w3, w4 = np.exp(ln_a3 - ln_a34), np.exp(ln_a4 - ln_a34)
    x_log_likelihood, x_gradient = _bgnbd_x_terms(params, x)
    gradient = x_gradient + np.column_stack(
        [
            -w3 * np.log(alpha + T) - w4 * np.log(alpha + t_x),
            -(r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x)),
            w4 / a,
            -w4 / b_x_1,
        ]
    )
    return x_log_likelihood + ln_a34, gradient


def _bgnbd_x_terms(params: Params, x) -> tuple[np.ndarray, np.ndarray]:
    """The terms of `_bgnbd_terms` that depend on a customer through x alone: ln A1 + ln A2
    and their gradient (every log-gamma and digamma of the likelihood)."""
    r, alpha, a, b = _positive(params, 4)
    x = np.asarray(x, dtype=float)
    log_likelihood = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * math.log(alpha)
        + special.betaln(a, b + x)
        - special.betaln(a, b)
    )
    psi_ab, psi_abx = special.digamma(a + b), special.digamma(a + b + x)
    gradient = np.column_stack(
        [
            special.digamma(r + x) - special.digamma(r) + math.log(alpha),
            np.full_like(x, r / alpha),
            psi_ab - psi_abx,
            special.digamma(b + x) - special.digamma(b) + psi_ab - psi_abx,
        ]
    )
    return log_likelihood, gradient


def _bgnbd_row_columns(params: Params) -> list[Column]:
    """ln(A3 + delta A4) of `_bgnbd_terms` and its share of the gradient as built-in Spark
    arithmetic: log-sum-exp with A4 absent (null) when x = 0."""
    r, alpha, a, b = (F.lit(value) for value in _positive(params, 4))
    x, t_x, T = F.col(X).cast("double"), F.col(T_X), F.col(T_CAL)
    ln_alpha_T, ln_alpha_t_x = F.log(alpha + T), F.log(alpha + t_x)
    ln_a3 = -(r + x) * ln_alpha_T
    ln_a4 = F.when(x > 0, F.log(a) - F.log(b + x - 1) - (r + x) * ln_alpha_t_x)
    ln_a34 = F.coalesce(F.greatest(ln_a3, ln_a4) + F.log1p(F.exp(-F.abs(ln_a3 - ln_a4))), ln_a3)
    w3, w4 = F.exp(ln_a3 - ln_a34), F.coalesce(F.exp(ln_a4 - ln_a34), F.lit(0.0))
    return [
        ln_a34,
        -w3 * ln_alpha_T - w4 * ln_alpha_t_x,
        -(r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x)),
        w4 / a,
        F.when(x > 0, -w4 / (b + x - 1)).otherwise(F.lit(0.0)),
    ]


def _gamma_gamma_terms(params: Params, data: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ln f(m_x | p, q, v, x) and its gradient.

    ln f = lnG(px+q) - lnG(px) - lnG(q) + q ln v + (px-1) ln m_x + px ln x - (px+q) ln(v + x m_x);
    d/dp = x (psi(px+q) - psi(px) + ln(x m_x) - ln(v + x m_x)),
    d/dq = psi(px+q) - psi(q) + ln v - ln(v + x m_x), d/dv = q/v - (px+q)/(v + x m_x).
    The terms in x alone are `_gamma_gamma_x_terms`; the rest is `_gamma_gamma_row_columns`.
    """
    p, q, v = _positive(params, 3)
    x, m_x = (np.asarray(value, dtype=float) for value in data)
    px = p * x
    ln_spend, ln_total = np.log(m_x), np.log(v + x * m_x)
    x_log_likelihood, x_gradient = _gamma_gamma_x_terms(params, x)
    gradient = x_gradient + np.column_stack([x * (ln_spend - ln_total), -ln_total, -(px + q) / (v + x * m_x)])
    return x_log_likelihood + (px - 1) * ln_spend - (px + q) * ln_total, gradient


def _gamma_gamma_x_terms(params: Params, x) -> tuple[np.ndarray, np.ndarray]:
    """The terms of `_gamma_gamma_terms` in x alone (every log-gamma and digamma)."""
    p, q, v = _positive(params, 3)
    x = np.asarray(x, dtype=float)
    px = p * x
    psi_pxq = special.digamma(px + q)
    log_likelihood = (
        special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * math.log(v) + px * np.log(x)
    )
    gradient = np.column_stack(
        [
            x * (psi_pxq - special.digamma(px) + np.log(x)),
            psi_pxq - special.digamma(q) + math.log(v),
            np.full_like(x, q / v),
        ]
    )
    return log_likelihood, gradient


def _gamma_gamma_row_columns(params: Params) -> list[Column]:
    """The rest of `_gamma_gamma_terms` as built-in Spark arithmetic."""
    p, q, v = (F.lit(value) for value in _positive(params, 3))
    x, m_x = F.col(X).cast("double"), F.col(M_X)
    ln_spend, ln_total = F.log(m_x), F.log(v + x * m_x)
    return [
        (p * x - 1) * ln_spend - (p * x + q) * ln_total,
        x * (ln_spend - ln_total),
        -ln_total,
        -(p * x + q) / (v + x * m_x),
    ]


def _purchases_if_alive(params: Params, t, x, *, T) -> np.ndarray:
    """Eq. (10)'s numerator: expected purchases in (T, T+t] of a customer alive at T, after
    Euler's transformation (`expected_purchases`)."""
    r, alpha, a, b = _positive(params, 4)
    if abs(a - 1) < _A_NEAR_ONE:
        a = 1 + _A_NEAR_ONE
    x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
    c = a + b + x - 1
    log_1mz = np.log1p(-t / (alpha + T + t))  # z = t/(alpha+T+t) in (0, 1) for t > 0
    hypergeometric = special.hyp2f1(a + b - 1 - r, a - 1, c, -np.expm1(log_1mz))
    power = (a - 1) * log_1mz
    return c / (a - 1) * (-np.expm1(power) - np.exp(power) * (hypergeometric - 1))


# ---------------------------------------------------------------------------------------------
# Fitting


@dataclass(frozen=True)
class _Model:
    terms: Terms  # per-row log-likelihood and gradient, numpy: the driver path
    x_terms: Callable[[Params, np.ndarray], tuple[np.ndarray, np.ndarray]]  # the part in x alone
    row_columns: Callable[[Params], list[Column]]  # the rest, as Spark columns
    columns: tuple[str, ...]
    size: int


_BGNBD = _Model(_bgnbd_terms, _bgnbd_x_terms, _bgnbd_row_columns, (X, T_X, T_CAL), 4)
_GAMMA_GAMMA = _Model(_gamma_gamma_terms, _gamma_gamma_x_terms, _gamma_gamma_row_columns, (X, M_X), 3)


@dataclass(frozen=True)
class _Fitted:
    params: tuple[float, ...]
    log_likelihood: float
    customers: int
    converged: bool
    iterations: int
    message: str

    def report(self) -> dict[str, object]:
        return {
            "log_likelihood": self.log_likelihood,
            "customers": self.customers,
            "converged": self.converged,
            "iterations": self.iterations,
            "message": self.message,
        }


Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _fit(frame: DataFrame, model: _Model, *, max_driver_rows: int, starts: int, seed: int) -> _Fitted:
    """Collect at most `max_driver_rows` rows; if there are more, evaluate on Spark instead.
    Counting up to one past the limit first keeps a large frame off the driver."""
    columns = frame.select(*model.columns, F.col(COUNT).cast("double"))
    if columns.limit(max_driver_rows + 1).count() <= max_driver_rows:
        data = np.array(columns.collect(), dtype=float).reshape(-1, len(model.columns) + 1)
        customers = int(data[:, -1].sum())

        def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
            log_likelihood, gradient = model.terms(params, data[:, :-1].T)
            return float(data[:, -1] @ log_likelihood), data[:, -1] @ gradient

        return _optimise(objective, model, customers=customers, starts=starts, seed=seed)
    cached = columns.persist()
    try:
        on_spark, customers = _spark_objective(model, cached)
        return _optimise(on_spark, model, customers=customers, starts=starts, seed=seed)
    finally:
        cached.unpersist()


def _optimise(objective: Objective, model: _Model, *, customers: int, starts: int, seed: int) -> _Fitted:
    """L-BFGS-B on the mean negative log-likelihood over log-parameters (positivity for free,
    and steps scaled to the parameters' sizes), from all-ones and `starts - 1` jittered starts."""
    if customers <= 0:
        raise InputError("no customers to fit the model on")
    if starts < 1:
        raise ValueError(f"starts must be at least 1, got {starts}")

    def negative_mean(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        log_likelihood, gradient = objective(params)
        return -log_likelihood / customers, -gradient * params / customers

    rng = np.random.default_rng(seed)
    points = [np.zeros(model.size)] + [rng.normal(0.0, 1.0, model.size) for _ in range(starts - 1)]
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * model.size
    results = [
        optimize.minimize(negative_mean, point, jac=True, method="L-BFGS-B", bounds=bounds, options=_OPTIONS)
        for point in points
    ]
    best = min(results, key=lambda result: result.fun if np.isfinite(result.fun) else np.inf)
    at_bound = bool(np.any(np.abs(best.x) >= _LOG_BOUND * (1 - 1e-9)))
    message = str(best.message) + ("; a parameter is at its bound (1e-6 or 1e6)" if at_bound else "")
    return _Fitted(
        params=tuple(float(value) for value in np.exp(best.x)),
        log_likelihood=float(-best.fun * customers),
        customers=customers,
        converged=bool(best.success) and not at_bound and bool(np.isfinite(best.fun)),
        iterations=int(best.nit),
        message=message,
    )


# ---------------------------------------------------------------------------------------------
# Spark plumbing


def _spark_objective(model: _Model, frame: DataFrame) -> tuple[Objective, int]:
    """The count-weighted log-likelihood and gradient over a frame of (model columns, count),
    and the customers it counts. The objective is evaluated in two parts: the terms in x alone
    with scipy on the driver, over the distinct x and their counts (collected once: a
    customer's x is bounded by their orders, so there are few), and everything else as one
    Spark job of built-in arithmetic per call, which brings 1 + len(params) numbers back."""
    by_x = frame.groupBy(X).agg(F.sum(F.col(COUNT).cast("double"))).collect()
    x_values, x_counts = (np.array([row[i] for row in by_x], dtype=float) for i in range(2))
    weight = F.col(COUNT).cast("double")

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        row = frame.agg(*[F.sum(term * weight) for term in model.row_columns(params)]).first()
        x_log_likelihood, x_gradient = model.x_terms(params, x_values)
        log_likelihood = float(row[0]) + float(x_counts @ x_log_likelihood)
        return log_likelihood, np.array([float(value) for value in row[1:]]) + x_counts @ x_gradient

    return objective, int(x_counts.sum())


def _with_histories(
    summary: DataFrame, names: Sequence[str], evaluate: Callable[[np.ndarray, np.ndarray], list[np.ndarray]]
) -> DataFrame:
    """`summary` with a double column per name, from a numpy function of (x, T) evaluated once
    per distinct (x, T) and joined back. Eq. (10)'s numerator depends on a customer only through
    x and T, which take far fewer distinct values than there are customers (x is bounded by the
    orders, T by the days of history), so scipy's 2F1, which Spark lacks and which needs a
    pandas UDF, runs over the histories, not the customers: at a horizon of 52 weeks a
    customer's CLV needs 52 of them."""
    schema = StructType([StructField(name, DoubleType()) for name in names])

    @F.pandas_udf(schema)
    def per_history(data: pd.DataFrame) -> pd.DataFrame:
        x, T = _arrays(data)
        return pd.DataFrame(dict(zip(names, evaluate(x, T), strict=True)), index=data.index)

    histories = summary.select(X, T_CAL).distinct()
    terms = histories.select(X, T_CAL, per_history(F.struct(X, T_CAL)).alias(_DATA))
    return summary.join(terms.select(X, T_CAL, f"{_DATA}.*"), [X, T_CAL])


def _arrays(data: pd.DataFrame) -> list[np.ndarray]:
    """The struct's fields as float arrays, in order (nulls as NaN)."""
    return [data.iloc[:, i].to_numpy(dtype=float, na_value=np.nan) for i in range(data.shape[1])]


def _column(column: str | Column) -> Column:
    return F.col(column) if isinstance(column, str) else column


# ---------------------------------------------------------------------------------------------
# Checks and small helpers


def _days_per_unit(time_unit: str) -> float:
    if time_unit not in DAYS_PER_UNIT:
        raise ValueError(f"time_unit must be one of {sorted(DAYS_PER_UNIT)}, got {time_unit!r}")
    return DAYS_PER_UNIT[time_unit]


def _positive(params: Params, size: int) -> tuple[float, ...]:
    values = tuple(float(value) for value in params)
    if len(values) != size or not all(value > 0 and math.isfinite(value) for value in values):
        raise ValueError(f"expected {size} positive finite parameters, got {values}")
    return values


def _gamma_gamma_mean_params(params: Params) -> tuple[float, float, float]:
    """(p, q, v), checked for a finite population mean vp/(q-1): q > 1."""
    p, q, v = _positive(params, 3)
    if q <= 1:
        raise ValueError(f"Gamma-Gamma q = {q} <= 1: the mean order value is infinite")
    return p, q, v


def _weights(weights, like: np.ndarray) -> np.ndarray:
    return np.ones_like(like) if weights is None else np.broadcast_to(np.asarray(weights, float), like.shape)


def _discount_schedule(horizon: float, annual_rate: float, time_unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Step ends t_k and their discount factors (1 + annual_rate)^-(t_k / periods per year)."""
    periods_per_year = DAYS_PER_YEAR / _days_per_unit(time_unit)
    if not (horizon > 0 and math.isfinite(horizon)):
        raise ValueError(f"horizon must be positive, got {horizon}")
    if not annual_rate > -1:
        raise ValueError(f"annual_discount_rate must be above -1, got {annual_rate}")
    steps = math.ceil(horizon)
    times = horizon * np.arange(1, steps + 1) / steps
    return times, (1 + annual_rate) ** (-times / periods_per_year)
