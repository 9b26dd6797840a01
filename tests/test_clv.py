"""BG/NBD and Gamma-Gamma against what this module did not write: the papers' formulas typed
out by hand, finite differences, numerical integration over the latent variables, simulation
from the models' stories, and the published CDNOW estimates."""

from __future__ import annotations

import datetime as dt
import math
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from segmentation import clv
from segmentation.errors import InputError
from segmentation.tables import (
    AMOUNT,
    CUSTOMER_ID,
    EXPECTED_ORDER_VALUE,
    ORDER_ID,
    ORDER_TS,
    P_ALIVE,
    clv_in,
    expected_purchases_in,
)

TRANSACTIONS_SCHEMA = f"{CUSTOMER_ID} string, {ORDER_TS} timestamp, {AMOUNT} double, {ORDER_ID} string"
CDNOW_PARAMS = (0.243, 4.414, 0.793, 2.426)  # FHL (2005), CDNOW sample, 39-week calibration


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# ---------------------------------------------------------------------------------------------
# Summary per customer


@pytest.fixture(scope="module")
def transactions(spark):
    rows = [
        # 00001: orders A (two lines), B, C; a return; an order after the as-of date.
        ("00001", ts("2025-01-01 10:00"), 10.0, "A"),
        ("00001", ts("2025-01-01 10:00"), 20.0, "A"),
        ("00001", ts("2025-01-05 12:00"), 30.0, "B"),
        ("00001", ts("2025-01-09 09:00"), 40.0, "C"),
        ("00001", ts("2025-01-10 09:00"), -10.0, "RB"),
        ("00001", ts("2025-02-02 09:00"), 100.0, "D"),
        # 00002: no order ids; two lines at one timestamp are one order.
        ("00002", ts("2024-10-05 08:00"), 50.0, None),
        ("00002", ts("2024-12-01 08:00"), 5.0, None),
        ("00002", ts("2024-12-01 08:00"), 15.0, None),
        # 00003: only a return: no order, no row.
        ("00003", ts("2025-01-03 08:00"), -5.0, "Z"),
        # 00004: order X spans midnight and takes its earliest line's date.
        ("00004", ts("2025-01-30 23:00"), 8.0, "X"),
        ("00004", ts("2025-01-31 01:00"), 2.0, "X"),
        ("00004", ts("2025-01-31 12:00"), 10.0, "Y"),
        # 00005: one order: no repeat purchase.
        ("00005", ts("2025-01-20 10:00"), 12.0, "Q"),
        # 00006: two orders on the first day: the earlier one is the first order.
        ("00006", ts("2025-01-10 15:00"), 7.0, "F2"),
        ("00006", ts("2025-01-10 09:00"), 5.0, "F1"),
    ]
    return spark.createDataFrame(rows, TRANSACTIONS_SCHEMA)


# customer: (x, t_x, T, m_x) in days, as of 2025-01-31, worked out from the rows above.
SUMMARY_IN_DAYS = {
    "00001": (2, 8, 30, (30.0 + 40.0) / 2),
    "00002": (1, 57, 118, 20.0),
    "00004": (1, 1, 1, 10.0),
    "00005": (0, 0, 11, None),
    "00006": (1, 0, 21, 7.0),
}


@pytest.mark.parametrize("time_unit, days", [("days", 1), ("weeks", 7)])
def test_summary_frame_follows_the_feature_order_definitions(transactions, time_unit, days):
    rows = clv.summary_frame(transactions, dt.date(2025, 1, 31), time_unit=time_unit).collect()
    got = {row[CUSTOMER_ID]: (row[clv.X], row[clv.T_X], row[clv.T_CAL], row[clv.M_X]) for row in rows}
    assert set(got) == set(SUMMARY_IN_DAYS)
    for customer, (x, t_x, T, m_x) in SUMMARY_IN_DAYS.items():
        assert got[customer][0] == x
        assert got[customer][1:3] == pytest.approx((t_x / days, T / days), rel=1e-12)
        assert got[customer][3] == (None if m_x is None else pytest.approx(m_x))


def test_order_dates_lists_every_order_with_its_date_and_value(transactions):
    rows = clv.order_dates(transactions).collect()
    got = sorted((row[CUSTOMER_ID], row[ORDER_TS], row[AMOUNT]) for row in rows)
    day = dt.date.fromisoformat
    assert got == [
        ("00001", day("2025-01-01"), 30.0),
        ("00001", day("2025-01-05"), 30.0),
        ("00001", day("2025-01-09"), 40.0),
        ("00001", day("2025-02-02"), 100.0),  # after the as-of date of the summary: still an order
        ("00002", day("2024-10-05"), 50.0),
        ("00002", day("2024-12-01"), 20.0),
        ("00004", day("2025-01-30"), 10.0),
        ("00004", day("2025-01-31"), 10.0),
        ("00005", day("2025-01-20"), 12.0),
        ("00006", day("2025-01-10"), 5.0),
        ("00006", day("2025-01-10"), 7.0),
    ]


def test_summary_frame_rejects_an_unknown_time_unit(transactions):
    with pytest.raises(ValueError, match="time_unit"):
        clv.summary_frame(transactions, dt.date(2025, 1, 31), time_unit="months")


# ---------------------------------------------------------------------------------------------
# Likelihoods against the papers' formulas typed out by hand


def bgnbd_likelihood_by_hand(r, alpha, a, b, x, t_x, T):
    """FHL (2005) eq. (6) as printed, with beta functions and no logarithms."""
    beta = lambda u, v: math.gamma(u) * math.gamma(v) / math.gamma(u + v)  # noqa: E731
    common = math.gamma(r + x) * alpha**r / math.gamma(r)
    value = beta(a, b + x) / beta(a, b) * common / (alpha + T) ** (r + x)
    if x > 0:
        value += beta(a + 1, b + x - 1) / beta(a, b) * common / (alpha + t_x) ** (r + x)
    return value


def gamma_gamma_density_by_hand(p, q, v, x, m_x):
    """Fader & Hardie (2013): the gamma prior on nu integrated out of the gamma(px, nu x)
    distribution of the mean of x order values."""
    return (
        math.gamma(p * x + q)
        / (math.gamma(p * x) * math.gamma(q))
        * v**q
        * m_x ** (p * x - 1)
        * x ** (p * x)
        / (v + m_x * x) ** (p * x + q)
    )


@pytest.mark.parametrize(
    "params, customers",
    [
        ((0.5, 2.0, 0.7, 1.8), [(0, 0.0, 5.0)]),
        ((0.5, 2.0, 0.7, 1.8), [(0, 0.0, 5.0), (1, 2.0, 5.0), (3, 4.5, 6.0)]),
        ((1.3, 0.8, 2.2, 0.9), [(2, 1.5, 3.0), (5, 2.75, 4.0)]),
    ],
)
def test_bgnbd_log_likelihood_equals_equation_6_by_hand(params, customers):
    x, t_x, T = map(np.array, zip(*customers, strict=True))
    expected = sum(math.log(bgnbd_likelihood_by_hand(*params, *row)) for row in customers)
    assert clv.bgnbd_log_likelihood(params, x, t_x, T=T) == pytest.approx(expected, rel=1e-12)
    weights = np.arange(1, len(customers) + 1)
    weighted = sum(
        w * math.log(bgnbd_likelihood_by_hand(*params, *row))
        for w, row in zip(weights, customers, strict=True)
    )
    assert clv.bgnbd_log_likelihood(params, x, t_x, T=T, weights=weights) == pytest.approx(
        weighted, rel=1e-12
    )


def test_bgnbd_likelihood_is_the_individual_likelihood_integrated_over_the_priors():
    """Eq. (6) from its story: the individual likelihood (1-p)^x lam^x e^(-lam T) + p (1-p)^(x-1)
    lam^x e^(-lam t_x), integrated over gamma(r, alpha) and beta(a, b)."""
    r, alpha, a, b = params = (0.6, 3.0, 0.9, 2.0)
    x, t_x, T = 2, 3.0, 7.0

    def individual(lam, p):
        return (1 - p) ** x * lam**x * math.exp(-lam * T) + p * (1 - p) ** (x - 1) * lam**x * math.exp(
            -lam * t_x
        )

    prior = alpha**r / (math.gamma(r) * special.beta(a, b))
    value = (
        prior
        * integrate.quad(
            lambda p: integrate.quad(
                lambda lam: math.exp(-alpha * lam) * individual(lam, p), 0, 60, weight="alg", wvar=(r - 1, 0)
            )[0],
            0,
            1,
            weight="alg",
            wvar=(a - 1, b - 1),
            epsabs=0,
            epsrel=1e-11,
        )[0]
    )
    assert clv.bgnbd_log_likelihood(params, [x], [t_x], T=[T]) == pytest.approx(math.log(value), rel=1e-9)


@pytest.mark.parametrize(
    "params, customers",
    [
        ((6.0, 4.0, 15.0), [(1, 20.0)]),
        ((6.0, 4.0, 15.0), [(1, 20.0), (2, 35.5), (4, 12.25)]),
        ((2.5, 1.5, 3.0), [(3, 0.8), (1, 4.0)]),
    ],
)
def test_gamma_gamma_log_likelihood_equals_the_density_by_hand(params, customers):
    x, m_x = map(np.array, zip(*customers, strict=True))
    expected = sum(math.log(gamma_gamma_density_by_hand(*params, *row)) for row in customers)
    assert clv.gamma_gamma_log_likelihood(params, x, m_x) == pytest.approx(expected, rel=1e-12)


def test_gamma_gamma_density_is_the_gamma_mixture_it_claims():
    """The density of m_x integrated numerically from the story: m_x | nu ~ gamma(px, rate nu x),
    nu ~ gamma(q, rate v)."""
    p, q, v = params = (3.0, 2.5, 10.0)
    x, m_x = 3, 4.0
    value = integrate.quad(
        lambda nu: stats.gamma.pdf(m_x, p * x, scale=1 / (nu * x)) * stats.gamma.pdf(nu, q, scale=1 / v),
        0,
        np.inf,
        epsabs=0,
        epsrel=1e-12,
    )[0]
    assert clv.gamma_gamma_log_likelihood(params, [x], [m_x]) == pytest.approx(math.log(value), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Gradients against central finite differences


def central_differences(function, params, step=1e-6):
    params = np.asarray(params, dtype=float)
    gradient = []
    for i in range(params.size):
        h = step * params[i]
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        gradient.append((function(up) - function(down)) / (2 * h))
    return np.array(gradient)


def random_customers(rng, n=200):
    x = rng.integers(0, 12, n)
    T = rng.uniform(5, 40, n)
    t_x = np.where(x > 0, rng.uniform(0, 1, n) * T, 0.0)
    return x, t_x, T


@pytest.mark.parametrize("params", [CDNOW_PARAMS, (1.7, 0.9, 1.4, 0.6), (0.05, 30.0, 0.2, 8.0)])
def test_bgnbd_gradient_matches_finite_differences(params):
    x, t_x, T = random_customers(np.random.default_rng(1))
    weights = np.random.default_rng(2).integers(1, 5, x.size)
    numeric = central_differences(lambda p: clv.bgnbd_log_likelihood(p, x, t_x, T=T, weights=weights), params)
    analytic = clv.bgnbd_gradient(params, x, t_x, T=T, weights=weights)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5)


@pytest.mark.parametrize("params", [(6.25, 3.74, 15.44), (0.7, 1.2, 2.0), (20.0, 9.0, 80.0)])
def test_gamma_gamma_gradient_matches_finite_differences(params):
    rng = np.random.default_rng(3)
    x = rng.integers(1, 15, 200)
    m_x = rng.gamma(3.0, 10.0, 200)
    numeric = central_differences(lambda p: clv.gamma_gamma_log_likelihood(p, x, m_x), params)
    np.testing.assert_allclose(clv.gamma_gamma_gradient(params, x, m_x), numeric, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Spark aggregates equal the numpy sums


def with_extreme_customers(customers):
    """The customers (x, t_x, T) and histories where A3 and A4 of eq. (6) differ by hundreds of
    orders of magnitude, either way: very frequent buyers who stopped long ago, and ones who
    bought to the last day."""
    extreme = ([500, 5000, 5000, 300, 1], [1.0, 2.0, 39.0, 38.9, 0.0], [39.0] * 5)
    return tuple(np.concatenate([column, added]) for column, added in zip(customers, extreme, strict=True))


def test_spark_aggregates_equal_the_numpy_likelihoods_and_gradients(spark):
    rng = np.random.default_rng(4)
    x, t_x, T = with_extreme_customers(random_customers(rng, 500))
    counts = rng.integers(1, 20, x.size)
    m_x = rng.gamma(3.0, 10.0, x.size)
    combinations = spark.createDataFrame(
        pd.DataFrame({clv.X: x, clv.T_X: t_x, clv.T_CAL: T, clv.COUNT: counts})
    ).repartition(3)
    log_likelihood, gradient = clv.bgnbd_spark_log_likelihood(CDNOW_PARAMS, combinations)
    assert log_likelihood == pytest.approx(
        clv.bgnbd_log_likelihood(CDNOW_PARAMS, x, t_x, T=T, weights=counts), rel=1e-12
    )
    np.testing.assert_allclose(
        gradient, clv.bgnbd_gradient(CDNOW_PARAMS, x, t_x, T=T, weights=counts), rtol=1e-10
    )

    repeat = x > 0
    spend = spark.createDataFrame(
        pd.DataFrame({clv.X: x[repeat], clv.M_X: m_x[repeat], clv.COUNT: counts[repeat]})
    ).repartition(3)
    params = (6.25, 3.74, 15.44)
    log_likelihood, gradient = clv.gamma_gamma_spark_log_likelihood(params, spend)
    expected = clv.gamma_gamma_log_likelihood(params, x[repeat], m_x[repeat], weights=counts[repeat])
    assert log_likelihood == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(
        gradient,
        clv.gamma_gamma_gradient(params, x[repeat], m_x[repeat], weights=counts[repeat]),
        rtol=1e-10,
    )


# ---------------------------------------------------------------------------------------------
# Parameter recovery from simulated customers


def simulate_bgnbd(params, n, rng):
    """The model's story: first purchase at 0; purchases at Poisson rate lam ~ gamma(r, alpha);
    after each repeat purchase the customer drops out with probability p ~ beta(a, b)."""
    r, alpha, a, b = params
    T = rng.uniform(30, 40, n)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    x, t_x = np.zeros(n, dtype=int), np.zeros(n)
    for i in range(n):
        now = rng.exponential(1 / lam[i])
        while now <= T[i]:
            x[i] += 1
            t_x[i] = now
            if rng.random() < p[i]:
                break
            now += rng.exponential(1 / lam[i])
    return x, t_x, T


def standard_errors(gradient, params):
    """sqrt(diag(inverse observed information)), the Hessian by central differences of the
    (finite-difference-checked) analytic gradient."""
    params = np.asarray(params, dtype=float)
    hessian = np.empty((params.size, params.size))
    for i in range(params.size):
        h = 1e-5 * params[i]
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        hessian[:, i] = (gradient(up) - gradient(down)) / (2 * h)
    return np.sqrt(np.diag(np.linalg.inv(-(hessian + hessian.T) / 2)))


def test_fit_bgnbd_recovers_the_parameters_of_simulated_customers(spark):
    truth = (0.25, 4.0, 0.8, 2.5)
    x, t_x, T = simulate_bgnbd(truth, 5000, np.random.default_rng(5))
    summary = spark.createDataFrame(pd.DataFrame({clv.X: x, clv.T_X: t_x, clv.T_CAL: T}))
    fit = clv.fit_bgnbd(clv.combination_counts(summary), seed=1)
    assert fit.converged, fit.message
    assert fit.customers == 5000
    assert fit.log_likelihood == pytest.approx(clv.bgnbd_log_likelihood(fit.params, x, t_x, T=T), rel=1e-12)
    errors = standard_errors(lambda p: clv.bgnbd_gradient(p, x, t_x, T=T), fit.params)
    # 5,000 customers: each estimate within 4 asymptotic standard errors (a chance of about
    # 6e-5 each to fail for a correct fit), and those errors small enough to mean something.
    assert np.all(errors < 0.5 * np.array(truth)), errors
    assert np.all(np.abs(np.array(fit.params) - truth) <= 4 * errors), (fit.params, errors)


def test_fit_gamma_gamma_recovers_the_parameters_of_simulated_customers(spark):
    """The story: nu ~ gamma(q, rate v) per customer, each of x orders ~ gamma(p, rate nu)."""
    p, q, v = truth = (6.0, 4.0, 15.0)
    rng = np.random.default_rng(6)
    n = 5000
    x = 1 + rng.poisson(2.0, n)
    nu = rng.gamma(q, 1 / v, n)
    m_x = np.array([rng.gamma(p, 1 / nu[i], x[i]).mean() for i in range(n)])
    summary = spark.createDataFrame(pd.DataFrame({clv.X: x, clv.M_X: m_x}))
    fit = clv.fit_gamma_gamma(clv.spend_counts(summary), seed=1)
    assert fit.converged, fit.message
    assert fit.customers == n
    errors = standard_errors(lambda params: clv.gamma_gamma_gradient(params, x, m_x), fit.params)
    assert np.all(errors < 0.5 * np.array(truth)), errors
    assert np.all(np.abs(np.array(fit.params) - truth) <= 4 * errors), (fit.params, errors)


def test_fits_refuse_an_empty_frame(spark):
    empty = spark.createDataFrame([], f"{clv.X} long, {clv.T_X} double, {clv.T_CAL} double, {clv.COUNT} long")
    with pytest.raises(InputError, match="no customers"):
        clv.fit_bgnbd(empty)


# ---------------------------------------------------------------------------------------------
# P(alive) and expected purchases against integration over the latent lam and p


def posterior_expectations(params, x, t_x, T, t):
    """(P(alive), E[purchases in (T, T+t]]) by integrating over lam and p, from the story alone:
    alive at T with likelihood (1-p)^x lam^x e^(-lam T), dropped out after the x-th purchase with
    p (1-p)^(x-1) lam^x e^(-lam t_x); alive, the customer buys lam * E[min(t, Exp(lam p))] =
    (1 - e^(-lam p t)) / p more times. Prior densities enter as QUADPACK algebraic weights;
    every integrand is scaled by one constant so large x neither underflows nor overflows."""
    r, alpha, a, b = params
    mode = (x + r) / (alpha + T)
    log_scale = x * math.log(mode) - mode * T
    upper = (x + r + 12 * math.sqrt(x + r) + 40) / (alpha + min(t_x, T) if x > 0 else alpha + T)

    def integral(integrand):
        def over_lambda(p):
            return integrate.quad(
                lambda lam: math.exp(-alpha * lam) * integrand(lam, p),
                0,
                upper,
                weight="alg",
                wvar=(r - 1, 0),
                epsabs=0,
                epsrel=1e-11,
                limit=200,
            )[0]

        return integrate.quad(
            over_lambda, 0, 1, weight="alg", wvar=(a - 1, b - 1), epsabs=0, epsrel=1e-10, limit=200
        )[0]

    def power(base, exponent):  # base ** exponent with 0 ** 0 = 1, in the scaled log space
        return 1.0 if exponent == 0 else (base**exponent if base > 0 else 0.0)

    def alive(lam, p):
        return power(lam, x) * math.exp(-lam * T - log_scale) * power(1 - p, x)

    def dead(lam, p):
        return 0.0 if x == 0 else p * power(lam, x) * math.exp(-lam * t_x - log_scale) * power(1 - p, x - 1)

    def future(lam, p):
        return alive(lam, p) * (lam * t if p == 0 else -math.expm1(-lam * p * t) / p)

    alive_mass, dead_mass = integral(alive), integral(dead)
    return alive_mass / (alive_mass + dead_mass), integral(future) / (alive_mass + dead_mass)


@pytest.mark.parametrize(
    "params, x, t_x, T",
    [
        (CDNOW_PARAMS, 0, 0.0, 38.86),
        (CDNOW_PARAMS, 2, 30.43, 38.86),
        (CDNOW_PARAMS, 7, 10.0, 35.0),
        (CDNOW_PARAMS, 150, 38.0, 39.0),  # the original 2F1 of eq. (10) is ~1e40 here
        ((0.9, 6.0, 1.6, 3.2), 0, 0.0, 20.0),  # a > 1: eq. (10)'s a - 1 changes sign
        ((0.9, 6.0, 1.6, 3.2), 4, 12.0, 20.0),
    ],
)
def test_p_alive_and_expected_purchases_equal_integrals_over_lambda_and_p(params, x, t_x, T):
    t = 39.0
    alive, purchases = posterior_expectations(params, x, t_x, T, t)
    assert float(clv.p_alive(params, x, t_x, T=T)) == pytest.approx(alive, rel=1e-7)
    assert float(clv.expected_purchases(params, t, x, t_x=t_x, T=T)) == pytest.approx(purchases, rel=1e-7)


def test_expected_purchases_stays_finite_and_ordered_for_very_large_x():
    x = np.array([1e3, 1e4, 1e5])
    purchases = clv.expected_purchases(CDNOW_PARAMS, 10.0, x, t_x=np.full(3, 39.0), T=np.full(3, 39.0))
    assert np.all(np.isfinite(purchases)) and np.all(np.diff(purchases) > 0)
    # Bought up to the last moment, such a customer is alive and buys at about (r+x)/(alpha+T):
    # dropout over the next 10 weeks removes at most half the purchases.
    rate = (CDNOW_PARAMS[0] + x) / (CDNOW_PARAMS[1] + 39.0)
    assert np.all((purchases <= 10.0 * rate) & (purchases >= 0.5 * 10.0 * rate))


def test_expected_purchases_is_smooth_through_a_equal_to_one():
    values = [
        float(clv.expected_purchases((0.5, 5.0, a, 2.0), 20.0, 3, t_x=8.0, T=25.0))
        for a in (0.9999, 1.0, 1.0001)
    ]
    assert values[1] == pytest.approx((values[0] + values[2]) / 2, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Gamma-Gamma expectation and CLV


def test_expected_order_value_is_the_posterior_mean_of_the_order_value():
    """E(M | x, m_x) = v' p / (q' - 1) for the gamma posterior of nu: shape q' = px + q, rate
    v' = v + x m_x; x = 0 gets the prior mean v p / (q - 1)."""
    p, q, v = params = (6.25, 3.74, 15.44)
    x, m_x = np.array([0, 1, 5]), np.array([np.nan, 20.0, 42.5])
    expected = [v * p / (q - 1), (v + 20.0) * p / (p + q - 1), (v + 5 * 42.5) * p / (5 * p + q - 1)]
    np.testing.assert_allclose(clv.expected_order_value(params, x, m_x), expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"q = 0\.9"):
        clv.expected_order_value((6.0, 0.9, 15.0), x, m_x)


def test_clv_without_discounting_is_expected_purchases_times_order_value():
    summary = {
        clv.X: np.array([0, 2, 7]),
        clv.T_X: np.array([0.0, 30.43, 20.0]),
        clv.T_CAL: np.full(3, 38.86),
    }
    summary[clv.M_X] = np.array([np.nan, 22.35, 40.0])
    value = clv.clv(CDNOW_PARAMS, (6.25, 3.74, 15.44), summary, horizon=52.0, annual_discount_rate=0.0)
    expected = clv.expected_purchases(
        CDNOW_PARAMS, 52.0, summary[clv.X], t_x=summary[clv.T_X], T=summary[clv.T_CAL]
    ) * clv.expected_order_value((6.25, 3.74, 15.44), summary[clv.X], summary[clv.M_X])
    np.testing.assert_allclose(value, expected, rtol=1e-12)


def test_clv_discounting_is_within_one_step_of_continuous_discounting():
    """The documented approximation: per-step sums discounted at each step's end, against
    continuous discounting integrated on a fine grid of the same expected purchases."""
    summary = {
        clv.X: np.array([0, 2, 7]),
        clv.T_X: np.array([0.0, 30.43, 20.0]),
        clv.T_CAL: np.full(3, 38.86),
    }
    summary[clv.M_X] = np.array([np.nan, 22.35, 40.0])
    gamma_gamma, rate, horizon = (6.25, 3.74, 15.44), 0.10, 104.0
    value = clv.clv(CDNOW_PARAMS, gamma_gamma, summary, horizon=horizon, annual_discount_rate=rate)
    grid = np.linspace(0, horizon, 10_401)
    cumulative = np.stack(
        [
            clv.expected_purchases(
                CDNOW_PARAMS, t, summary[clv.X], t_x=summary[clv.T_X], T=summary[clv.T_CAL]
            )
            if t > 0
            else np.zeros(3)
            for t in grid
        ]
    )
    discount = (1 + rate) ** (-grid[1:] / (365.25 / 7))
    continuous = discount @ np.diff(cumulative, axis=0)
    continuous *= clv.expected_order_value(gamma_gamma, summary[clv.X], summary[clv.M_X])
    one_week = 1 - (1 + rate) ** (-1 / (365.25 / 7))
    assert np.all(value <= continuous) and np.all(value >= continuous * (1 - one_week)), (value, continuous)


def test_spark_versions_equal_the_numpy_versions(spark):
    rng = np.random.default_rng(7)
    x, t_x, T = with_extreme_customers(random_customers(rng, 300))
    T = np.ceil(T)  # whole weeks: customers share histories (x, T), evaluated once for all of them
    m_x = rng.gamma(3.0, 10.0, x.size)
    rows = [
        (i, int(x[i]), float(t_x[i]), float(T[i]), float(m_x[i]) if x[i] > 0 else None) for i in range(x.size)
    ]
    frame = spark.createDataFrame(
        rows, f"id long, {clv.X} long, {clv.T_X} double, {clv.T_CAL} double, {clv.M_X} double"
    )
    assert frame.select(clv.X, clv.T_CAL).distinct().count() < x.size
    gamma_gamma = (6.25, 3.74, 15.44)
    values = clv.with_customer_value(
        frame, CDNOW_PARAMS, gamma_gamma, horizons=[26, 52], annual_discount_rate=0.1
    )
    values = clv.with_expected_purchases(values, CDNOW_PARAMS, {"purchases_in_10_5": 10.5})
    got = values.orderBy("id").toPandas()
    assert got["id"].tolist() == list(range(x.size))  # the join to the histories kept every customer once
    ordered = {name: got[name].to_numpy(dtype=float) for name in (clv.X, clv.T_X, clv.T_CAL, clv.M_X)}
    x, t_x, T, m_x = (ordered[name] for name in (clv.X, clv.T_X, clv.T_CAL, clv.M_X))
    assert np.isnan(m_x).sum() == (x == 0).sum() > 0
    np.testing.assert_allclose(got[P_ALIVE], clv.p_alive(CDNOW_PARAMS, x, t_x, T=T), rtol=1e-13)
    for t, name in [
        (26, expected_purchases_in(26)),
        (52, expected_purchases_in(52)),
        (10.5, "purchases_in_10_5"),
    ]:
        expected = clv.expected_purchases(CDNOW_PARAMS, float(t), x, t_x=t_x, T=T)
        np.testing.assert_allclose(got[name], expected, rtol=1e-13)
    np.testing.assert_allclose(
        got[EXPECTED_ORDER_VALUE], clv.expected_order_value(gamma_gamma, x, m_x), rtol=1e-13
    )
    for horizon in (26, 52):
        expected = clv.clv(
            CDNOW_PARAMS, gamma_gamma, ordered, horizon=float(horizon), annual_discount_rate=0.1
        )
        np.testing.assert_allclose(got[clv_in(horizon)], expected, rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# The published anchor: the CDNOW sample


def lifetimes_data_file(name: str) -> Path:
    try:
        return Path(distribution("lifetimes").locate_file(f"lifetimes/datasets/{name}"))
    except PackageNotFoundError:
        pytest.fail("the CDNOW data ship in the lifetimes wheel: pip install --no-deps lifetimes==0.11.3")


@pytest.fixture(scope="module")
def cdnow(spark):
    """CDNOW_sample.txt: customer id, customer index, date YYYYMMDD, CDs, dollars; one order per
    customer and purchase day (order_id null, order_ts the day)."""
    raw = pd.read_csv(
        lifetimes_data_file("CDNOW_sample.txt"),
        sep=r"\s+",
        header=None,
        names=["id", "index", "date", "cds", "dollars"],
        dtype={"id": str, "date": str},
    )
    transactions = spark.createDataFrame(
        pd.DataFrame(
            {
                CUSTOMER_ID: raw["id"],
                ORDER_TS: pd.to_datetime(raw["date"], format="%Y%m%d"),
                AMOUNT: raw["dollars"].astype(float),
                ORDER_ID: None,
            }
        ),
        TRANSACTIONS_SCHEMA,
    )
    summary = clv.summary_frame(transactions, dt.date(1997, 9, 30)).cache()
    index = dict(zip(raw["id"], raw["index"], strict=False))
    local = summary.toPandas()
    local["index"] = local[CUSTOMER_ID].map(index)
    yield summary, local
    summary.unpersist()


def test_cdnow_summary_equals_the_published_per_customer_summary(cdnow):
    """cdnow_customers_summary_with_transactions.csv (x, t_x, T, zbar per customer index,
    2 decimals): Fader & Hardie's own calibration summary, next to the raw file."""
    _, local = cdnow
    published = pd.read_csv(lifetimes_data_file("cdnow_customers_summary_with_transactions.csv"))
    both = published.merge(local, left_on="ID", right_on="index", suffixes=("_published", ""))
    assert len(both) == len(published) == len(local) == 2357
    assert (both["x_published"] == both[clv.X]).all()
    for mine, theirs in ((clv.T_X, "t_x_published"), (clv.T_CAL, "T_published"), (clv.M_X, "zbar")):
        np.testing.assert_allclose(both[mine].fillna(0.0), both[theirs], atol=0.005 + 1e-9)


def test_cdnow_fits_reproduce_the_published_estimates(cdnow):
    summary, local = cdnow
    bgnbd = clv.fit_bgnbd(clv.combination_counts(summary))
    assert bgnbd.converged, bgnbd.message
    assert bgnbd.customers == 2357
    # FHL (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4.
    for estimate, published in zip(bgnbd.params, CDNOW_PARAMS, strict=True):
        assert abs(estimate - published) <= max(0.002, 0.005 * published)
    assert bgnbd.log_likelihood == pytest.approx(-9582.4, abs=0.5)

    gamma_gamma = clv.fit_gamma_gamma(clv.spend_counts(summary))
    assert gamma_gamma.converged, gamma_gamma.message
    assert gamma_gamma.customers == 946
    # Fader & Hardie (2013): p = 6.25, q = 3.74, v = 15.44, LL = -4055.9, over 946 repeat buyers.
    np.testing.assert_allclose(gamma_gamma.params, (6.25, 3.74, 15.44), rtol=0.01)
    assert gamma_gamma.log_likelihood == pytest.approx(-4055.9, abs=1.0)

    repeat = local[local[clv.X] > 0]
    assert clv.frequency_spend_correlation(summary) == pytest.approx(
        np.corrcoef(repeat[clv.X], repeat[clv.M_X])[0, 1], rel=1e-9
    )


def test_cdnow_fits_on_spark_equal_the_fits_on_the_driver(cdnow):
    """max_driver_rows=0 forces one Spark aggregate per optimiser step."""
    summary, _ = cdnow
    combinations = clv.combination_counts(summary).cache()
    on_driver = clv.fit_bgnbd(combinations, starts=1)
    on_spark = clv.fit_bgnbd(combinations, max_driver_rows=0, starts=1)
    assert on_spark.converged, on_spark.message
    np.testing.assert_allclose(on_spark.params, on_driver.params, rtol=1e-5)
    assert on_spark.log_likelihood == pytest.approx(on_driver.log_likelihood, abs=1e-6)
    assert on_spark.customers == on_driver.customers == 2357

    spend = clv.spend_counts(summary).cache()
    on_driver = clv.fit_gamma_gamma(spend, starts=1)
    on_spark = clv.fit_gamma_gamma(spend, max_driver_rows=0, starts=1)
    assert on_spark.converged, on_spark.message
    np.testing.assert_allclose(on_spark.params, on_driver.params, rtol=1e-5)
    assert on_spark.customers == on_driver.customers == 946
    combinations.unpersist()
    spend.unpersist()
