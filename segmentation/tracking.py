"""MLflow I/O for sweeps: where runs go, one child run per fit, artifacts, the registered champion.

Child runs are written with `MlflowClient` and an explicit parent id rather than the fluent
active-run stack, so a sweep's structure does not depend on which thread finished a fit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import mlflow
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.environment_variables import MLFLOW_DFS_TMP
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession

from segmentation.config import AssignConfig, MlflowConfig, ModelConfig
from segmentation.errors import InputError, StoreError
from segmentation.lineage import ModelIdentity
from segmentation.models import PREDICTION
from segmentation.spark import is_connect, on_databricks

_MAX_PARAM_LENGTH = 6000
# The artifact of a model logged through a shared folder (`ServerSavedPipelineModel`).
_SPARKML = "sparkml"
# What a logged PipelineModel needs to be loaded as a pyfunc: the packages MLflow's inference
# finds for it (pyspark imports scipy when it is installed; tests/test_train.py holds the two
# equal). Given, pinned to this environment, rather than inferred: MLflow infers them by
# loading the model again in a new Python process with its own Spark session (`segment train`
# on 400 customers: 72.5 s inferring, 50.9 s given).
MODEL_REQUIREMENTS = ("mlflow", "numpy", "pandas", "pyarrow", "pyspark", "scipy")
_PROBE_SECONDS = 10
# What the registry answers for a model, version or alias it does not have.
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}
# The user's environment, read before MLflow's own `set_tracking_uri` writes these variables.
_USER_URIS = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}


def user_environment() -> dict[str, str]:
    """This process's environment as the user set it, for a child process: MLflow's
    `set_tracking_uri` writes MLFLOW_TRACKING_URI here, which a child would take for the user's
    choice and let win over its own config."""
    environment = {name: value for name, value in os.environ.items() if name not in _USER_URIS}
    return environment | {name: value for name, value in _USER_URIS.items() if value is not None}


def tracking_uri(settings: MlflowConfig) -> str:
    """The tracking store in use: MLFLOW_TRACKING_URI as the user set it, else the config's."""
    return _USER_URIS["MLFLOW_TRACKING_URI"] or settings.tracking_uri


def configure(settings: MlflowConfig, *, writes: bool = False) -> str:
    """Point MLflow at the configured tracking store and registry (the environment variables
    win) and return the experiment id, creating the experiment on first use.

    The store is checked first, so that an outage is a `StoreError` naming the URI, before any
    table is written, not a missing model; with `writes`, also that it takes a write (a
    read-only SQLite file is readable)."""
    uri = tracking_uri(settings)
    _probe(uri)
    if settings.dfs_tmpdir:
        os.environ.setdefault(MLFLOW_DFS_TMP.name, settings.dfs_tmpdir)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(_USER_URIS["MLFLOW_REGISTRY_URI"] or settings.registry_uri or uri)
    with store_errors(uri):
        with _logging_kept():  # a new SQLite store runs alembic, whose fileConfig resets logging
            experiment = mlflow.get_experiment_by_name(settings.experiment)
        if experiment is None:
            location = settings.artifact_location
            if location and "://" not in location:
                location = Path(location).expanduser().resolve().as_uri()
            experiment_id = mlflow.create_experiment(settings.experiment, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        if writes:
            MlflowClient().set_experiment_tag(experiment_id, "segmentation.last_run_at", str(_now_ms()))
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _probe(uri: str) -> None:
    """An HTTP tracking server answers `/health` within seconds, or the store is unreachable
    (MLflow's own client would retry for minutes before saying so)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=_PROBE_SECONDS):
            return
    except urllib.error.HTTPError:
        return  # it answered: a server behind a proxy or without /health is still there
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StoreError(
            f"MLflow tracking store {uri} is unreachable ({reason}); start it or point "
            "mlflow.tracking_uri (or MLFLOW_TRACKING_URI) at a running one; nothing was written"
        ) from None


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """An MLflow store that fails (unreachable, read-only, locked), as a `StoreError` naming it."""
    try:
        yield
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            raise
        raise StoreError(f"MLflow tracking store {uri}: {_first_line(exc)}; nothing was written") from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("sqlalchemy", "sqlite3", "requests", "urllib3"):
            raise
        raise StoreError(f"MLflow tracking store {uri}: {_first_line(exc)}; nothing was written") from None


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "message", exc)).strip().splitlines() or [type(exc).__name__])[0][:300]


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """Undo what `logging.config.fileConfig` does: root level and handlers replaced, other
    loggers disabled."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    enabled = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.disabled
    ]
    try:
        yield
    finally:
        root.setLevel(level)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        for logger in enabled:
            logger.disabled = False


def git_commit() -> str:
    """The commit of the code that ran, or "unknown" outside a git checkout (a wheel on a cluster)."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip()


def params_text(value: Any) -> str:
    """A parameter value as MLflow stores it: JSON for structures, cut to MLflow's limit."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:_MAX_PARAM_LENGTH]


def log_fit(
    *,
    experiment_id: str,
    parent_run_id: str,
    name: str,
    tags: dict[str, str],
    params: dict[str, Any],
    metrics: dict[str, float],
) -> str:
    """One finished child run of a sweep: its parameters, metrics and tags."""
    client = MlflowClient()
    run = client.create_run(experiment_id, run_name=name, tags={MLFLOW_PARENT_RUN_ID: parent_run_id, **tags})
    run_id = run.info.run_id
    client.log_batch(
        run_id,
        metrics=[mlflow.entities.Metric(key, value, _now_ms(), 0) for key, value in metrics.items()],
        params=[mlflow.entities.Param(key, params_text(value)) for key, value in params.items()],
    )
    client.set_terminated(run_id)
    return run_id


def log_figure(run_id: str, figure: Figure, artifact_file: str) -> None:
    MlflowClient().log_figure(run_id, figure, artifact_file)


def log_table(run_id: str, rows: list[dict[str, Any]], stem: str) -> None:
    """A small table (one row per fit or segment) as CSV and HTML artifacts."""
    frame = pd.DataFrame(rows)
    with tempfile.TemporaryDirectory() as folder:
        frame.to_csv(Path(folder) / f"{stem}.csv", index=False)
        (Path(folder) / f"{stem}.html").write_text(
            frame.to_html(index=False, float_format=lambda value: f"{value:.4g}", na_rep="")
        )
        client = MlflowClient()
        client.log_artifact(run_id, str(Path(folder) / f"{stem}.csv"))
        client.log_artifact(run_id, str(Path(folder) / f"{stem}.html"))


def log_spark_model(
    run_id: str, model: PipelineModel, example: DataFrame, *, registered_name: Optional[str] = None
) -> Optional[str]:
    """Log the whole PipelineModel with its signature and a few input rows; register it when a
    name is given and return the new model version."""
    example_input = example.toPandas()
    example_output = model.transform(example).select(PREDICTION).toPandas()
    with warnings.catch_warnings():  # segment ids are integers and never missing
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
        signature = infer_signature(example_input, example_output)
    logged = dict(
        signature=signature,
        input_example=example_input,
        pip_requirements=model_requirements(),
        registered_model_name=registered_name,
    )
    with mlflow.start_run(run_id=run_id, nested=True):
        if _through_shared_folder(example.sparkSession):
            with _shared_folder() as shared:
                saved = shared / _SPARKML
                model.write().save(str(saved))  # written by the Spark Connect server
                _check_shared(saved)
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=ServerSavedPipelineModel(),
                    artifacts={_SPARKML: str(saved)},
                    **logged,
                )
        else:
            info = mlflow.spark.log_model(model, "model", **logged)
    version = getattr(info, "registered_model_version", None)
    return str(version) if version is not None else None


def model_requirements() -> list[str]:
    """`MODEL_REQUIREMENTS` pinned to the versions installed here."""
    return [f"{package}=={metadata.version(package)}" for package in MODEL_REQUIREMENTS]


class ServerSavedPipelineModel(mlflow.pyfunc.PythonModel):
    """A PipelineModel logged over Spark Connect outside Databricks.

    MLflow's Spark flavour moves a model between the Spark server's file system and the
    artifact store through the JVM of the Python process, which a Spark Connect client does not
    have; MLflow supports Connect only on Databricks, through a Unity Catalog volume. Here the
    server saves the model in Spark ML's own format to a folder this process also sees
    (`mlflow.dfs_tmpdir`), and those files are the pyfunc's artifact; `load_model` hands them
    back to the server the same way."""

    def load_context(self, context: Any) -> None:
        self.model = PipelineModel.load(context.artifacts[_SPARKML])

    def predict(self, context: Any, model_input: pd.DataFrame) -> pd.DataFrame:
        spark = SparkSession.getActiveSession()
        return self.model.transform(spark.createDataFrame(model_input)).select(PREDICTION).toPandas()


def _through_shared_folder(spark: SparkSession) -> bool:
    return is_connect(spark) and not on_databricks()


@contextlib.contextmanager
def _shared_folder() -> Iterator[Path]:
    """A fresh folder under MLFLOW_DFS_TMP (`mlflow.dfs_tmpdir`), removed afterwards."""
    folder = Path(MLFLOW_DFS_TMP.get()) / f"segmentation-{uuid.uuid4().hex}"
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_shared(saved: Path) -> None:
    if not saved.is_dir():
        raise StoreError(
            f"the Spark Connect server saved the model to {saved}, which this process does not see; "
            "set mlflow.dfs_tmpdir (or MLFLOW_DFS_TMP) to a folder the server and this process share"
        )


def _load_spark_model(spark: SparkSession, uri: str) -> PipelineModel:
    """`uri`'s PipelineModel: through MLflow's Spark flavour, or over Spark Connect outside
    Databricks by handing the server the model's Spark ML files in a shared folder (either
    flavour: `ServerSavedPipelineModel`'s artifact, or the Spark flavour's model data)."""
    if not _through_shared_folder(spark):
        return mlflow.spark.load_model(uri)
    with _shared_folder() as shared:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(shared)))
        flavors = Model.load(str(local)).flavors
        if "spark" in flavors:
            saved = local / flavors["spark"]["model_data"]
        else:
            saved = local / flavors["python_function"]["artifacts"][_SPARKML]["path"]
        return PipelineModel.load(str(saved))


def _now_ms() -> int:
    return int(time.time() * 1000)


def register_champion(
    model_config: ModelConfig,
    *,
    run_id: str,
    model: PipelineModel,
    example: DataFrame,
    reasoning: str,
    tags: dict[str, str],
) -> str:
    """Log the champion's model to its run, register it as a new version, then move the alias
    (`champion`) to that version and record why it won; returns the version.

    The alias moves last, so until the new version is complete the alias stays on the
    previous one."""
    version = log_spark_model(run_id, model, example, registered_name=model_config.registered_name)
    client = MlflowClient()
    client.update_model_version(model_config.registered_name, version, description=reasoning)
    for key, value in tags.items():
        client.set_model_version_tag(model_config.registered_name, version, key, value)
    client.set_registered_model_alias(model_config.registered_name, model_config.alias, version)
    return version


def load_model(
    spark: SparkSession, model: ModelConfig, choice: AssignConfig
) -> tuple[PipelineModel, ModelIdentity]:
    """The scoring model by run id, by registered version, or (default) by alias."""
    client = MlflowClient()
    name = model.registered_name
    try:
        if choice.run_id:
            registered = [
                v for v in client.search_model_versions(f"run_id = '{choice.run_id}'") if v.name == name
            ]
            version = str(max(int(v.version) for v in registered)) if registered else None
            identity = ModelIdentity(name, version, choice.run_id)
            uri = f"runs:/{choice.run_id}/model"
        else:
            found = (
                client.get_model_version(name, choice.model_version)
                if choice.model_version
                else client.get_model_version_by_alias(name, model.alias)
            )
            identity = ModelIdentity(name, str(found.version), found.run_id)
            uri = f"models:/{name}/{found.version}"
        return _load_spark_model(spark, uri), identity
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND:
            raise StoreError(
                f"MLflow store {mlflow.get_registry_uri()}: cannot read registered model {name} "
                f"({_first_line(exc)})"
            ) from exc
        wanted = (
            f"run {choice.run_id}"
            if choice.run_id
            else f"version {choice.model_version}"
            if choice.model_version
            else f"alias '{model.alias}'"
        )
        raise InputError(
            f"registered model {name}: cannot load {wanted} ({exc.message.splitlines()[0]}); "
            "run `segment train` first or pick an existing version"
        ) from exc
