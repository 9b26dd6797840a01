"""`segment clv` through the real CLI on the real CDNOW sample: ingest keeps every line, the
fits written to `clv_fits` are the published ones, and `customer_value` holds every customer's
P(alive), expected purchases and CLV, consistent with the library's formulas."""

from __future__ import annotations

import csv
import datetime as dt
import itertools

import numpy as np
import pytest
from pyspark.sql import functions as F

from bench.cdnow import write_csv
from segmentation import clv, tables
from segmentation.cli import main
from segmentation.config import load_config
from segmentation.io import read_table, table_ref
from segmentation.stages.clv import run_clv

CALIBRATION_END, HOLDOUT_END = "1997-09-30", "1998-06-30"
SAMPLE_LINES, SAMPLE_CUSTOMERS = 6919, 2357


def segment(*args: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 0, f"segment {args[0]} failed"


@pytest.fixture(scope="module")
def cdnow(spark, tmp_path_factory):
    """The CDNOW sample ingested (every line up to the end of the data) through the CLI, then
    `segment clv` as of the end of the 39-week calibration period with the holdout after it."""
    root = tmp_path_factory.mktemp("cdnow")
    sets = [
        f"--set=lake.root={root / 'lake'}",
        f"--set=input.transactions.path={write_csv('sample', root / 'raw')}",
        f"--set=mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"--set=mlflow.artifact_location={root / 'mlruns'}",
        "--set=spark.master=local[2]",
    ]
    segment("ingest", "--conf", "cdnow", *sets)  # keeps the lines after the as-of date too
    segment("clv", "--conf", "cdnow", *sets, "--as-of-date", CALIBRATION_END, "--holdout-end", HOLDOUT_END)
    overrides = [s.removeprefix("--set=") for s in sets]
    return load_config(["cdnow"], [*overrides, f"features.as_of_date={CALIBRATION_END}"])


def test_ingest_keeps_every_cdnow_line_identical_ones_included(spark, cdnow):
    transactions = read_table(spark, table_ref(cdnow.lake, tables.TRANSACTIONS))
    assert transactions.count() == SAMPLE_LINES  # 21 lines repeat another exactly: kept
    per_customer = transactions.groupBy(tables.CUSTOMER_ID).agg(F.sum(tables.AMOUNT).alias("spend"))
    assert per_customer.count() == SAMPLE_CUSTOMERS


def test_features_monetary_is_the_plain_sum_of_each_customers_amounts(spark, cdnow, tmp_path):
    """Identical lines are separate purchases (CDNOW has no order id): none is dropped, so a
    customer's monetary value is the sum of their lines, recomputed here with Python's csv."""
    lake = [
        f"--set=lake.root={cdnow.lake.root}",
        f"--set=input.transactions.path={cdnow.input.transactions.path}",
    ]
    segment("features", "--conf", "cdnow", *lake, f"--set=features.as_of_date={HOLDOUT_END}")
    raw = write_csv("sample", tmp_path / "raw") / "transactions.csv"
    expected: dict[str, float] = {}
    with raw.open() as lines:
        for line in csv.DictReader(lines):
            expected[line["customer_id"]] = expected.get(line["customer_id"], 0.0) + float(line["dollars"])
    features = read_table(spark, table_ref(cdnow.lake, tables.CUSTOMER_FEATURES)).filter(
        F.col(tables.AS_OF_DATE) == dt.date(1998, 6, 30)
    )
    monetary = {row[0]: row[1] for row in features.select(tables.CUSTOMER_ID, tables.MONETARY).collect()}
    assert monetary.keys() == expected.keys()
    assert max(abs(monetary[c] - expected[c]) for c in expected) < 1e-6


def test_clv_fits_written_through_the_cli_are_the_published_cdnow_estimates(spark, cdnow):
    fits = {
        row[tables.MODEL]: row
        for row in read_table(spark, table_ref(cdnow.lake, tables.CLV_FITS))
        .filter(F.col(tables.AS_OF_DATE) == dt.date(1997, 9, 30))
        .collect()
    }
    assert set(fits) == {tables.BG_NBD, tables.GAMMA_GAMMA}
    bg, gg = fits[tables.BG_NBD], fits[tables.GAMMA_GAMMA]
    # Fader, Hardie and Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL -9582.4;
    # Fader and Hardie (2013): p = 6.25, q = 3.74, v = 15.44, LL -4055.9.
    published_bg = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published_bg.items():
        assert bg[tables.PARAMETERS][name] == pytest.approx(value, abs=max(0.002, 0.005 * value)), name
    assert bg[tables.LOG_LIKELIHOOD] == pytest.approx(-9582.4, abs=0.5)
    for name, value in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert gg[tables.PARAMETERS][name] == pytest.approx(value, rel=0.01), name
    assert gg[tables.LOG_LIKELIHOOD] == pytest.approx(-4055.9, abs=1.0)
    assert (bg[tables.CUSTOMER_COUNT], gg[tables.CUSTOMER_COUNT]) == (SAMPLE_CUSTOMERS, 946)
    assert bg[tables.CONVERGED] and gg[tables.CONVERGED]
    assert bg[tables.TIME_UNIT] == gg[tables.TIME_UNIT] == "weeks"


def test_customer_value_follows_the_fitted_formulas_for_every_customer(spark, cdnow):
    values = read_table(spark, table_ref(cdnow.lake, tables.CUSTOMER_VALUE)).toPandas()  # 2,357 rows
    assert len(values) == SAMPLE_CUSTOMERS and values[tables.CUSTOMER_ID].is_unique
    fits = {
        row[tables.MODEL]: row[tables.PARAMETERS]
        for row in read_table(spark, table_ref(cdnow.lake, tables.CLV_FITS)).collect()
    }
    bg = [fits[tables.BG_NBD][n] for n in ("r", "alpha", "a", "b")]
    gg = [fits[tables.GAMMA_GAMMA][n] for n in ("p", "q", "v")]
    x, t_x, big_t = (values[c].to_numpy(float) for c in (clv.X, clv.T_X, clv.T_CAL))
    np.testing.assert_allclose(values[tables.P_ALIVE], clv.p_alive(bg, x, t_x, T=big_t), rtol=1e-12)
    assert ((values[tables.P_ALIVE] > 0) & (values[tables.P_ALIVE] <= 1)).all()
    horizons = cdnow.clv.horizons
    for h in horizons:
        expected = clv.expected_purchases(bg, float(h), x, t_x=t_x, T=big_t)
        np.testing.assert_allclose(values[tables.expected_purchases_in(h)], expected, rtol=1e-12)
    longer = [values[tables.clv_in(h)].to_numpy() for h in horizons]
    assert all((a <= b + 1e-9).all() for a, b in itertools.pairwise(longer))
    m_x = values[clv.M_X].to_numpy(float)
    np.testing.assert_allclose(
        values[tables.EXPECTED_ORDER_VALUE], clv.expected_order_value(gg, x, m_x), rtol=1e-9
    )


def test_the_holdout_compares_predictions_with_what_customers_did(spark, cdnow):
    result = run_clv(cdnow, spark, holdout_end=dt.date(1998, 6, 30))
    holdout = result.holdout
    assert holdout.periods == pytest.approx(273 / 7)
    # Every repeat purchase in the holdout, counted from the raw lines independently: a
    # customer's purchase days after the calibration end.
    transactions = read_table(spark, table_ref(cdnow.lake, tables.TRANSACTIONS))
    days = (
        transactions.filter(F.to_date(tables.ORDER_TS) > dt.date(1997, 9, 30))
        .select(tables.CUSTOMER_ID, F.to_date(tables.ORDER_TS))
        .distinct()
        .count()
    )
    assert holdout.actual_total == days == holdout.cumulative_actual[-1]
    assert list(holdout.cumulative_actual) == sorted(holdout.cumulative_actual)
    assert sum(n for _, n, _, _ in holdout.by_frequency) == SAMPLE_CUSTOMERS
    # The predicted total is eq. (10) over the holdout summed over every customer, here with
    # numpy over the per-customer rows of customer_value and the fitted parameters.
    values = read_table(spark, table_ref(cdnow.lake, tables.CUSTOMER_VALUE)).toPandas()
    x, t_x, big_t = (values[c].to_numpy(float) for c in (clv.X, clv.T_X, clv.T_CAL))
    expected = clv.expected_purchases(result.bg_nbd.params, 273 / 7, x, t_x=t_x, T=big_t).sum()
    assert holdout.predicted_total == pytest.approx(expected, rel=1e-9)
    assert holdout.cumulative_predicted[-1] == pytest.approx(holdout.predicted_total, rel=1e-9)
    steps = len(holdout.cumulative_predicted)  # the tracking curve: one point per week of the holdout
    assert steps == 39
    for k, predicted in enumerate(holdout.cumulative_predicted):
        at = clv.expected_purchases(
            result.bg_nbd.params, holdout.periods * (k + 1) / steps, x, t_x=t_x, T=big_t
        )
        assert predicted == pytest.approx(at.sum(), rel=1e-9)
    predicted_by_bin = {x: (n, predicted) for x, n, predicted, _ in holdout.by_frequency}
    assert sum(n * predicted for n, predicted in predicted_by_bin.values()) == pytest.approx(
        expected, rel=1e-9
    )
    assert 0 < holdout.mean_absolute_error < 2
    assert result.mlflow_run_id
