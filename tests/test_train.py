"""`segment train` on generated customers with planted personas, checked through MlflowClient."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import mlflow
import pytest
from conftest import config_under
from mlflow import MlflowClient
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from segmentation import tracking
from segmentation.errors import InputError
from segmentation.evaluation import adjusted_rand_index
from segmentation.io import read_table, table_ref
from segmentation.stages.features import run_features
from segmentation.stages.generate import run_generate
from segmentation.stages.ingest import run_ingest
from segmentation.stages.train import RegisteredModel, run_train
from segmentation.sweep import grid_points
from segmentation.tables import CUSTOMER_FEATURES, CUSTOMER_PERSONAS, MODEL_CLUSTER_ID

CUSTOMERS = 3000
K_VALUES = "[2, 3, 4, 5, 6, 7, 8]"
SWEEP_METRICS = (
    "silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "within_ss",
    "min_segment_share",
    "max_segment_share",
    "size_entropy",
    "fit_seconds",
)
SMALL_GRID = (
    "sweep.algorithms=[kmeans]",
    "sweep.grid.kmeans.k=[5, 6, 7]",
)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """Generated raw input, ingested, with features as of the default date."""
    root = tmp_path_factory.mktemp("train")
    cfg = config_under(root, f"generate.customers={CUSTOMERS}")
    for stage in (run_generate, run_ingest, run_features):
        stage(cfg, spark)
    return root


def sweep_config(root, *overrides):
    return config_under(
        root,
        f"sweep.grid.kmeans.k={K_VALUES}",
        f"sweep.grid.bisecting_kmeans.k={K_VALUES}",
        f"sweep.grid.gaussian_mixture.k={K_VALUES}",
        *overrides,
    )


def champion_assignments(spark, cfg, version=None):
    """Every customer scored by a registered version, or by the alias when none is given."""
    reference = f"/{version}" if version else f"@{cfg.model.alias}"
    model = mlflow.spark.load_model(f"models:/{cfg.model.registered_name}{reference}")
    features = read_table(spark, table_ref(cfg.lake, CUSTOMER_FEATURES))
    return model.transform(features).select("customer_id", F.col(MODEL_CLUSTER_ID).alias("cluster"))


def test_sweep_recovers_the_planted_personas_and_logs_one_child_run_per_fit(spark, lake):
    cfg = sweep_config(lake, "sweep.parallelism=2")
    trained = run_train(cfg, spark)

    client = MlflowClient()
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    points = grid_points(cfg.sweep.grid, cfg.sweep.algorithms)
    assert len(children) == len(points) == 21
    assert {(run.data.tags["algorithm"], int(run.data.params["k"])) for run in children} == {
        (point.algorithm, point.k) for point in points
    }
    for child in children:
        for metric in SWEEP_METRICS:
            assert metric in child.data.metrics, (child.info.run_name, metric)
        assert child.data.tags["verdict"]
        if child.data.tags["algorithm"] == "gaussian_mixture":
            assert {"log_likelihood", "aic", "bic", "mean_max_posterior", "entropy", "icl"} <= set(
                child.data.metrics
            )
    assert parent.data.params["features_table_version"] == "1"  # 0: created, 1: written
    assert parent.data.params["as_of_date"] == "2025-12-31"
    assert parent.data.tags["git_commit"]
    artifacts = {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.csv", "leaderboard.html", "config.yaml", "champion_rule.txt", "plots"} <= artifacts
    plots = {artifact.path for artifact in client.list_artifacts(parent.info.run_id, "plots")}
    assert {
        "plots/metrics_against_k.png",
        "plots/champion_segment_sizes.png",
        "plots/champion_profile_heatmap.png",
        "plots/champion_projection.png",
    } <= plots

    version = client.get_model_version_by_alias(cfg.model.registered_name, "champion")
    champion_run = client.get_run(version.run_id)
    assert champion_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert champion_run.data.tags["verdict"] == "champion"
    assert champion_run.data.metrics["stability"] >= cfg.selection.min_stability
    assert champion_run.data.metrics["min_segment_share"] >= cfg.selection.min_segment_share
    assert parent.data.tags["champion_run_id"] == champion_run.info.run_id
    eligible_silhouettes = [
        run.data.metrics["silhouette"] for run in children if run.data.tags["eligible"] == "true"
    ]
    assert round(champion_run.data.metrics["silhouette"], 3) == round(max(eligible_silhouettes), 3)
    assert trained.sweep_run_id == parent.info.run_id
    assert trained.champion.run_id == champion_run.info.run_id
    assert trained.champion.name == champion_run.info.run_name
    assert trained.registered == RegisteredModel(cfg.model.registered_name, str(version.version), "champion")
    assert trained.leaderboard[0].run_id == champion_run.info.run_id
    assert {row.run_id for row in trained.leaderboard} == {run.info.run_id for run in children}
    # The champion's requirements are given (tracking.model_requirements()), not inferred: they
    # must be what MLflow's own inference finds for it.
    model_dir = Path(mlflow.artifacts.download_artifacts(f"models:/{cfg.model.registered_name}@champion"))
    inferred = mlflow.models.infer_pip_requirements(str(model_dir), "spark", fallback=[])
    assert set((model_dir / "requirements.txt").read_text().split()) == {
        *inferred,
        *mlflow.spark.get_default_pip_requirements(),
        f"mlflow=={mlflow.__version__}",
    }

    personas = read_table(spark, table_ref(cfg.lake, CUSTOMER_PERSONAS)).withColumnRenamed(
        "persona", "cluster"
    )
    ari = adjusted_rand_index(champion_assignments(spark, cfg), personas)
    print(f"champion {champion_run.info.run_name}: ARI against planted personas {ari:.4f}")
    assert ari >= 0.8


def _without_runs(board):
    return [replace(row, run_id="") for row in board]


def test_same_data_and_seed_give_identical_assignments_with_a_sampled_sweep(spark, lake, tmp_path):
    cfg = config_under(
        lake,
        *SMALL_GRID,
        "sweep.max_rows=2000",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db",
        f"mlflow.artifact_location={tmp_path}/mlruns",
    )
    first = run_train(cfg, spark)
    second = run_train(cfg, spark)
    # Same leaderboard and champion; only the runs and the registered version differ.
    assert _without_runs(first.leaderboard) == _without_runs(second.leaderboard)
    assert replace(first.champion, run_id="") == replace(second.champion, run_id="")
    assert (first.registered.version, second.registered.version) == ("1", "2")

    client = MlflowClient()
    champion_run = client.get_run(client.get_model_version(cfg.model.registered_name, "1").run_id)
    parent = client.get_run(champion_run.data.tags["mlflow.parentRunId"])
    customers = read_table(spark, table_ref(cfg.lake, CUSTOMER_FEATURES)).count()
    assert parent.data.params["sweep_sampled"] == "True"
    assert 1800 <= int(parent.data.params["sweep_customers"]) <= 2200  # a hash sample of max_rows
    assert parent.data.metrics["champion_refit_rows"] == customers  # refit on every customer
    assert str(client.get_model_version_by_alias(cfg.model.registered_name, "champion").version) == "2"
    assertDataFrameEqual(champion_assignments(spark, cfg, "1"), champion_assignments(spark, cfg, "2"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["sweep.grid.kmeans.k=[5, 4000]"],
            r"sweep.grid.kmeans.k: k=4000 is more than the \d+ distinct customers",
        ),
        (["features.as_of_date=2024-01-31"], r"table customer_features: no rows for the as_of_date"),
        (
            ["model.feature_columns=[recency_days, frequncy]", "model.log1p_columns=[]"],
            r"unknown feature column 'frequncy'",
        ),
        (["sweep.grid.kmeans.maxIterations=[10]"], r"kmeans has no parameter 'maxIterations'"),
    ],
)
def test_bad_settings_stop_before_any_fit(spark, lake, tmp_path, overrides, message):
    cfg = config_under(lake, *SMALL_GRID, *overrides, f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db")
    with pytest.raises(InputError, match=message):
        run_train(cfg, spark)
    assert not (tmp_path / "m.db").exists()  # stopped before MLflow was even opened


def test_child_processes_get_the_users_mlflow_variables_not_the_ones_mlflow_wrote(monkeypatch):
    # set_tracking_uri writes MLFLOW_TRACKING_URI into os.environ; a child process (spark-submit,
    # a notebook) would take it for the user's choice, which wins over its own config.
    monkeypatch.setattr(tracking, "_USER_URIS", {"MLFLOW_TRACKING_URI": None, "MLFLOW_REGISTRY_URI": "uc"})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///an-earlier-store.db")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///an-earlier-store.db")
    child = tracking.user_environment()
    assert "MLFLOW_TRACKING_URI" not in child
    assert child["MLFLOW_REGISTRY_URI"] == "uc"
    assert child["PATH"] == os.environ["PATH"]


def test_a_crash_before_the_alias_moves_leaves_it_on_a_complete_version(spark, lake, tmp_path, monkeypatch):
    """Registration moves the alias last: a run that dies after registering its version but
    before moving the alias leaves the alias on the previous, complete version; the next run
    starts clean with a version of its own."""
    cfg = config_under(
        lake,
        "sweep.algorithms=[kmeans]",
        "sweep.grid.kmeans.k=[6]",
        "sweep.restarts=1",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db",
        f"mlflow.artifact_location={tmp_path}/mlruns",
    )
    name = cfg.model.registered_name
    assert run_train(cfg, spark).registered.version == "1"

    def killed(*args, **kwargs):
        raise RuntimeError("killed before the alias moved")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", killed)
    with pytest.raises(RuntimeError, match="killed before the alias moved"):
        run_train(cfg, spark)
    monkeypatch.undo()
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(name, cfg.model.alias).version) == "1"
    assert client.get_model_version(name, "2").status == "READY"  # registered, not aliased
    assert champion_assignments(spark, cfg).count() > 0  # the alias loads and scores

    assert run_train(cfg, spark).registered.version == "3"
    assert str(client.get_model_version_by_alias(name, cfg.model.alias).version) == "3"
