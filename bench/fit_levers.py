"""How close the sweep's kept fits come to scikit-learn's, and what each lever costs.

    .venv/bin/python bench/fit_levers.py --rows 10000 --levers base,init_steps_5,random_init

For each dataset, algorithm and k it fits the project's estimators (`build_estimator` on the
sweep's vectors, the mixture on `regularized` vectors as `fit_best` does) from several seeds
and reports, for the best of the first r starts (= `fit_best` with restarts=r, which keeps the
start with the lowest Spark training cost / highest Spark log-likelihood), the relative gap to
scikit-learn:

    kmeans, bisecting   (WSS - WSS_ref) / WSS_ref                  > 0: worse than the reference
    mixture             (ll_ref - ll) / |ll_ref|                   > 0: worse than the reference

WSS and the mixture's total log-likelihood are evaluated with numpy on the same (noiseless)
vectors for both libraries, except bisecting, whose WSS is each library's own (its assignment
follows the tree, not the nearest centre). Seconds are the summed fit time of those r starts.
References: KMeans(n_init=10, random_state=0); BisectingKMeans(bisecting_strategy=
"largest_cluster") (Spark splits the largest divisible clusters first) and KMeans(n_init=10);
GaussianMixture(n_init=5, reg_covar=1e-6, covariance_type="full", random_state=0).

Datasets (numpy, seeded, vectors divided by their standard deviation without centring, as the
project's preprocessing does): `blobs`, 4-D Gaussian blobs of unequal sizes and spreads with
Student-t noise on one dimension; `rfm`, log1p'd recency, frequency, average order value and
tenure drawn from seven overlapping customer types.

The pyspark.ml estimators in pyspark 4.0.1 and 4.1.4 take no initial model (only the RDD-based
pyspark.mllib ones do, whose models cannot become pyspark.ml pipeline stages), so "restarts on
a sample, then refit the best start's centres on all rows" and "a mixture started from the
best K-means" cannot be run through the project's pipeline; they are not levers here.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.ml.clustering import GaussianMixtureModel
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame, SparkSession
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.cluster import BisectingKMeans, KMeans
from sklearn.mixture import GaussianMixture

from segmentation.config import SparkConfig
from segmentation.models import SCALED, build_estimator
from segmentation.spark import get_spark
from segmentation.sweep import regularized
from segmentation.tables import CUSTOMER_ID

SEED = 42
BASE = {
    "kmeans": {"initMode": "k-means||", "initSteps": 2, "maxIter": 50, "tol": 1e-4},
    "bisecting_kmeans": {"minDivisibleClusterSize": 1.0, "maxIter": 50},
    "gaussian_mixture": {"maxIter": 100, "tol": 0.01},
}
# lever name: (algorithm, parameter changes, starts fitted); restarts r are the prefixes 1, 3, 5, 10
# up to the starts fitted (few: on a shared 2-core machine a start takes seconds).
LEVERS: dict[str, tuple[str, dict[str, Any], int]] = {
    "base": ("kmeans", {}, 10),
    "init_steps_5": ("kmeans", {"initSteps": 5}, 5),
    "random_init": ("kmeans", {"initMode": "random"}, 5),
    "max_iter_200_tol_1e-6": ("kmeans", {"maxIter": 200, "tol": 1e-6}, 3),
    "bisecting_base": ("bisecting_kmeans", {}, 3),
    "mixture_base": ("gaussian_mixture", {}, 3),
    "mixture_max_iter_300_tol_1e-3": ("gaussian_mixture", {"maxIter": 300, "tol": 1e-3}, 3),
}


def blobs(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Eight 4-D blobs, sizes from a Dirichlet, spreads 0.3-2.0, Student-t(3) noise on dim 3."""
    centres = rng.uniform(0, 12, (8, 4))
    sizes = rng.multinomial(rows, rng.dirichlet(np.full(8, 1.5)))
    spreads = rng.uniform(0.3, 2.0, 8)
    parts = [rng.normal(c, s, (n, 4)) for c, s, n in zip(centres, spreads, sizes, strict=True)]
    points = np.vstack(parts)
    points[:, 3] += rng.standard_t(3, rows)
    return points + 20.0


def rfm(rows: int, rng: np.random.Generator) -> np.ndarray:
    """log1p of recency days, orders, average order value and tenure days for seven customer
    types whose ranges overlap (new, one-off, loyal, champions, at risk, hibernating, big spenders)."""
    types = [  # share, recency mean, orders mean, aov log-mean, tenure range
        (0.22, 20, 1.5, 3.3, (10, 120)),
        (0.20, 250, 1.0, 3.5, (200, 900)),
        (0.18, 30, 8.0, 3.6, (300, 1500)),
        (0.10, 10, 20.0, 4.0, (600, 1800)),
        (0.12, 120, 5.0, 3.7, (400, 1500)),
        (0.12, 400, 2.5, 3.2, (500, 1800)),
        (0.06, 60, 2.0, 5.2, (100, 1200)),
    ]
    counts = rng.multinomial(rows, [t[0] for t in types])
    parts = []
    for (_, recency, orders, aov, (low, high)), n in zip(types, counts, strict=True):
        parts.append(
            np.column_stack(
                [
                    rng.gamma(2.0, recency / 2.0, n),
                    1 + rng.negative_binomial(2, 2 / (2 + orders), n),
                    rng.lognormal(aov, 0.6, n),
                    rng.uniform(low, high, n),
                ]
            )
        )
    return np.log1p(np.vstack(parts))


DATASETS = {"blobs": blobs, "rfm": rfm}


def dataset(name: str, rows: int, seed: int) -> np.ndarray:
    """The dataset scaled as the project scales: divided by the standard deviation, not centred."""
    points = DATASETS[name](rows, np.random.default_rng(seed))
    return points / points.std(axis=0)


def to_vectors(spark: SparkSession, points: np.ndarray) -> DataFrame:
    rows = [(f"c{i:06d}", Vectors.dense(row)) for i, row in enumerate(points.tolist())]
    return spark.createDataFrame(rows, [CUSTOMER_ID, SCALED])


def wss(points: np.ndarray, centres: np.ndarray) -> float:
    distances = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return float(distances.min(axis=1).sum())


def mixture_log_likelihood(points: np.ndarray, model: GaussianMixtureModel) -> float:
    """Total log-likelihood of `points` under Spark's fitted mixture, as scikit-learn's
    `score(X) * n` measures its own."""
    logs = [
        np.log(weight)
        + multivariate_normal(g.mean.toArray(), g.cov.toArray(), allow_singular=True).logpdf(points)
        for weight, g in zip(model.weights, model.gaussians, strict=True)
    ]
    return float(logsumexp(np.column_stack(logs), axis=1).sum())


def references(points: np.ndarray, k: int) -> dict[str, float]:
    """scikit-learn's figures at k (WSS, or total log-likelihood for the mixture)."""
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=0).fit(points)
    bisecting = BisectingKMeans(n_clusters=k, bisecting_strategy="largest_cluster", random_state=0)
    bisecting.fit(points)
    mixture = GaussianMixture(
        n_components=k, n_init=5, reg_covar=1e-6, covariance_type="full", random_state=0
    ).fit(points)
    return {
        "kmeans": float(kmeans.inertia_),
        "bisecting": float(bisecting.inertia_),
        "mixture": float(mixture.score(points) * len(points)),
    }


@dataclass(frozen=True)
class Start:
    spark_score: float  # what fit_best ranks by: training cost, or minus the log-likelihood
    quality: float  # WSS, or the total log-likelihood on the noiseless vectors
    seconds: float
    iterations: int


def starts(
    vectors: DataFrame, points: np.ndarray, *, algorithm: str, params: dict[str, Any], count: int
) -> list[Start]:
    """Starts from seeds SEED, SEED + 1, ... as `fit_best` runs them."""
    training = regularized(vectors, SEED) if algorithm == "gaussian_mixture" else vectors
    fitted = []
    for start in range(count):
        estimator = build_estimator(algorithm, params, SEED + start)
        started = time.perf_counter()
        model = estimator.fit(training)
        seconds = time.perf_counter() - started
        summary = model.summary
        if algorithm == "gaussian_mixture":
            score, quality = -summary.logLikelihood, mixture_log_likelihood(points, model)
        elif algorithm == "kmeans":
            score, quality = summary.trainingCost, wss(points, np.array(model.clusterCenters()))
        else:
            score = quality = summary.trainingCost
        fitted.append(Start(score, quality, seconds, summary.numIter))
    return fitted


def gap(quality: float, reference: float, *, likelihood: bool) -> float:
    return (reference - quality) / abs(reference) if likelihood else (quality - reference) / reference


def report(name: str, lever: str, k: int, *, fitted: list[Start], refs: dict[str, float]) -> list[str]:
    algorithm = LEVERS[lever][0]
    lines = []
    for restarts in (r for r in (1, 3, 5, 10) if r <= len(fitted)):
        first = fitted[:restarts]
        best = min(first, key=lambda s: s.spark_score)
        seconds = sum(s.seconds for s in first)
        iterations = max(s.iterations for s in first)
        if algorithm == "gaussian_mixture":
            gaps = f"mixture {gap(best.quality, refs['mixture'], likelihood=True):+9.4%}"
        elif algorithm == "kmeans":
            gaps = f"kmeans {gap(best.quality, refs['kmeans'], likelihood=False):+9.4%}"
        else:
            gaps = (
                f"bisecting {gap(best.quality, refs['bisecting'], likelihood=False):+9.4%} "
                f"kmeans {gap(best.quality, refs['kmeans'], likelihood=False):+9.4%}"
            )
        lines.append(
            f"{name:<6} {lever:<30} k={k:<2} restarts={restarts:<2} {gaps}  "
            f"{seconds:6.1f} s  iterations<={iterations}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--datasets", default="blobs,rfm")
    parser.add_argument("--levers", default=",".join(LEVERS))
    parser.add_argument("--k", default="2-12", help="a range such as 2-12, or a list such as 3,5,8")
    args = parser.parse_args()
    low, _, high = args.k.partition("-")
    ks = list(range(int(low), int(high) + 1)) if high else [int(k) for k in args.k.split(",")]
    spark = get_spark(SparkConfig(master="local[2]", driver_memory="2g", shuffle_partitions=2))
    spark.sparkContext.setLogLevel("ERROR")
    for name in args.datasets.split(","):
        points = dataset(name, args.rows, SEED)
        vectors = to_vectors(spark, points).cache()
        vectors.count()
        for k in ks:
            started = time.perf_counter()
            refs = references(points, k)
            print(
                f"{name:<6} scikit-learn k={k:<2} kmeans WSS {refs['kmeans']:.2f}  bisecting WSS "
                f"{refs['bisecting']:.2f}  mixture ll {refs['mixture']:.2f}  "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
            for lever in args.levers.split(","):
                algorithm, changes, count = LEVERS[lever]
                params = {"k": k, **BASE[algorithm], **changes}
                fitted = starts(vectors, points, algorithm=algorithm, params=params, count=count)
                print("\n".join(report(name, lever, k, fitted=fitted, refs=refs)), flush=True)
        vectors.unpersist()


if __name__ == "__main__":
    main()
