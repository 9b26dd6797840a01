"""`segment clv`: customer lifetime value as of `features.as_of_date`, from bronze transactions.

BG/NBD (repeat purchases and drop-out) and Gamma-Gamma (order value) are fitted by maximum
likelihood on Spark (`segmentation.clv`); their parameters go to gold `clv_fits`, and every
customer's P(alive), expected purchases, expected order value and discounted CLV per horizon
to gold `customer_value`, both as one slice per as-of date that a re-run replaces. With a
holdout end date, the predictions are compared with what customers then did (the paper's
tracking and conditional-expectation checks), and everything is logged to one MLflow run.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from typing import Optional

import mlflow
import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation import plots, tracking
from segmentation.clv import (
    DAYS_PER_UNIT,
    BgNbdFit,
    GammaGammaFit,
    combination_counts,
    fit_bgnbd,
    fit_gamma_gamma,
    frequency_spend_correlation,
    order_dates,
    spend_counts,
    summary_frame,
    with_customer_value,
    with_expected_purchases,
)
from segmentation.config import ClvConfig, Config
from segmentation.errors import InputError
from segmentation.io import TableWrite, read_table, table_ref, write_table
from segmentation.tables import (
    AS_OF_DATE,
    BG_NBD,
    CLV_FITS,
    CONVERGED,
    CUSTOMER_AGE,
    CUSTOMER_COUNT,
    CUSTOMER_ID,
    CUSTOMER_VALUE,
    EXPECTED_ORDER_VALUE,
    FITTED_AT,
    GAMMA_GAMMA,
    LAST_PURCHASE_AGE,
    LOG_LIKELIHOOD,
    MODEL,
    ORDER_TS,
    P_ALIVE,
    PARAMETERS,
    REPEAT_ORDER_VALUE,
    REPEAT_PURCHASES,
    TIME_UNIT,
    TRANSACTIONS,
    clv_in,
    expected_purchases_in,
)

log = logging.getLogger(__name__)

BG_NBD_PARAMETERS = ("r", "alpha", "a", "b")
GAMMA_GAMMA_PARAMETERS = ("p", "q", "v")
_HOLDOUT, _PREDICTED, _FREQUENCY_BIN = "_holdout_purchases", "_predicted_purchases", "_frequency_bin"
_DAY, _ABSOLUTE_ERROR = "_day", "_absolute_error"
_TRACKING_POINTS = 52  # at most this many points on the tracking curve
_FREQUENCY_CAP = 7  # calibration frequencies 7 and above share one bin, as in the paper's figure


@dataclass(frozen=True)
class HoldoutComparison:
    """Predicted against actual repeat purchases in (as_of_date, holdout_end]."""

    holdout_end: dt.date
    periods: float  # holdout length in clv.time_unit
    predicted_total: float
    actual_total: int
    mean_absolute_error: float  # per customer
    # Cumulative repeat purchases of the whole base at the end of each period of the holdout.
    cumulative_predicted: tuple[float, ...]
    cumulative_actual: tuple[int, ...]
    # Per calibration frequency x (the last bin is x >= 7): customers, mean predicted, mean actual.
    by_frequency: tuple[tuple[int, int, float, float], ...]


@dataclass(frozen=True)
class ClvResult:
    as_of_date: dt.date
    time_unit: str
    customers: int
    repeat_customers: int
    bg_nbd: BgNbdFit
    gamma_gamma: GammaGammaFit
    frequency_spend_correlation: Optional[float]
    fits: TableWrite
    values: TableWrite
    mlflow_run_id: str
    holdout: Optional[HoldoutComparison]


def run_clv(cfg: Config, spark: SparkSession, *, holdout_end: Optional[dt.date] = None) -> ClvResult:
    as_of_date, settings = cfg.features.as_of_date, cfg.clv
    if holdout_end is not None and holdout_end <= as_of_date:
        raise InputError(f"--holdout-end {holdout_end} must be after features.as_of_date {as_of_date}")
    transactions = read_table(spark, table_ref(cfg.lake, TRANSACTIONS))
    summary = summary_frame(transactions, as_of_date, time_unit=settings.time_unit).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        customers = summary.count()
        if customers == 0:
            raise InputError(f"table {TRANSACTIONS.name}: no purchase on or before {as_of_date}")
        bg_nbd, gamma_gamma = _fit_models(cfg, summary)
        fits = _write_fits(spark, cfg, bg_nbd, gamma_gamma=gamma_gamma)
        values = write_table(
            spark,
            table_ref(cfg.lake, CUSTOMER_VALUE),
            customer_value_frame(cfg, summary, bg_nbd=bg_nbd, gamma_gamma=gamma_gamma),
            user_metadata={"stage": "clv", AS_OF_DATE: as_of_date, "config_hash": cfg.fingerprint()},
            replace_where=f"{AS_OF_DATE} = DATE'{as_of_date.isoformat()}'",
        )
        holdout = (
            _holdout(cfg, transactions, summary, bg_nbd=bg_nbd, holdout_end=holdout_end)
            if holdout_end
            else None
        )
        correlation = frequency_spend_correlation(summary)
        result = ClvResult(
            as_of_date=as_of_date,
            time_unit=settings.time_unit,
            customers=customers,
            repeat_customers=gamma_gamma.customers,
            bg_nbd=bg_nbd,
            gamma_gamma=gamma_gamma,
            frequency_spend_correlation=correlation,
            fits=fits,
            values=values,
            mlflow_run_id="",
            holdout=holdout,
        )
        return _tracked(cfg, result)
    finally:
        summary.unpersist()


def fit_options(settings: ClvConfig) -> dict[str, int]:
    """`fit_bgnbd`'s and `fit_gamma_gamma`'s keyword arguments from `clv.*` (bench/clv_phases.py
    times the fits one by one with them)."""
    return {"max_driver_rows": settings.max_driver_rows, "starts": settings.starts, "seed": settings.seed}


def _fit_models(cfg: Config, summary: DataFrame) -> tuple[BgNbdFit, GammaGammaFit]:
    options = fit_options(cfg.clv)
    bg_nbd = fit_bgnbd(combination_counts(summary), **options)
    log.info("BG/NBD as of %s: %s", cfg.features.as_of_date, bg_nbd)
    spend = spend_counts(summary)
    if spend.limit(1).count() == 0:
        raise InputError(
            f"table {TRANSACTIONS.name}: no customer with a repeat purchase of positive value on or before "
            f"{cfg.features.as_of_date}; the Gamma-Gamma spend model has nothing to fit"
        )
    gamma_gamma = fit_gamma_gamma(spend, **options)
    log.info("Gamma-Gamma as of %s: %s", cfg.features.as_of_date, gamma_gamma)
    if gamma_gamma.q <= 1:
        raise InputError(
            f"Gamma-Gamma fit as of {cfg.features.as_of_date} has q = {gamma_gamma.q:.3f} <= 1: the "
            "expected order value is infinite; the spend data do not fit the model"
        )
    return bg_nbd, gamma_gamma


def _write_fits(
    spark: SparkSession, cfg: Config, bg_nbd: BgNbdFit, *, gamma_gamma: GammaGammaFit
) -> TableWrite:
    as_of_date = cfg.features.as_of_date
    fitted_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)

    def row(model: str, names: tuple[str, ...], fit: BgNbdFit | GammaGammaFit) -> dict:
        return {
            AS_OF_DATE: as_of_date,
            MODEL: model,
            PARAMETERS: dict(zip(names, map(float, fit.params), strict=True)),
            LOG_LIKELIHOOD: fit.log_likelihood,
            CUSTOMER_COUNT: fit.customers,
            CONVERGED: fit.converged,
            TIME_UNIT: cfg.clv.time_unit,
            FITTED_AT: fitted_at,
        }

    rows = [row(BG_NBD, BG_NBD_PARAMETERS, bg_nbd), row(GAMMA_GAMMA, GAMMA_GAMMA_PARAMETERS, gamma_gamma)]
    return write_table(
        spark,
        table_ref(cfg.lake, CLV_FITS),
        spark.createDataFrame(rows, CLV_FITS.schema),
        user_metadata={"stage": "clv", AS_OF_DATE: as_of_date, "config_hash": cfg.fingerprint()},
        replace_where=f"{AS_OF_DATE} = DATE'{as_of_date.isoformat()}'",
    )


def customer_value_frame(
    cfg: Config, summary: DataFrame, *, bg_nbd: BgNbdFit, gamma_gamma: GammaGammaFit
) -> DataFrame:
    """customer_value's slice for `features.as_of_date`, in the table's column order."""
    settings = cfg.clv
    values = with_customer_value(
        summary,
        bg_nbd.params,
        gamma_gamma.params,
        horizons=settings.horizons,
        annual_discount_rate=settings.annual_discount_rate,
        time_unit=settings.time_unit,
    )
    return values.select(
        F.col(CUSTOMER_ID),
        F.lit(cfg.features.as_of_date).alias(AS_OF_DATE),
        F.col(REPEAT_PURCHASES).cast("long"),
        F.col(LAST_PURCHASE_AGE).cast("double"),
        F.col(CUSTOMER_AGE).cast("double"),
        F.col(REPEAT_ORDER_VALUE).cast("double"),
        F.col(P_ALIVE),
        F.col(EXPECTED_ORDER_VALUE),
        *[F.col(expected_purchases_in(h)) for h in settings.horizons],
        *[F.col(clv_in(h)) for h in settings.horizons],
    )


def _holdout(
    cfg: Config,
    transactions: DataFrame,
    summary: DataFrame,
    *,
    bg_nbd: BgNbdFit,
    holdout_end: dt.date,
) -> HoldoutComparison:
    """What the calibration-period customers did in (as_of_date, holdout_end], against what
    BG/NBD expected of them: per customer, per calibration frequency and over time."""
    as_of_date, unit = cfg.features.as_of_date, cfg.clv.time_unit
    days_per_unit = DAYS_PER_UNIT[unit]
    holdout_days = (holdout_end - as_of_date).days
    periods = holdout_days / days_per_unit
    later = order_dates(transactions).filter(
        (F.col(ORDER_TS) > F.lit(as_of_date)) & (F.col(ORDER_TS) <= F.lit(holdout_end))
    )
    # Orders after the as-of date of the customers known at it: all of them are repeat purchases.
    known_later = later.join(summary.select(CUSTOMER_ID), CUSTOMER_ID, "left_semi")
    actual = known_later.groupBy(CUSTOMER_ID).agg(F.count(F.lit(1)).alias(_HOLDOUT))
    # One pass: the bins' counts, means and absolute errors and the per-bin sums of the tracking
    # curve's points come from a single aggregation.
    times = _tracking_times(periods)
    tracking = {f"_predicted_at_{k}": t for k, t in enumerate(times)}
    predicted = with_expected_purchases(summary, bg_nbd.params, {_PREDICTED: periods, **tracking})
    per_customer = predicted.join(actual, CUSTOMER_ID, "left").select(
        F.least(F.col(REPEAT_PURCHASES), F.lit(_FREQUENCY_CAP)).alias(_FREQUENCY_BIN),
        F.coalesce(F.col(_HOLDOUT), F.lit(0)).alias(_HOLDOUT),
        F.col(_PREDICTED),
        *tracking,
    )
    bins = per_customer.groupBy(_FREQUENCY_BIN).agg(
        F.count(F.lit(1)).alias(CUSTOMER_COUNT),
        F.avg(_PREDICTED).alias(_PREDICTED),
        F.avg(_HOLDOUT).alias(_HOLDOUT),
        F.sum(F.abs(F.col(_PREDICTED) - F.col(_HOLDOUT))).alias(_ABSOLUTE_ERROR),
        *[F.sum(name).alias(name) for name in tracking],
    )
    rows = sorted(bins.collect(), key=lambda row: row[_FREQUENCY_BIN])
    customers = sum(row[CUSTOMER_COUNT] for row in rows)
    actual_by_day = dict(
        known_later.groupBy(F.datediff(F.col(ORDER_TS), F.lit(as_of_date)).alias(_DAY)).count().collect()
    )
    cumulative_days = np.cumsum([actual_by_day.get(day, 0) for day in range(1, holdout_days + 1)])
    checkpoints = [min(holdout_days, round(t * days_per_unit)) for t in times]
    return HoldoutComparison(
        holdout_end=holdout_end,
        periods=periods,
        predicted_total=float(sum(row[_PREDICTED] * row[CUSTOMER_COUNT] for row in rows)),
        actual_total=int(cumulative_days[-1]) if holdout_days else 0,
        mean_absolute_error=sum(row[_ABSOLUTE_ERROR] for row in rows) / customers,
        cumulative_predicted=tuple(float(sum(row[name] for row in rows)) for name in tracking),
        cumulative_actual=tuple(int(cumulative_days[day - 1]) for day in checkpoints),
        by_frequency=tuple(
            (row[_FREQUENCY_BIN], row[CUSTOMER_COUNT], row[_PREDICTED], row[_HOLDOUT]) for row in rows
        ),
    )


def _tracking_times(periods: float) -> list[float]:
    """Evenly spaced times of the holdout at which the expected cumulative repeat purchases of
    the whole base are compared with the actual ones: one per period, at most
    `_TRACKING_POINTS`."""
    steps = min(_TRACKING_POINTS, max(1, int(np.ceil(periods))))
    return [periods * (k + 1) / steps for k in range(steps)]


def _tracked(cfg: Config, result: ClvResult) -> ClvResult:
    """One MLflow run: fitted parameters, log-likelihoods, convergence, the holdout figures and plots."""
    tracking.configure(cfg.mlflow)
    with mlflow.start_run(
        run_name=f"clv as of {result.as_of_date}",
        tags={"stage": "clv", AS_OF_DATE: str(result.as_of_date), "config_hash": cfg.fingerprint()},
    ) as run:
        mlflow.log_params(
            {
                AS_OF_DATE: str(result.as_of_date),
                TIME_UNIT: result.time_unit,
                **{f"{BG_NBD}.{n}": v for n, v in zip(BG_NBD_PARAMETERS, result.bg_nbd.params, strict=True)},
                **{
                    f"{GAMMA_GAMMA}.{n}": v
                    for n, v in zip(GAMMA_GAMMA_PARAMETERS, result.gamma_gamma.params, strict=True)
                },
            }
        )
        metrics = {
            f"{BG_NBD}_log_likelihood": result.bg_nbd.log_likelihood,
            f"{GAMMA_GAMMA}_log_likelihood": result.gamma_gamma.log_likelihood,
            "customers": result.customers,
            "repeat_customers": result.repeat_customers,
            f"{BG_NBD}_converged": float(result.bg_nbd.converged),
            f"{GAMMA_GAMMA}_converged": float(result.gamma_gamma.converged),
        }
        if result.frequency_spend_correlation is not None:
            metrics["frequency_spend_correlation"] = result.frequency_spend_correlation
        holdout = result.holdout
        if holdout is not None:
            metrics |= {
                "holdout_predicted_repeat_purchases": holdout.predicted_total,
                "holdout_actual_repeat_purchases": holdout.actual_total,
                "holdout_mean_absolute_error": holdout.mean_absolute_error,
            }
            run_id = run.info.run_id
            tracking.log_figure(
                run_id, plots.clv_tracking(holdout, time_unit=result.time_unit), "plots/tracking.png"
            )
            tracking.log_figure(run_id, plots.clv_by_frequency(holdout), "plots/conditional_expectations.png")
        mlflow.log_metrics(metrics)
    return replace(result, mlflow_run_id=run.info.run_id)
