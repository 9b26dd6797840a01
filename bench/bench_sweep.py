"""The sweep (`segment train`) against a naive sweep, same data, same grid, same session, same run.

Naive: every grid point fits its whole pipeline (quantile bounds, scaler, estimator) from
scratch on all customers read from Delta, nothing cached, every fit scored on all customers
and every model logged to MLflow; stability refits from scratch too. Both apply the same
champion rule with the same restarts, so they can be asked whether they chose the same fit.

    .venv/bin/python bench/bench_sweep.py --customers 1000000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import mlflow
from bench_data import dataset_overrides, ensure_ingested
from mlflow import MlflowClient
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.build_features import run_features
from jobs.train import run_train
from segmentation import tracking
from segmentation.config import ALGORITHMS, Config, load_config
from segmentation.evaluation import adjusted_rand_index, cluster_metrics, hash_sample
from segmentation.features import AS_OF_DATE, CUSTOMER_FEATURES, CUSTOMER_ID
from segmentation.io import read_table, table_exists, table_ref
from segmentation.models import PREDICTION, SCALED, Preprocessing, build_pipeline
from segmentation.spark import get_spark
from segmentation.sweep import FitResult, GridPoint, grid_points, select_champion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--k-max", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--prepare-only", action="store_true", help="build the cached dataset and stop")
    args = parser.parse_args()

    k_values = list(range(2, args.k_max + 1))
    mlflow_root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    overrides = [
        *dataset_overrides(args.customers),
        *[f"sweep.grid.{algorithm}.k={k_values}" for algorithm in ALGORITHMS],
        *args.overrides,
    ]

    def configured(name: str) -> Config:
        """The bench config with MLflow in a fresh store of its own."""
        return load_config(
            None,
            [
                *overrides,
                f"mlflow.tracking_uri=sqlite:///{mlflow_root / name}.db",
                f"mlflow.artifact_location={mlflow_root / name}-artifacts",
            ],
        )

    cfg = configured("sweep")
    spark = get_spark(cfg.spark)
    ensure_ingested(cfg, spark, args.customers)
    if not table_exists(spark, table_ref(cfg.lake, CUSTOMER_FEATURES)):
        run_features(cfg, spark)
    if args.prepare_only:
        return

    started = time.perf_counter()
    printed = run_train(cfg, spark)
    sweep_seconds = time.perf_counter() - started
    sweep_champion = next(line for line in printed.splitlines() if line.startswith("champion:"))
    print(printed, flush=True)

    started = time.perf_counter()
    naive_champion = naive_sweep(configured("naive"), spark)
    naive_seconds = time.perf_counter() - started

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    points = grid_points(cfg.sweep.grid, cfg.sweep.algorithms)
    print(
        f"customers {args.customers:,}  grid {len(points)} fits (k {k_values[0]}..{k_values[-1]}, "
        f"{', '.join(cfg.sweep.algorithms)})  restarts {cfg.sweep.restarts}  "
        f"cores {spark.sparkContext.defaultParallelism}  sweep.max_rows {cfg.sweep.max_rows:,}"
    )
    print(f"sweep  {sweep_seconds:8.1f} s   {sweep_champion}")
    print(f"naive  {naive_seconds:8.1f} s   champion: {naive_champion}")
    print(f"ratio  sweep / naive = {sweep_seconds / naive_seconds:.3f}  (target <= 0.3)")
    same = sweep_champion.startswith(f"champion: {naive_champion},")
    print(f"same champion: {'yes' if same else 'no'}")
    print(f"driver python peak RSS {peak_mb:.0f} MB")


def naive_sweep(cfg: Config, spark) -> str:
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
        for start in range(restarts):
            model = build_pipeline(
                rows, columns, preprocessing, point.algorithm, point.params, first_seed + start
            ).fit(rows)
            summary = model.stages[-2].summary
            cost = -summary.logLikelihood if point.algorithm == "gaussian_mixture" else summary.trainingCost
            if cost < best_cost:
                best, best_cost = model, cost
        return best

    experiment_id = tracking.configure(cfg.mlflow)
    client = MlflowClient()
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
                CUSTOMER_ID,
                cfg.sweep.silhouette_max_rows,
                seed,
            )
            result = FitResult(point, model, metrics, fit_seconds)
            run_id = tracking.log_fit(client, experiment_id, parent.info.run_id, result, seed)
            tracking.log_spark_model(run_id, model, example)
            results.append(result)

        def stability_from_scratch(result: FitResult) -> float:
            other_seed = seed + restarts
            sample = hash_sample(features(), CUSTOMER_ID, cfg.sweep.stability_sample, other_seed)
            refit = fit_from_scratch(sample, result.point, other_seed)
            labels = [
                model.transform(features()).select(CUSTOMER_ID, F.col(PREDICTION).alias("cluster"))
                for model in (result.model, refit)
            ]
            return adjusted_rand_index(labels[0], labels[1])

        selection = select_champion(results, cfg.selection, stability_from_scratch)
    return selection.champion.point.name if selection.champion else "none"


if __name__ == "__main__":
    main()
