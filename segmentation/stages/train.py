"""`segment train`: sweep the clustering grid on silver `customer_features`, track every fit in
MLflow, pick the champion by the documented rule and register it under the alias `champion`.

Features are read once, at one pinned Delta version, and cached for the whole sweep; the
preprocessing is fitted once and shared by every fit. Above `sweep.max_rows` customers the
sweep runs on a seeded hash sample of customers and the champion is refit on all of them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any, Optional

import mlflow
from mlflow import MlflowClient
from pyspark import StorageLevel
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation import plots, tracking
from segmentation.config import Config
from segmentation.errors import InputError
from segmentation.evaluation import cluster_metrics, hash_sample
from segmentation.io import table_ref
from segmentation.models import PREDICTION, SCALED, Preprocessing, build_preprocessing, scoring_model
from segmentation.stages.features import read_customer_features
from segmentation.sweep import (
    FitResult,
    FitStarts,
    GridPoint,
    Selection,
    check_sweep,
    fit_all,
    fit_best,
    grid_points,
    leaderboard,
    projection_sample,
    segment_centroids,
    select_champion,
    stability,
    sweep_fraction,
)
from segmentation.tables import ALGORITHM, CUSTOMER_FEATURES, CUSTOMER_ID, K

log = logging.getLogger(__name__)

_EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class LeaderboardRow:
    """One fit of the sweep, in the champion rule's order."""

    algorithm: str
    k: int
    silhouette: Optional[float]
    min_segment_share: Optional[float]  # None: the fit failed (its verdict says why)
    stability: Optional[float]
    verdict: str
    run_id: str


@dataclass(frozen=True)
class Champion:
    name: str
    algorithm: str
    k: int
    segments: int
    silhouette: float
    min_segment_share: float
    stability: float
    run_id: str


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    alias: str


@dataclass(frozen=True)
class TrainResult:
    as_of_date: dt.date
    features_version: int
    customers: int
    sweep_customers: int
    sweep_run_id: str
    leaderboard: tuple[LeaderboardRow, ...]
    champion: Champion
    registered: RegisteredModel
    reasoning: str


@dataclass(frozen=True)
class _Sweep:
    """What every fit of one sweep shares: the rows, the fitted preprocessing and the vectors."""

    features: DataFrame  # every customer, cached
    customers: int
    fraction: float
    preprocessing: Preprocessing
    prepared: PipelineModel
    vectors: DataFrame
    sweep_customers: int
    points: list[GridPoint]


def run_train(cfg: Config, spark: SparkSession) -> TrainResult:
    at_date, features_version = read_customer_features(spark, cfg)
    sweep = _prepare(cfg, at_date)
    try:
        return _tracked_sweep(cfg, sweep, features_version)
    finally:
        sweep.features.unpersist()


def _prepare(cfg: Config, at_date: DataFrame) -> _Sweep:
    columns, seed = cfg.model.feature_columns, cfg.sweep.seed
    points = grid_points(cfg.sweep.grid, cfg.sweep.algorithms)
    customers = check_sweep(at_date, columns, points, seed=seed)
    features = at_date.select(CUSTOMER_ID, *columns).persist(StorageLevel.MEMORY_AND_DISK)
    fraction = sweep_fraction(customers, cfg.sweep.max_rows)
    sweep_rows = hash_sample(features, CUSTOMER_ID, fraction, seed=seed)
    preprocessing = Preprocessing.from_config(cfg.model)
    prepared = build_preprocessing(sweep_rows, columns, preprocessing).fit(sweep_rows)
    # Not persisted: Spark's estimators cache their own vectors when their input is not
    # cached, and that is faster than re-reading a cached DataFrame every iteration
    # (measured: bisecting K-means 2.1x, K-means 1.6x, mixture 1.3x faster).
    vectors = prepared.transform(sweep_rows).select(CUSTOMER_ID, SCALED)
    sweep_customers = sweep_rows.count()
    log.info("sweep: %d fits on %d of %d customers", len(points), sweep_customers, customers)
    return _Sweep(features, customers, fraction, preprocessing, prepared, vectors, sweep_customers, points)


def _tracked_sweep(cfg: Config, sweep: _Sweep, features_version: int) -> TrainResult:
    as_of_date = cfg.features.as_of_date
    experiment_id = tracking.configure(cfg.mlflow, writes=True)
    with mlflow.start_run(
        run_name=f"sweep as of {as_of_date}",
        tags={
            "stage": "train",
            "as_of_date": str(as_of_date),
            "features_table_version": str(features_version),
            "git_commit": tracking.git_commit(),
            "config_hash": cfg.fingerprint(),
        },
    ) as parent:
        parent_id = parent.info.run_id
        _log_sweep_params(cfg, sweep, features_version)
        results, run_ids = _fit_and_log(cfg, sweep, experiment_id=experiment_id, parent_id=parent_id)
        selection = _select(cfg, sweep, results, run_ids=run_ids)
        board = [{**row, "run_id": run_ids[row["grid_index"]]} for row in leaderboard(results, selection)]
        tracking.log_table(parent_id, board, "leaderboard")
        tracking.log_figure(parent_id, plots.metrics_against_k(board), "plots/metrics_against_k.png")
        mlflow.log_text(selection.reasoning, "champion_rule.txt")
        mlflow.set_tag("champion_rule", selection.reasoning[:5000])
        log.info("%s", selection.reasoning)
        if selection.champion is None:
            raise InputError(
                f"{selection.reasoning}; see the leaderboard of MLflow run {parent_id}, or relax "
                "selection.min_segment_share / selection.min_stability"
            )
        champion = selection.champion
        registered = _register(
            cfg, sweep, selection, run_ids=run_ids, parent_id=parent_id, features_version=features_version
        )
        if cfg.sweep.log_all_models:
            _log_other_models(cfg, sweep, results, run_ids=run_ids, champion=champion)
        mlflow.set_tags(
            {"champion_run_id": run_ids[champion.point.index], "champion_model_version": registered.version}
        )
        mlflow.log_metrics({f"champion_{name}": value for name, value in champion.metric_values().items()})
    m = champion.metrics
    return TrainResult(
        as_of_date=as_of_date,
        features_version=features_version,
        customers=sweep.customers,
        sweep_customers=sweep.sweep_customers,
        sweep_run_id=parent_id,
        leaderboard=tuple(_leaderboard_row(row) for row in board),
        champion=Champion(
            name=champion.point.name,
            algorithm=champion.point.algorithm,
            k=champion.point.k,
            segments=m.clusters,
            silhouette=m.silhouette,
            min_segment_share=m.min_segment_share,
            stability=selection.verdicts[champion.point.index].stability,
            run_id=run_ids[champion.point.index],
        ),
        registered=registered,
        reasoning=selection.reasoning,
    )


def _log_sweep_params(cfg: Config, sweep: _Sweep, features_version: int) -> None:
    mlflow.log_params(
        {
            "as_of_date": str(cfg.features.as_of_date),
            "features_table": str(table_ref(cfg.lake, CUSTOMER_FEATURES)),
            "features_table_version": features_version,
            "feature_columns": tracking.params_text(cfg.model.feature_columns),
            "preprocessing": tracking.params_text(asdict(sweep.preprocessing)),
            "grid": tracking.params_text({a: cfg.sweep.grid[a] for a in cfg.sweep.algorithms}),
            "grid_points": len(sweep.points),
            "seed": cfg.sweep.seed,
            "customers": sweep.customers,
            "sweep_customers": sweep.sweep_customers,
            "sweep_sampled": sweep.fraction < 1.0,
            "selection_rule": tracking.params_text(cfg.selection.model_dump()),
        }
    )
    mlflow.log_dict(cfg.to_dict(), "config.yaml")


def _fit_and_log(
    cfg: Config, sweep: _Sweep, *, experiment_id: str, parent_id: str
) -> tuple[list[FitResult], dict[int, str]]:
    """Every grid point fitted and logged as a child run as soon as it is done."""
    results, run_ids = [], {}
    for result in fit_all(sweep.vectors, sweep.points, cfg.sweep):
        point = result.point
        run_ids[point.index] = tracking.log_fit(
            experiment_id=experiment_id,
            parent_run_id=parent_id,
            name=point.name,
            tags={
                ALGORITHM: point.algorithm,
                K: str(point.k),
                "clusters": str(result.metrics.clusters) if result.metrics else "-",
                "grid_index": str(point.index),
            },
            params={ALGORITHM: point.algorithm, "seed": cfg.sweep.seed, **point.params},
            metrics=result.metric_values(),
        )
        results.append(result)
        if result.metrics is None:
            log.warning("%-28s %s  %.1f s", point.name, result.failure, result.fit_seconds)
            continue
        log.info(
            "%-28s silhouette %s  smallest segment %.2f%%  %.1f s",
            point.name,
            f"{result.metrics.silhouette:.4f}" if result.metrics.silhouette is not None else "-",
            100 * result.metrics.min_segment_share,
            result.fit_seconds,
        )
    return results, run_ids


def _select(cfg: Config, sweep: _Sweep, results: list[FitResult], *, run_ids: dict[int, str]) -> Selection:
    """The champion rule, with stability measured where it decides; verdicts go to each fit's run."""
    selection = select_champion(
        results,
        cfg.selection,
        lambda result: stability(
            sweep.vectors,
            result,
            seed=cfg.sweep.seed,
            sample_fraction=cfg.sweep.stability_sample,
            starts=FitStarts.of(cfg.sweep),
        ),
    )
    client = MlflowClient()
    for index, verdict in selection.verdicts.items():
        if verdict.stability is not None:
            client.log_metric(run_ids[index], "stability", verdict.stability)
        client.set_tag(run_ids[index], "eligible", str(verdict.eligible).lower())
        client.set_tag(run_ids[index], "verdict", verdict.reason)
    return selection


def _register(
    cfg: Config,
    sweep: _Sweep,
    selection: Selection,
    *,
    run_ids: dict[int, str],
    parent_id: str,
    features_version: int,
) -> RegisteredModel:
    """The champion's scoring model (refit on everyone after a sampled sweep), its plots, and
    its registration under the alias."""
    champion = selection.champion
    if sweep.fraction < 1.0:
        model = _refit_on_everyone(cfg, sweep, champion)
    else:
        model = scoring_model(sweep.prepared, champion.model)
    scored = model.transform(sweep.features)
    _log_champion_plots(cfg, parent_id, scored, name=champion.point.name)
    columns = cfg.model.feature_columns
    example = sweep.features.select(*[F.col(c).cast("double") for c in columns]).limit(_EXAMPLE_ROWS)
    version = tracking.register_champion(
        cfg.model,
        run_id=run_ids[champion.point.index],
        model=model,
        example=example,
        reasoning=selection.reasoning,
        tags={
            "as_of_date": str(cfg.features.as_of_date),
            "features_table_version": str(features_version),
            ALGORITHM: champion.point.algorithm,
            K: str(champion.point.k),
            "clusters": str(champion.metrics.clusters),
            "sweep_run_id": parent_id,
        },
    )
    return RegisteredModel(cfg.model.registered_name, version, cfg.model.alias)


def _refit_on_everyone(cfg: Config, sweep: _Sweep, champion: FitResult) -> PipelineModel:
    """After a sampled sweep: the champion's grid point refit, preprocessing included, on every
    customer with the same seeds and restarts; its metrics go to the parent run."""
    seed, features = cfg.sweep.seed, sweep.features
    prepared = build_preprocessing(features, cfg.model.feature_columns, sweep.preprocessing).fit(features)
    vectors = prepared.transform(features).select(CUSTOMER_ID, SCALED)
    clustering = fit_best(vectors, champion.point, seed=seed, starts=FitStarts.of(cfg.sweep))
    refit = cluster_metrics(
        clustering.transform(vectors),
        SCALED,
        PREDICTION,
        key=CUSTOMER_ID,
        silhouette_max_rows=cfg.sweep.silhouette_max_rows,
        seed=seed,
    )
    mlflow.log_metrics(
        {f"champion_refit_{name}": float(value) for name, value in asdict(refit).items() if value is not None}
    )
    return scoring_model(prepared, clustering)


def _log_other_models(
    cfg: Config, sweep: _Sweep, results: list[FitResult], *, run_ids: dict[int, str], champion: FitResult
) -> None:
    columns = cfg.model.feature_columns
    example = sweep.features.select(*[F.col(c).cast("double") for c in columns]).limit(_EXAMPLE_ROWS)
    for result in results:
        if result is not champion:
            tracking.log_spark_model(
                run_ids[result.point.index], scoring_model(sweep.prepared, result.model), example
            )


def _leaderboard_row(row: dict[str, Any]) -> LeaderboardRow:
    return LeaderboardRow(
        algorithm=row[ALGORITHM],
        k=row[K],
        silhouette=row.get("silhouette"),
        min_segment_share=row.get("min_segment_share"),
        stability=row["stability"],
        verdict=row["verdict"],
        run_id=row["run_id"],
    )


def _log_champion_plots(cfg: Config, run_id: str, scored: DataFrame, *, name: str) -> None:
    segment_ids, sizes, centroids = segment_centroids(scored)
    population_mean = (centroids * sizes[:, None]).sum(axis=0) / sizes.sum()
    tracking.log_figure(
        run_id,
        plots.segment_sizes(segment_ids, sizes, f"segment sizes: {name}"),
        "plots/champion_segment_sizes.png",
    )
    tracking.log_figure(
        run_id,
        plots.profile_heatmap(
            [f"segment {segment}" for segment in segment_ids],
            centroids - population_mean,
            cfg.model.feature_columns,
            title=f"segment profiles (z-scores): {name}",
        ),
        "plots/champion_profile_heatmap.png",
    )
    points, segments = projection_sample(scored, cfg.sweep.projection_rows, cfg.sweep.seed)
    tracking.log_figure(
        run_id,
        plots.projection(points, segments, f"2-D projection of a seeded sample: {name}"),
        "plots/champion_projection.png",
    )
