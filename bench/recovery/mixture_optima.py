"""Why the project's Gaussian mixture recovers planted personas worse than scikit-learn's.

    .venv/bin/python bench/recovery/mixture_optima.py --work-dir DIR --dataset NAME [--k K]

On one dataset of a `rules.py --prepare` work dir (its lake and planted labels), at the planted
k (or `--k`), prints per line: the log-likelihood, EM iterations and ARI against the personas
of
- Spark's GaussianMixture, as the sweep fits it (the regularised vectors), one line per seed,
  at the grid's maxIter and at `--long-max-iter` (is the sweep's fit converged?);
- scikit-learn's GaussianMixture with 1, 5 and 20 K-means-initialised starts (5 is what
  `run.py` calls the best achievable);
- EM started from the planted partition (its personas' weights, means and covariances; noise
  customers excluded from the start, included in the fit): the likelihood optimum nearest the truth.

The scikit-learn and planted-partition lines are repeated on the vectors dequantised (see
`dequantised`): whether exact repeated values are what pulls the likelihood away.

If the planted partition's optimum has the highest log-likelihood, the gap is the optimiser's
(starts, iterations); if another optimum has a higher one, maximum likelihood itself prefers a
partition that is not the personas, and no number of restarts closes the gap.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rules import NOISE, prepare
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from segmentation.config import load_config
from segmentation.models import PREDICTION, build_estimator
from segmentation.spark import get_spark
from segmentation.sweep import regularized
from segmentation.tables import CUSTOMER_ID


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="a rules.py --prepare work dir")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--k", type=int, help="default: the planted k")
    parser.add_argument("--seeds", type=int, default=5, help="Spark fits from the sweep's seed on")
    parser.add_argument("--long-max-iter", type=int, default=1000)
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args()

    folder = args.work_dir / args.dataset
    spark = get_spark(load_config(["local"], args.overrides).spark)
    prepared = prepare(spark, folder, args.overrides)
    labels = pd.read_csv(folder / "raw" / "labels.csv", dtype={CUSTOMER_ID: str}).set_index(CUSTOMER_ID)
    truth = labels["persona"].reindex(prepared.customer_ids).to_numpy()
    member = truth != NOISE
    personas = np.unique(truth[member])
    k = args.k or len(personas)
    points = prepared.points

    def ari(predicted: np.ndarray) -> str:
        return f"{adjusted_rand_score(truth[member], predicted[member]):.3f}"

    def log_likelihood(weights, means, covariances, *, vectors: np.ndarray = points) -> float:
        """Of the vectors the model was fitted to (Spark's: the unregularised ones), one formula
        for every model, Spark's or scikit-learn's."""
        densities = [
            np.log(weight) + multivariate_normal(mean, covariance, allow_singular=True).logpdf(vectors)
            for weight, mean, covariance in zip(weights, means, covariances, strict=True)
        ]
        return float(logsumexp(np.vstack(densities), axis=0).sum())

    def sklearn_line(name: str, model: GaussianMixture, vectors: np.ndarray) -> None:
        total = log_likelihood(model.weights_, model.means_, model.covariances_, vectors=vectors)
        predicted = model.predict(vectors)
        print(f"{name}: log-likelihood {total:.1f}, iterations {model.n_iter_}, ARI {ari(predicted)}")

    grid = prepared.cfg.sweep.grid["gaussian_mixture"]
    params = {name: values[0] for name, values in grid.items() if name != "k"}
    seed, variance = prepared.cfg.sweep.seed, prepared.cfg.sweep.mixture_regularization
    tol = params.get("tol")
    print(f"{args.dataset}: {len(points)} customers, k={k}, Spark tol {tol} on the total log-likelihood")
    for max_iter in (params.get("maxIter", 100), args.long_max_iter):
        for start in range(seed, seed + args.seeds):
            estimator = build_estimator("gaussian_mixture", {**params, "k": k, "maxIter": max_iter}, start)
            model = estimator.fit(regularized(prepared.vectors, start, variance))
            scored = model.transform(prepared.vectors).select(CUSTOMER_ID, PREDICTION).toPandas()
            predicted = scored.set_index(CUSTOMER_ID)[PREDICTION].reindex(prepared.customer_ids).to_numpy()
            gaussians = model.gaussiansDF.collect()  # k rows
            means = [row.mean.toArray() for row in gaussians]
            total = log_likelihood(model.weights, means, [row.cov.toArray() for row in gaussians])
            print(
                f"spark maxIter {max_iter} seed {start}: log-likelihood {total:.1f} "
                f"(Spark's own, on the regularised vectors: {model.summary.logLikelihood:.1f}), "
                f"iterations {model.summary.numIter}, ARI {ari(predicted)}",
                flush=True,
            )
    for label, vectors in (("", points), ("dequantised, ", dequantised(points, seed=seed))):
        for starts in (1, 5, 20):
            model = GaussianMixture(k, n_init=starts, reg_covar=variance, random_state=0)
            sklearn_line(f"scikit-learn {label}n_init {starts}", model.fit(vectors), vectors)
        if k == len(personas):
            groups = [vectors[truth == persona] for persona in personas]
            identity = variance * np.eye(vectors.shape[1])
            sklearn_line(
                f"EM from the planted partition, {label}".rstrip(", "),
                GaussianMixture(
                    k,
                    reg_covar=variance,
                    weights_init=np.array([len(g) for g in groups]) / sum(len(g) for g in groups),
                    means_init=np.vstack([g.mean(axis=0) for g in groups]),
                    precisions_init=np.stack([np.linalg.inv(np.cov(g.T) + identity) for g in groups]),
                ).fit(vectors),
                vectors,
            )


def dequantised(points: np.ndarray, *, seed: int) -> np.ndarray:
    """Each value of a column with at most half as many distinct values as rows (counts, clipped
    bounds) spread uniformly over the half-gaps to its neighbouring distinct values, so no set
    of customers shares one exact value; the classic uniform dequantisation of density models."""
    rng = np.random.default_rng(seed)
    spread = points.copy()
    for column in range(points.shape[1]):
        values = np.unique(points[:, column])
        if len(values) < 2 or len(values) > len(points) / 2:
            continue
        gaps = np.diff(values)
        below, above = np.r_[gaps[0], gaps] / 2, np.r_[gaps, gaps[-1]] / 2
        at = np.searchsorted(values, points[:, column])
        spread[:, column] += rng.uniform(-below[at], above[at])
    return spread


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    main()
