"""What each stage is measured against: the least Spark work that produces its output.

* features: read bronze `transactions` plus one bare `groupBy(customer_id).agg(count, sum, max)`;
* sweep: a naive sweep: every grid point fits its whole pipeline (quantile bounds, scaler,
  estimator) from scratch on all customers read from Delta, nothing cached, every fit scored
  on all customers and its model logged; stability refits from scratch; the same champion rule;
* assignment: load the registered model, `transform` the customer features, plain Delta append
  of (customer_id, model_cluster_id).
"""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from segmentation import tracking
from segmentation.config import Config
from segmentation.evaluation import adjusted_rand_index, cluster_metrics, hash_sample
from segmentation.io import read_table, table_ref
from segmentation.models import PREDICTION, SCALED, Preprocessing, build_pipeline
from segmentation.sweep import FitResult, GridPoint, grid_points, select_champion, starts_of
from segmentation.tables import (
    ALGORITHM,
    AMOUNT,
    AS_OF_DATE,
    CUSTOMER_FEATURES,
    CUSTOMER_ID,
    ORDER_TS,
    TRANSACTIONS,
    K,
)


def features_floor(cfg: Config, spark: SparkSession) -> None:
    read_table(spark, table_ref(cfg.lake, TRANSACTIONS)).groupBy(CUSTOMER_ID).agg(
        F.count(F.lit(1)), F.sum(AMOUNT), F.max(ORDER_TS)
    ).write.format("noop").mode("overwrite").save()


def assignment_floor(cfg: Config, spark: SparkSession, path: Path) -> None:
    tracking.configure(cfg.mlflow)
    model, _ = tracking.load_model(cfg.model, cfg.assign)
    features = read_table(spark, table_ref(cfg.lake, CUSTOMER_FEATURES)).filter(
        F.col(AS_OF_DATE) == F.lit(cfg.features.as_of_date)
    )
    model.transform(features).select(CUSTOMER_ID, PREDICTION).write.format("delta").mode("append").save(
        str(path)
    )


def naive_sweep(cfg: Config, spark: SparkSession) -> str:
    """Every fit from scratch on all rows, uncached; every model logged; the same rule."""
    columns = cfg.model.feature_columns
    preprocessing = Preprocessing.from_config(cfg.model)
    seed, restarts = cfg.sweep.seed, cfg.sweep.restarts

    def features() -> DataFrame:
        return (
            read_table(spark, table_ref(cfg.lake, CUSTOMER_FEATURES))
            .filter(F.col(AS_OF_DATE) == F.lit(cfg.features.as_of_date))
            .select(CUSTOMER_ID, *columns)
        )

    def fit_from_scratch(rows: DataFrame, point: GridPoint, first_seed: int) -> PipelineModel:
        best, best_cost = None, float("inf")
        for start in range(starts_of(restarts, point.algorithm)):
            model = build_pipeline(
                rows,
                columns,
                preprocessing,
                algorithm=point.algorithm,
                params=point.params,
                seed=first_seed + start,
            ).fit(rows)
            summary = model.stages[-2].summary
            cost = -summary.logLikelihood if point.algorithm == "gaussian_mixture" else summary.trainingCost
            if cost < best_cost:
                best, best_cost = model, cost
        return best

    experiment_id = tracking.configure(cfg.mlflow)
    example = features().select(*[F.col(c).cast("double") for c in columns]).limit(5)
    results = []
    with mlflow.start_run(run_name="naive sweep") as parent:
        for point in grid_points(cfg.sweep.grid, cfg.sweep.algorithms):
            started = time.perf_counter()
            model = fit_from_scratch(features(), point, seed)
            fit_seconds = time.perf_counter() - started
            metrics = cluster_metrics(
                model.transform(features()),
                SCALED,
                PREDICTION,
                key=CUSTOMER_ID,
                silhouette_max_rows=cfg.sweep.silhouette_max_rows,
                seed=seed,
            )
            result = FitResult(point, model, metrics, fit_seconds)
            run_id = tracking.log_fit(
                experiment_id=experiment_id,
                parent_run_id=parent.info.run_id,
                name=point.name,
                tags={
                    ALGORITHM: point.algorithm,
                    K: str(point.k),
                    "clusters": str(metrics.clusters),
                    "grid_index": str(point.index),
                },
                params={ALGORITHM: point.algorithm, "seed": seed, **point.params},
                metrics=result.metric_values(),
            )
            tracking.log_spark_model(run_id, model, example)
            results.append(result)

        def stability_from_scratch(result: FitResult) -> float:
            other_seed = seed + starts_of(restarts, result.point.algorithm)
            sample = hash_sample(features(), CUSTOMER_ID, cfg.sweep.stability_sample, seed=other_seed)
            refit = fit_from_scratch(sample, result.point, other_seed)
            labels = [
                model.transform(features()).select(CUSTOMER_ID, F.col(PREDICTION).alias("cluster"))
                for model in (result.model, refit)
            ]
            return adjusted_rand_index(labels[0], labels[1], key=CUSTOMER_ID, label="cluster")

        selection = select_champion(results, cfg.selection, stability_from_scratch)
    return selection.champion.point.name if selection.champion else "none"
