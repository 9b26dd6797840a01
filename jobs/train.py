"""`segment train`: sweep the clustering grid on silver `customer_features`, track every fit in
MLflow, pick the champion by the documented rule and register it under the alias `champion`.

Features are read once, at one pinned Delta version, and cached for the whole sweep; the
preprocessing is fitted once and shared by every fit. Above `sweep.max_rows` customers the
sweep runs on a seeded hash sample of customers and the champion is refit on all of them.
"""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.common import log, stage_main
from segmentation import plots, tracking
from segmentation.config import Config
from segmentation.errors import InputError
from segmentation.evaluation import cluster_metrics, hash_sample
from segmentation.features import AS_OF_DATE, CUSTOMER_FEATURES, CUSTOMER_ID
from segmentation.io import read_table, table_exists, table_ref, table_version
from segmentation.models import (
    PREDICTION,
    SCALED,
    Preprocessing,
    build_preprocessing,
    scoring_model,
)
from segmentation.sweep import (
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

_EXAMPLE_ROWS = 5


def run_train(cfg: Config, spark: SparkSession) -> str:
    as_of_date = cfg.features.as_of_date
    features_ref = table_ref(cfg.lake, CUSTOMER_FEATURES)
    if not table_exists(spark, features_ref):
        raise InputError(
            f"table {CUSTOMER_FEATURES} does not exist at {features_ref}; run `segment features` first"
        )
    features_version = table_version(spark, features_ref)
    columns = cfg.model.feature_columns
    seed = cfg.sweep.seed
    points = grid_points(cfg.sweep.grid, cfg.sweep.algorithms)
    at_date = read_table(spark, features_ref, features_version).filter(F.col(AS_OF_DATE) == F.lit(as_of_date))
    customers = check_sweep(at_date, columns, points, seed)
    features = at_date.select(CUSTOMER_ID, *columns).persist(StorageLevel.MEMORY_AND_DISK)

    try:
        fraction = sweep_fraction(customers, cfg.sweep.max_rows)
        sweep_rows = hash_sample(features, CUSTOMER_ID, fraction, seed)
        preprocessing = Preprocessing.from_config(cfg.model)
        prepared = build_preprocessing(sweep_rows, columns, preprocessing).fit(sweep_rows)
        # Not persisted: Spark's estimators cache their own vectors when their input is not
        # cached, and that is faster than re-reading a cached DataFrame every iteration
        # (measured: bisecting K-means 2.1x, K-means 1.6x, mixture 1.3x faster).
        vectors = prepared.transform(sweep_rows).select(CUSTOMER_ID, SCALED)
        sweep_customers = sweep_rows.count()
        log.info("sweep: %d fits on %d of %d customers", len(points), sweep_customers, customers)

        experiment_id = tracking.configure(cfg.mlflow)
        client = MlflowClient()
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
            mlflow.log_params(
                {
                    "as_of_date": str(as_of_date),
                    "features_table": str(features_ref),
                    "features_table_version": features_version,
                    "feature_columns": tracking.params_text(columns),
                    "preprocessing": tracking.params_text(preprocessing.__dict__),
                    "grid": tracking.params_text({a: cfg.sweep.grid[a] for a in cfg.sweep.algorithms}),
                    "grid_points": len(points),
                    "seed": seed,
                    "customers": customers,
                    "sweep_customers": sweep_customers,
                    "sweep_sampled": fraction < 1.0,
                    "selection_rule": tracking.params_text(cfg.selection.__dict__),
                }
            )
            mlflow.log_dict(cfg.to_dict(), "config.yaml")

            results, run_ids = [], {}
            for result in fit_all(
                vectors,
                points,
                seed,
                cfg.sweep.silhouette_max_rows,
                cfg.sweep.restarts,
                cfg.sweep.parallelism,
            ):
                run_ids[result.point.index] = tracking.log_fit(client, experiment_id, parent_id, result, seed)
                results.append(result)
                log.info(
                    "%-28s silhouette %s  smallest segment %.2f%%  %.1f s",
                    result.point.name,
                    f"{result.metrics.silhouette:.4f}" if result.metrics.silhouette is not None else "-",
                    100 * result.metrics.min_segment_share,
                    result.fit_seconds,
                )

            selection = select_champion(
                results,
                cfg.selection,
                lambda result: stability(
                    vectors, result, seed, cfg.sweep.stability_sample, cfg.sweep.restarts
                ),
            )
            for index, verdict in selection.verdicts.items():
                if verdict.stability is not None:
                    client.log_metric(run_ids[index], "stability", verdict.stability)
                client.set_tag(run_ids[index], "eligible", str(verdict.eligible).lower())
                client.set_tag(run_ids[index], "verdict", verdict.reason)
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
            champion_run_id = run_ids[champion.point.index]
            if fraction < 1.0:
                model, scored = _refit_on_everyone(cfg, features, preprocessing, champion)
            else:
                model = scoring_model(prepared, champion.model)
                scored = model.transform(features)
            _log_champion_plots(
                parent_id, scored, columns, champion.point.name, cfg.sweep.projection_rows, seed
            )

            example = features.select(*[F.col(c).cast("double") for c in columns]).limit(_EXAMPLE_ROWS)
            version = tracking.log_spark_model(champion_run_id, model, example, cfg.model.registered_name)
            tracking.crown(
                cfg.model,
                version,
                selection.reasoning,
                {
                    "as_of_date": str(as_of_date),
                    "features_table_version": str(features_version),
                    "algorithm": champion.point.algorithm,
                    "k": str(champion.point.k),
                    "clusters": str(champion.metrics.clusters),
                    "sweep_run_id": parent_id,
                },
            )
            if cfg.sweep.log_all_models:
                for result in results:
                    if result is not champion:
                        tracking.log_spark_model(
                            run_ids[result.point.index], scoring_model(prepared, result.model), example
                        )
            mlflow.set_tags({"champion_run_id": champion_run_id, "champion_model_version": version})
            mlflow.log_metrics(
                {f"champion_{name}": value for name, value in champion.metric_values().items()}
            )
    finally:
        features.unpersist()

    m = champion.metrics
    return "\n".join(
        [
            f"sweep of {len(points)} fits on {sweep_customers:,} of {customers:,} customers "
            f"(features as of {as_of_date}, table version {features_version}) -> MLflow run {parent_id}",
            *_leaderboard_lines(board),
            f"champion: {champion.point.name}, {m.clusters} segments, silhouette {m.silhouette:.4f}, "
            f"smallest segment {m.min_segment_share:.2%}, stability "
            f"{selection.verdicts[champion.point.index].stability:.3f}",
            f"registered: {cfg.model.registered_name} version {version}, alias '{cfg.model.alias}'",
        ]
    )


def _refit_on_everyone(cfg: Config, features, preprocessing: Preprocessing, champion):
    """After a sampled sweep: the champion's grid point refit, preprocessing included, on every
    customer with the same seeds and restarts; its metrics go to the parent run."""
    seed = cfg.sweep.seed
    prepared = build_preprocessing(features, cfg.model.feature_columns, preprocessing).fit(features)
    vectors = prepared.transform(features).select(CUSTOMER_ID, SCALED)
    clustering = fit_best(vectors, champion.point, seed, cfg.sweep.restarts)
    refit = cluster_metrics(
        clustering.transform(vectors), SCALED, PREDICTION, CUSTOMER_ID, cfg.sweep.silhouette_max_rows, seed
    )
    mlflow.log_metrics(
        {
            f"champion_refit_{name}": float(value)
            for name, value in refit.__dict__.items()
            if value is not None
        }
    )
    model = scoring_model(prepared, clustering)
    return model, model.transform(features)


def _leaderboard_lines(board: list[dict], top: int = 5) -> list[str]:
    lines = [f"  {'fit':<28} {'silhouette':>10} {'smallest':>9} {'stability':>9}  verdict"]
    for row in board[:top]:
        stability_text = f"{row['stability']:.3f}" if row["stability"] is not None else "-"
        silhouette = row.get("silhouette")
        lines.append(
            f"  {row['algorithm'] + ' k=' + str(row['k']):<28} "
            f"{silhouette if silhouette is None else f'{silhouette:.4f}':>10} "
            f"{row['min_segment_share']:>9.2%} {stability_text:>9}  {row['verdict']}"
        )
    return lines


def _log_champion_plots(run_id, scored, columns, name, projection_rows, seed) -> None:
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
            columns,
            f"segment profiles (z-scores): {name}",
        ),
        "plots/champion_profile_heatmap.png",
    )
    points, segments = projection_sample(scored, projection_rows, seed)
    tracking.log_figure(
        run_id,
        plots.projection(points, segments, f"2-D projection of a seeded sample: {name}"),
        "plots/champion_projection.png",
    )


def main() -> None:
    stage_main("train")


if __name__ == "__main__":
    main()
