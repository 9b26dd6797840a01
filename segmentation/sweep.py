"""A hyperparameter sweep of clustering fits on shared, preprocessed vectors, and the champion rule.

The preprocessing (clean, assemble, scale, PCA) does not depend on the grid point, so it is
fitted once; every estimator then fits on the same vectors, and every fit is scored in that
same space, so fits of different algorithms compare. The vectors are computed from cached
features and not cached themselves: Spark's estimators persist their own input when it is not
persisted, which is faster than reading a cached DataFrame on every iteration.

Champion rule (configurable in `selection`, docs/champion-rule.md): fits whose smallest
segment holds at least `min_segment_share` of customers are put in the order of
`selection.rule` (`champion_order`), and the first whose stability (adjusted Rand index
between the fit and a refit with another seed on a `stability_sample` hash sample) is at least
`min_stability` is the champion. Stability is measured for the `stability_candidates` leading
fits of that order and further down only until one passes, since no lower fit can win.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
from pyspark.ml import Model
from pyspark.ml.clustering import GaussianMixtureModel
from pyspark.ml.feature import PCA
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from segmentation.config import ALGORITHMS, Algorithm, SelectionConfig, SweepConfig
from segmentation.errors import InputError, SegmentationError
from segmentation.evaluation import ClusterMetrics, adjusted_rand_index, cluster_metrics, hash_sample
from segmentation.models import PREDICTION, PROBABILITY, SCALED, build_estimator
from segmentation.tables import ALGORITHM, CUSTOMER_FEATURES, CUSTOMER_ID, K

# variance added per dimension before a mixture fit: the config's default (scikit-learn's reg_covar default)
MIXTURE_REGULARIZATION = SweepConfig.model_fields["mixture_regularization"].default
_INTERRUPT_GRACE_SECONDS = 30

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridPoint:
    algorithm: Algorithm
    params: dict[str, Any]
    index: int
    varying: tuple[str, ...] = ()  # parameters besides k that take several values in the grid

    @property
    def k(self) -> int:
        return int(self.params[K])

    @property
    def name(self) -> str:
        """Algorithm, k and what else varies, e.g. `kmeans k=6 initMode=random`."""
        extra = "".join(f" {key}={self.params[key]}" for key in self.varying)
        return f"{self.algorithm} k={self.k}{extra}"


@dataclass(frozen=True)
class MixtureMetrics:
    log_likelihood: float
    aic: float
    bic: float
    mean_max_posterior: float
    entropy: float  # classification entropy of the posteriors, summed over the scored customers
    icl: float  # BIC + 2 entropy


@dataclass(frozen=True)
class FitResult:
    """One grid point's kept fit and its metrics, or (`failure` set) why it has none."""

    point: GridPoint
    model: Optional[Model]
    metrics: Optional[ClusterMetrics]
    fit_seconds: float
    mixture: Optional[MixtureMetrics] = None
    failure: Optional[str] = None

    def metric_values(self) -> dict[str, float]:
        """Every metric by its MLflow name; metrics that do not apply are left out."""
        m = self.metrics
        if m is None:
            return {"fit_seconds": float(self.fit_seconds)}
        values = {
            "silhouette": m.silhouette,
            "silhouette_rows": m.silhouette_rows,
            "davies_bouldin": m.davies_bouldin,
            "calinski_harabasz": m.calinski_harabasz,
            "within_ss": m.within_ss,
            "min_segment_share": m.min_segment_share,
            "max_segment_share": m.max_segment_share,
            "size_entropy": m.size_entropy,
            "clusters": m.clusters,
            "rows": m.rows,
            "fit_seconds": self.fit_seconds,
        }
        if self.mixture:
            values |= {
                "log_likelihood": self.mixture.log_likelihood,
                "aic": self.mixture.aic,
                "bic": self.mixture.bic,
                "mean_max_posterior": self.mixture.mean_max_posterior,
                "entropy": self.mixture.entropy,
                "icl": self.mixture.icl,
            }
        return {name: float(value) for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class Verdict:
    eligible: bool
    reason: str
    stability: Optional[float] = None


@dataclass(frozen=True)
class Selection:
    champion: Optional[FitResult]
    verdicts: dict[int, Verdict]  # by grid index
    reasoning: str
    order: tuple[int, ...] = ()  # grid indices in the rule's order, best first (the ranked fits)


def grid_points(grid: dict[str, dict[str, list[Any]]], algorithms: list[Algorithm]) -> list[GridPoint]:
    """Every combination of the listed values, per algorithm, in a stable order."""
    points = []
    for algorithm in sorted(algorithms, key=ALGORITHMS.index):
        names = list(grid[algorithm])
        varying = tuple(name for name in names if name != K and len(grid[algorithm][name]) > 1)
        for values in itertools.product(*(grid[algorithm][name] for name in names)):
            points.append(GridPoint(algorithm, dict(zip(names, values, strict=True)), len(points), varying))
    return points


def check_sweep(
    features: DataFrame, feature_columns: list[str], points: list[GridPoint], *, seed: int
) -> int:
    """Everything that can be wrong before the first fit; returns the number of customers."""
    missing = [column for column in feature_columns if column not in features.columns]
    if missing:
        raise InputError(
            f"table {CUSTOMER_FEATURES.name}: unknown feature column {missing[0]!r} in "
            "model.feature_columns; "
            f"available: {', '.join(sorted(features.columns))}"
        )
    for point in points:
        build_estimator(point.algorithm, point.params, seed)
    customers = features.select(CUSTOMER_ID).distinct().count()
    if customers == 0:
        raise InputError(
            f"table {CUSTOMER_FEATURES.name}: no rows for the as_of_date; run `segment features` first"
        )
    largest = max(points, key=lambda point: point.k)
    if largest.k > customers:
        raise InputError(
            f"sweep.grid.{largest.algorithm}.k: k={largest.k} is more than the {customers} distinct "
            f"customers in table {CUSTOMER_FEATURES.name}"
        )
    return customers


def sweep_fraction(customers: int, max_rows: int) -> float:
    """Share of customers the sweep fits on: all up to `max_rows`, a hash sample above."""
    return min(1.0, max_rows / customers)


Restarts = Union[int, Mapping[str, int]]  # one count for every algorithm, or `sweep.restarts`


def starts_of(restarts: Restarts, algorithm: str) -> int:
    """How many starts `algorithm` gets: `restarts` itself, or its entry in the per-algorithm
    mapping of `sweep.restarts`."""
    return restarts if isinstance(restarts, int) else restarts[algorithm]


@dataclass(frozen=True)
class FitStarts:
    """How every fit of a sweep starts and gives up: `sweep.restarts`, `sweep.fit_timeout_seconds`
    and `sweep.mixture_regularization`, passed to `fit_best` for the sweep's fits, their
    stability refits and the champion's refit alike."""

    restarts: Restarts = 1
    timeout: Optional[float] = None
    regularization: float = MIXTURE_REGULARIZATION

    @classmethod
    def of(cls, sweep: SweepConfig) -> FitStarts:
        return cls(sweep.restarts, sweep.fit_timeout_seconds, sweep.mixture_regularization)


ONE_START = FitStarts()  # one start, no timeout, the default regularisation


def fit_best(vectors: DataFrame, point: GridPoint, *, seed: int, starts: FitStarts) -> Model:
    """The best of the algorithm's starts (`starts_of(starts.restarts, algorithm)`) from seeds seed,
    seed + 1, ...: lowest training cost for the K-means family, highest log-likelihood for the
    mixture. Spark's estimators start once, and a single k-means|| start ends in a poor local
    optimum often enough (about one start in four on bench/fit_levers.py's data, 4-36% more
    within-cluster sum of squares) that K-means needs several starts (`sweep.restarts`) to be
    within 1% of scikit-learn's n_init=10 at every k; tests/test_fit_quality.py holds the kept
    fits to that.

    The mixture is fitted on `regularized` vectors (`sweep.mixture_regularization`). A start that
    does not finish within `starts.timeout` seconds is interrupted and skipped; when none
    finishes, `FitTimeout` is raised."""
    timeout = starts.timeout
    if point.algorithm == "gaussian_mixture":
        vectors = regularized(vectors, seed, starts.regularization)
    restarts = starts_of(starts.restarts, point.algorithm)
    best, best_score = None, math.inf
    for start in range(restarts):
        estimator = build_estimator(point.algorithm, point.params, seed + start)
        try:
            model = fit_within(estimator, vectors, timeout=timeout)
        except FitTimeout as exc:
            log.warning("%s, seed %d: %s", point.name, seed + start, exc)
            continue
        summary = model.summary
        score = -summary.logLikelihood if isinstance(model, GaussianMixtureModel) else summary.trainingCost
        if score < best_score:
            best, best_score = model, score
    if best is None:
        raise FitTimeout(f"no start of {restarts} finished within {timeout:g} s")
    return best


class FitTimeout(SegmentationError):
    """A fit did not finish in time and was interrupted."""


def fit_within(estimator: Any, vectors: DataFrame, *, timeout: Optional[float]) -> Model:
    """`estimator.fit(vectors)`, interrupted after `timeout` seconds.

    Spark's GaussianMixture can loop forever: on a degenerate component, the pure-Java
    LAPACK it falls back to never returns from the eigendecomposition (seen: F2jLAPACK's
    dlascl, which predates LAPACK's check for an infinite scale factor, spinning in dsyev).
    The fit runs in a thread whose Spark jobs carry a tag; past the deadline the tag's jobs
    are interrupted (public `SparkSession.interruptTag`, classic and Connect) and `FitTimeout`
    is raised. Spark cannot stop the spinning task itself; the run goes on without that start.
    """
    if timeout is None:
        return estimator.fit(vectors)
    spark, tag = vectors.sparkSession, f"segmentation-fit-{uuid.uuid4().hex}"
    outcome: dict[str, Any] = {}

    def fit() -> None:
        spark.addTag(tag)
        try:
            outcome["fitted"] = estimator.fit(vectors)
        except Exception as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            spark.removeTag(tag)

    worker = threading.Thread(target=fit, name=tag, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        spark.interruptTag(tag)
        worker.join(_INTERRUPT_GRACE_SECONDS)
        raise FitTimeout(f"did not finish within {timeout:g} s; interrupted")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["fitted"]


def regularized(vectors: DataFrame, seed: int, variance: float = MIXTURE_REGULARIZATION) -> DataFrame:
    """Training vectors for the mixture with uniform noise of the given variance per dimension,
    keyed by a hash of (seed, customer, dimension), so reproducible whatever the partitioning.

    Spark's GaussianMixture has no covariance regularisation (scikit-learn's `reg_covar`).
    Customers that share exact values (one-off buyers: frequency 1, recency equal to tenure;
    values clipped at a winsorising bound) let a component collapse onto a subspace, its
    likelihood diverges, and the NaN covariance then makes LAPACK's eigendecomposition loop
    forever. The noise bounds every covariance eigenvalue away from zero, as `reg_covar` does;
    the fitted model then scores the noiseless vectors.
    """
    half_width = math.sqrt(3 * variance)
    noisy = F.transform(
        vector_to_array(SCALED),
        lambda value, dimension: value
        + (F.pmod(F.xxhash64(F.lit(seed), F.col(CUSTOMER_ID), dimension), F.lit(2_000_001)) / 1_000_000 - 1)
        * half_width,
    )
    return vectors.withColumn(SCALED, array_to_vector(noisy))


def fit_point(
    vectors: DataFrame,
    point: GridPoint,
    *,
    seed: int,
    silhouette_max_rows: int,
    starts: FitStarts = ONE_START,
) -> FitResult:
    """Fit one grid point on the shared vectors and score it in the same space; a point whose
    every start timed out is a result with its `failure`, which the champion rule excludes."""
    started = time.perf_counter()
    try:
        model = fit_best(vectors, point, seed=seed, starts=starts)
    except FitTimeout as exc:
        return FitResult(point, None, None, time.perf_counter() - started, failure=f"fit failed: {exc}")
    fit_seconds = time.perf_counter() - started
    scored = model.transform(vectors)
    metrics = cluster_metrics(
        scored, SCALED, PREDICTION, key=CUSTOMER_ID, silhouette_max_rows=silhouette_max_rows, seed=seed
    )
    mixture = (
        _mixture_metrics(model, scored, metrics.rows) if isinstance(model, GaussianMixtureModel) else None
    )
    return FitResult(point, model, metrics, fit_seconds, mixture)


def fit_all(vectors: DataFrame, points: list[GridPoint], settings: SweepConfig) -> Iterator[FitResult]:
    """Fit every grid point with the sweep's seed, restarts, silhouette sample and fit timeout,
    `settings.parallelism` at a time (Spark runs jobs of several threads concurrently); results
    come in grid order, each as soon as it and those before are done."""
    options = {
        "seed": settings.seed,
        "silhouette_max_rows": settings.silhouette_max_rows,
        "starts": FitStarts.of(settings),
    }
    if settings.parallelism == 1:
        for point in points:
            yield fit_point(vectors, point, **options)
        return
    with ThreadPoolExecutor(max_workers=settings.parallelism, thread_name_prefix="fit") as pool:
        futures = [pool.submit(fit_point, vectors, point, **options) for point in points]
        for future in futures:
            yield future.result()


def stability(
    vectors: DataFrame,
    result: FitResult,
    *,
    seed: int,
    sample_fraction: float,
    starts: FitStarts = ONE_START,
) -> float:
    """Adjusted Rand index between the fit and a refit with other seeds on a hash sample,
    both scoring every customer of `vectors`."""
    other_seed = seed + max(starts_of(starts.restarts, result.point.algorithm), 1)
    sample = hash_sample(vectors, CUSTOMER_ID, sample_fraction, seed=other_seed)
    refit = fit_best(sample, result.point, seed=other_seed, starts=starts)
    labels = [
        model.transform(vectors).select(CUSTOMER_ID, F.col(PREDICTION).alias("cluster"))
        for model in (result.model, refit)
    ]
    return adjusted_rand_index(labels[0], labels[1], key=CUSTOMER_ID, label="cluster")


# What each rule reads; a fit without one of them (a criterion that is undefined for it, such
# as BIC for K-means) is not ranked by that rule.
RULE_CRITERIA: dict[str, tuple[str, ...]] = {
    "silhouette": ("silhouette",),
    "calinski_harabasz": ("calinski_harabasz",),
    "davies_bouldin": ("davies_bouldin",),
    "bic": ("bic",),
    "icl": ("icl",),
    "rank": ("silhouette", "calinski_harabasz", "davies_bouldin"),
    "knee": ("within_ss", "silhouette"),
    "largest_stable_k": ("silhouette",),
}


def champion_order(rule: SelectionConfig, fits: Sequence[Mapping[str, Any]]) -> list[int]:
    """Positions of `fits` in the order of `rule.rule`, best first; each fit is its
    `metric_values()` plus `algorithm` and `k`. Fits that lack a criterion the rule reads are
    left out (`bic` and `icl` rank mixtures only). Ties go to fewer clusters found.

    silhouette, calinski_harabasz, davies_bouldin, bic, icl: the criterion itself (silhouette
    compared at `silhouette_decimals`). rank: the sum of the fit's ranks by silhouette,
    Calinski-Harabasz and Davies-Bouldin (equal values share a rank). knee: per algorithm, the
    fits at the k where the within-cluster sum of squares, scaled to [0, 1], falls furthest
    below the line from its smallest k (1) to its largest (0) come first, then by silhouette.
    largest_stable_k: the most clusters found, then by silhouette.
    """
    name = rule.rule
    needs = RULE_CRITERIA[name]
    positions = [i for i, fit in enumerate(fits) if all(fit.get(key) is not None for key in needs)]
    clusters = {i: fits[i]["clusters"] for i in positions}
    silhouette = {i: round(fits[i]["silhouette"], rule.silhouette_decimals) for i in positions}
    if name == "silhouette":
        score = {i: -silhouette[i] for i in positions}
    elif name == "calinski_harabasz":
        score = {i: -fits[i]["calinski_harabasz"] for i in positions}
    elif name == "davies_bouldin":
        score = {i: fits[i]["davies_bouldin"] for i in positions}
    elif name == "bic":
        score = {i: fits[i]["bic"] for i in positions}
    elif name == "icl":
        score = {i: fits[i]["icl"] for i in positions}
    elif name == "rank":
        score = {i: 0 for i in positions}
        for criterion, sign in (("silhouette", -1), ("calinski_harabasz", -1), ("davies_bouldin", 1)):
            values = {i: sign * fits[i][criterion] for i in positions}
            for i in positions:  # competition ranking: how many fits are strictly better
                score[i] += sum(other < values[i] for other in values.values())
    elif name == "knee":
        knees = _knees(fits, positions)
        score = {i: (i not in knees, -silhouette[i]) for i in positions}
    else:  # largest_stable_k
        score = {i: (-clusters[i], -silhouette[i]) for i in positions}
    return sorted(positions, key=lambda i: (score[i], clusters[i], i))


def _knees(fits: Sequence[Mapping[str, Any]], positions: list[int]) -> set[int]:
    """Per algorithm with at least three distinct k, the fits at the knee of its within-SS
    curve (the lowest within-SS at each k)."""
    knees = set()
    for algorithm in {fits[i][ALGORITHM] for i in positions}:
        mine = [i for i in positions if fits[i][ALGORITHM] == algorithm]
        curve: dict[int, float] = {}
        for i in mine:
            curve[fits[i][K]] = min(curve.get(fits[i][K], math.inf), fits[i]["within_ss"])
        if len(curve) < 3:
            continue
        ks = np.array(sorted(curve), dtype=float)
        within = np.array([curve[k] for k in sorted(curve)])
        x = (ks - ks.min()) / (ks.max() - ks.min())
        spread = within.max() - within.min()
        y = (within - within.min()) / spread if spread > 0 else np.zeros_like(within)
        knee = int(ks[int(np.argmax((1 - x) - y))])
        knees.update(i for i in mine if fits[i][K] == knee)
    return knees


def select_champion(
    results: list[FitResult], rule: SelectionConfig, stability_of: Callable[[FitResult], float]
) -> Selection:
    """Apply the champion rule (module docstring); every fit gets a verdict saying why."""
    verdicts: dict[int, Verdict] = {}
    candidates = []
    for result in results:
        m = result.metrics
        if m is None:
            verdicts[result.point.index] = Verdict(False, result.failure or "no fit")
        elif m.silhouette is None:
            verdicts[result.point.index] = Verdict(False, f"only {m.clusters} cluster: no silhouette")
        elif m.min_segment_share < rule.min_segment_share:
            verdicts[result.point.index] = Verdict(
                False, f"smallest segment {m.min_segment_share:.2%} < {rule.min_segment_share:.2%}"
            )
        else:
            candidates.append(result)
    order = champion_order(rule, [_rule_inputs(result) for result in candidates])
    for position in set(range(len(candidates))) - set(order):
        verdicts[candidates[position].point.index] = Verdict(False, f"not ranked by the {rule.rule} rule")
    ranked = [candidates[position] for position in order]

    champion = None
    for position, result in enumerate(ranked):
        if champion is not None and position >= rule.stability_candidates:
            verdicts[result.point.index] = Verdict(False, "stability not measured: ranked below the champion")
            continue
        try:
            ari = stability_of(result)
        except FitTimeout as exc:
            verdicts[result.point.index] = Verdict(False, f"stability not measured: the refit {exc}")
            continue
        if ari < rule.min_stability:
            verdicts[result.point.index] = Verdict(False, f"stability {ari:.3f} < {rule.min_stability}", ari)
        elif champion is None:
            champion = result
            verdicts[result.point.index] = Verdict(True, "champion", ari)
        else:
            verdicts[result.point.index] = Verdict(True, f"eligible; below the champion by {rule.rule}", ari)
    return Selection(
        champion,
        verdicts,
        _reasoning(champion, results, verdicts, rule=rule),
        tuple(result.point.index for result in ranked),
    )


def _rule_inputs(result: FitResult) -> dict[str, Any]:
    return {ALGORITHM: result.point.algorithm, K: result.point.k, **result.metric_values()}


RULE_TEXT = {
    "silhouette": "highest silhouette (compared at {decimals} decimals)",
    "calinski_harabasz": "highest Calinski-Harabasz index",
    "davies_bouldin": "lowest Davies-Bouldin index",
    "bic": "lowest BIC among the Gaussian mixtures",
    "icl": "lowest ICL (BIC + 2 x classification entropy) among the Gaussian mixtures",
    "rank": "best mean rank by silhouette, Calinski-Harabasz and Davies-Bouldin",
    "knee": "each algorithm's knee of within-cluster SS over k first, then highest silhouette",
    "largest_stable_k": "most clusters, then highest silhouette",
}


def _reasoning(
    champion: Optional[FitResult],
    results: list[FitResult],
    verdicts: dict[int, Verdict],
    *,
    rule: SelectionConfig,
) -> str:
    rule_text = (
        f"rule {rule.rule}: among fits whose smallest segment >= {rule.min_segment_share:.2%} and stability "
        f"(ARI vs a reseeded refit) >= {rule.min_stability}, "
        + RULE_TEXT[rule.rule].format(decimals=rule.silhouette_decimals)
        + ", ties to fewer clusters"
    )
    eligible = sum(verdict.eligible for verdict in verdicts.values())
    if champion is None:
        return f"no champion: none of the {len(results)} fits met the {rule_text}"
    m = champion.metrics
    stable = verdicts[champion.point.index].stability
    return (
        f"champion {champion.point.name} ({m.clusters} clusters): silhouette {m.silhouette:.4f}, "
        + (f"Calinski-Harabasz {m.calinski_harabasz:.1f}, " if m.calinski_harabasz is not None else "")
        + (f"BIC {champion.mixture.bic:.1f}, " if champion.mixture else "")
        + f"smallest segment {m.min_segment_share:.2%}, stability {stable:.3f}; "
        f"{eligible} of {len(results)} fits checked eligible; {rule_text}"
    )


def leaderboard(results: list[FitResult], selection: Selection) -> list[dict[str, Any]]:
    """One row per fit, best first by the champion rule's order; small (one row per grid point)."""
    rows = []
    for result in results:
        verdict = selection.verdicts[result.point.index]
        rows.append(
            {
                ALGORITHM: result.point.algorithm,
                K: result.point.k,
                "grid_index": result.point.index,
                **result.metric_values(),
                "stability": verdict.stability,
                "eligible": verdict.eligible,
                "verdict": verdict.reason,
                "params": ", ".join(f"{key}={value}" for key, value in result.point.params.items()),
            }
        )
    position = {index: place for place, index in enumerate(selection.order)}
    rows.sort(
        key=lambda row: (
            not row["eligible"],
            row["verdict"] != "champion",
            position.get(row["grid_index"], len(position)),
            -row.get("silhouette", -2),
        )
    )
    return rows


def segment_centroids(
    scored: DataFrame, vector_col: str = SCALED
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Per segment: id, size and mean vector (z-scores when standardised); k rows reach the driver."""
    rows = (
        scored.groupBy(PREDICTION)
        .agg(F.count(F.lit(1)).alias("size"), Summarizer.mean(F.col(vector_col)).alias("centroid"))
        .orderBy(PREDICTION)
        .collect()
    )
    ids = [row[PREDICTION] for row in rows]
    sizes = np.array([row["size"] for row in rows], dtype=float)
    return ids, sizes, np.array([row["centroid"].toArray() for row in rows])


def projection_sample(scored: DataFrame, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded hash sample of about `rows` customers projected on the first two principal
    components of the clustering space, with their segment ids."""
    total = scored.count()
    sample = hash_sample(scored, CUSTOMER_ID, min(1.0, rows / max(total, 1)), seed=seed)
    pca = PCA(k=2, inputCol=SCALED, outputCol="_projection").fit(sample)
    points = pca.transform(sample).select(vector_to_array("_projection").alias("xy"), PREDICTION).collect()
    return np.array([point["xy"] for point in points]), np.array([point[PREDICTION] for point in points])


def _mixture_metrics(model: GaussianMixtureModel, scored: DataFrame, rows: int) -> MixtureMetrics:
    """Log-likelihood from the training summary; AIC and BIC count the free parameters of
    full-covariance Gaussians: (k - 1) weights + k d means + k d (d + 1) / 2 covariances.
    ICL (Biernacki, Celeux and Govaert 2000) is BIC plus twice the classification entropy
    -sum_i sum_j p_ij log p_ij of the posteriors: it penalises components that overlap, which
    BIC adds to fit a cluster's shape, so it estimates clusters rather than components."""
    k = model.getK()
    d = len(model.gaussians[0].mean)
    free = (k - 1) + k * d + k * d * (d + 1) // 2
    log_likelihood = float(model.summary.logLikelihood)
    posteriors = vector_to_array(PROBABILITY)
    entropy = F.aggregate(
        posteriors, F.lit(0.0), lambda total, p: total - F.when(p > 0, p * F.log(p)).otherwise(0.0)
    )
    mean_max_posterior, classification_entropy = scored.select(
        F.avg(F.array_max(posteriors)), F.sum(entropy)
    ).first()
    bic = free * float(np.log(rows)) - 2 * log_likelihood
    return MixtureMetrics(
        log_likelihood=log_likelihood,
        aic=2 * free - 2 * log_likelihood,
        bic=bic,
        mean_max_posterior=float(mean_max_posterior),
        entropy=float(classification_entropy),
        icl=bic + 2 * float(classification_entropy),
    )
