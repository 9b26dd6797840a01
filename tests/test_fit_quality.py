"""The sweep's kept fits are as good as scikit-learn's on the same vectors.

`fit_best`, with the seed, restarts and grid parameters of the shipped config, fits RFM-like
customer features (log1p'd recency, frequency, average order value and tenure of overlapping
customer types, divided by their standard deviation as the project's preprocessing does), and
its kept fit is held within 1% of scikit-learn's on the same vectors:

- K-means: within-cluster sum of squares <= 1.01 x KMeans(n_init=10), also on eight blobs at
  k=6, where a single start lands 4.0% above it (measured): `sweep.restarts=1` fails here.
- Bisecting K-means: WSS <= 1.01 x BisectingKMeans(bisecting_strategy="largest_cluster"), the
  same algorithm: Spark also splits the largest divisible clusters first, each split a 2-means.
  A divisive tree cannot match an unconstrained K-means (it stays several percent above
  KMeans(n_init=10) on this data, bench/fit_levers.py), so K-means is not its reference.
  Spark's tree is not scikit-learn's either: Spark bisects all leaves of a level together
  (only the last level is limited to the largest clusters), scikit-learn one cluster at a
  time, and at k=5 and 8 here that costs Spark 10-11% more WSS whatever the seed or number
  of starts; those points are strict expected failures, so a change that closes the gap shows.
- Gaussian mixture: total log-likelihood of the noiseless vectors within 1% of (or above)
  GaussianMixture(n_init=5, reg_covar=1e-6, covariance_type="full"); Spark's fit sees the
  vectors plus `regularized`'s noise, so both likelihoods are computed here the same way.

bench/fit_levers.py measures the same gaps for k = 2..12, on a second dataset, per lever.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.cluster import BisectingKMeans, KMeans
from sklearn.mixture import GaussianMixture

from segmentation.config import load_config
from segmentation.models import SCALED
from segmentation.sweep import FitStarts, GridPoint, fit_best
from segmentation.tables import CUSTOMER_ID

ROWS = 4_000
TOLERANCE = 0.01
# share, recency days mean, orders mean, log order value mean, tenure days range
CUSTOMER_TYPES = (
    (0.22, 20, 1.5, 3.3, (10, 120)),
    (0.20, 250, 1.0, 3.5, (200, 900)),
    (0.18, 30, 8.0, 3.6, (300, 1500)),
    (0.10, 10, 20.0, 4.0, (600, 1800)),
    (0.12, 120, 5.0, 3.7, (400, 1500)),
    (0.12, 400, 2.5, 3.2, (500, 1800)),
    (0.06, 60, 2.0, 5.2, (100, 1200)),
)


def rfm_points(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(rows, [customer_type[0] for customer_type in CUSTOMER_TYPES])
    parts = [
        np.column_stack(
            [
                rng.gamma(2.0, recency / 2.0, n),
                1 + rng.negative_binomial(2, 2 / (2 + orders), n),
                rng.lognormal(order_value, 0.6, n),
                rng.uniform(low, high, n),
            ]
        )
        for (_, recency, orders, order_value, (low, high)), n in zip(CUSTOMER_TYPES, counts, strict=True)
    ]
    points = np.log1p(np.vstack(parts))
    return points / points.std(axis=0)


def blob_points(rows: int, seed: int) -> np.ndarray:
    """Eight 4-D Gaussian blobs of Dirichlet sizes and spreads 0.3-2.0, Student-t(3) noise on one
    dimension: where a single k-means|| start lands 4% above scikit-learn at k=6 and three
    starts are not enough (bench/fit_levers.py, the same data)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 12, (8, 4))
    sizes = rng.multinomial(rows, rng.dirichlet(np.full(8, 1.5)))
    spreads = rng.uniform(0.3, 2.0, 8)
    points = np.vstack([rng.normal(c, s, (n, 4)) for c, s, n in zip(centres, spreads, sizes, strict=True)])
    points[:, 3] += rng.standard_t(3, rows)
    points += 20.0
    return points / points.std(axis=0)


def _vectors(spark, points: np.ndarray):
    rows = [(f"c{i:05d}", Vectors.dense(row)) for i, row in enumerate(points.tolist())]
    vectors = spark.createDataFrame(rows, [CUSTOMER_ID, SCALED]).cache()
    vectors.count()
    return vectors


@pytest.fixture(scope="module")
def rfm(spark):
    points = rfm_points(ROWS, seed=7)
    vectors = _vectors(spark, points)
    yield points, vectors
    vectors.unpersist()


@pytest.fixture(scope="module")
def blobs(spark):
    points = blob_points(6_000, seed=42)
    vectors = _vectors(spark, points)
    yield points, vectors
    vectors.unpersist()


def kept_fit(vectors, algorithm: str, k: int):
    """What the sweep keeps at this grid point: the shipped config's seed, restarts and grid values."""
    sweep = load_config(None, []).sweep
    params = {name: values[0] for name, values in sweep.grid[algorithm].items()} | {"k": k}
    return fit_best(vectors, GridPoint(algorithm, params, 0), seed=sweep.seed, starts=FitStarts.of(sweep))


def within_ss(points: np.ndarray, centres: np.ndarray) -> float:
    return float(((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2).min(axis=1).sum())


@pytest.mark.parametrize(("data", "k"), [("rfm", 3), ("rfm", 5), ("rfm", 8), ("blobs", 6)])
def test_kmeans_is_within_one_percent_of_scikit_learn(request, data, k):
    points, vectors = request.getfixturevalue(data)
    model = kept_fit(vectors, "kmeans", k)
    spark_wss = within_ss(points, np.array(model.clusterCenters()))
    reference = KMeans(n_clusters=k, n_init=10, random_state=0).fit(points).inertia_
    assert spark_wss <= (1 + TOLERANCE) * reference, f"k={k}: WSS {spark_wss:.2f} vs {reference:.2f}"


LEVEL_WISE = pytest.mark.xfail(
    strict=True,
    reason="Spark bisects every leaf of a level at once, scikit-learn one largest cluster at a "
    "time; no Spark parameter or restart changes the tree (measured: 10-11% more WSS here)",
)


@pytest.mark.parametrize("k", [3, pytest.param(5, marks=LEVEL_WISE), pytest.param(8, marks=LEVEL_WISE)])
def test_bisecting_kmeans_is_within_one_percent_of_scikit_learn_bisecting(rfm, k):
    points, vectors = rfm
    model = kept_fit(vectors, "bisecting_kmeans", k)
    spark_wss = model.summary.trainingCost  # assignment down the tree, as scikit-learn's inertia_
    reference = BisectingKMeans(n_clusters=k, bisecting_strategy="largest_cluster", random_state=0)
    reference_wss = reference.fit(points).inertia_
    assert spark_wss <= (1 + TOLERANCE) * reference_wss, f"k={k}: WSS {spark_wss:.2f} vs {reference_wss:.2f}"


@pytest.mark.parametrize("k", [3, 5, 8])
def test_gaussian_mixture_log_likelihood_is_within_one_percent_of_scikit_learn(rfm, k):
    points, vectors = rfm
    model = kept_fit(vectors, "gaussian_mixture", k)
    components = [
        np.log(weight)
        + multivariate_normal(g.mean.toArray(), g.cov.toArray(), allow_singular=True).logpdf(points)
        for weight, g in zip(model.weights, model.gaussians, strict=True)
    ]
    spark_ll = float(logsumexp(np.column_stack(components), axis=1).sum())
    reference = GaussianMixture(
        n_components=k, n_init=5, reg_covar=1e-6, covariance_type="full", random_state=0
    )
    reference_ll = float(reference.fit(points).score(points) * len(points))
    assert spark_ll >= reference_ll - TOLERANCE * abs(reference_ll), (
        f"k={k}: log-likelihood {spark_ll:.2f} vs {reference_ll:.2f}"
    )
