# Databricks notebook source
# MAGIC %md
# MAGIC # Compare sweep runs
# MAGIC
# MAGIC The sweeps `segment train` logged to MLflow: one parent run per sweep, one child run per
# MAGIC fit. This notebook lists the sweeps of the experiment, then for one sweep (default: the
# MAGIC latest) its fits in the champion rule's order, each metric against k, and the champion
# MAGIC against the runners-up, checked against the model version the registry alias points at.
# MAGIC
# MAGIC Parameters: on Databricks the widgets `conf` (a shipped overlay name or a YAML path,
# MAGIC default `databricks`), `set` (`;`-separated `dotted.key=value` overrides) and
# MAGIC `sweep_run_id` (empty: the latest sweep). As plain Python, against the embedded default
# MAGIC (`conf/local.yaml`, MLflow in `./mlflow.db`), the environment variables
# MAGIC `SEGMENTATION_CONF`, `SEGMENTATION_SET` and `SEGMENTATION_SWEEP_RUN_ID`:
# MAGIC
# MAGIC     .venv/bin/python notebooks/compare_sweep_runs.py
# MAGIC
# MAGIC Plain Python prints the tables and saves the figures under `SEGMENTATION_NOTEBOOK_OUTPUT`
# MAGIC (default `reports/notebooks`), in a folder `sweep_<run id>`.
# MAGIC
# MAGIC Everything here is one row per run: `mlflow.search_runs` returns runs, not customers.

# COMMAND ----------

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from segmentation import plots, tracking
from segmentation.config import load_config
from segmentation.errors import InputError
from segmentation.tables import ALGORITHM, K

# COMMAND ----------

try:
    dbutils.widgets.text("conf", "databricks")
    dbutils.widgets.text("set", "")
    conf, sets = dbutils.widgets.get("conf"), dbutils.widgets.get("set")
except NameError:  # plain Python: the embedded default
    conf, sets = os.environ.get("SEGMENTATION_CONF", "local"), os.environ.get("SEGMENTATION_SET", "")
cfg = load_config([conf], [override for override in sets.split(";") if override.strip()])

try:
    dbutils.widgets.text("sweep_run_id", "")
    sweep_run_id = dbutils.widgets.get("sweep_run_id")
except NameError:
    sweep_run_id = os.environ.get("SEGMENTATION_SWEEP_RUN_ID", "")
sweep_run_id = sweep_run_id.strip() or None  # None: the latest sweep

# COMMAND ----------

# Databricks puts display() into the notebook's namespace; plain Python prints and saves.
ON_DATABRICKS = "display" in globals()
OUTPUT = Path(os.environ.get("SEGMENTATION_NOTEBOOK_OUTPUT", "reports/notebooks")).resolve()
RUNNERS_UP = 3


def show(frame: pd.DataFrame) -> None:
    """A small table (one row per run): rendered on Databricks, printed in plain Python."""
    if ON_DATABRICKS:
        display(frame)  # noqa: F821
    else:
        with pd.option_context("display.width", 250, "display.max_columns", None):
            print(frame.to_string(index=False, float_format=lambda value: f"{value:.4g}", na_rep="-"))


def show_figure(figure: Figure, name: str) -> None:
    """On Databricks, the figure inline; in plain Python a PNG under OUTPUT/sweep_<run id>/."""
    if ON_DATABRICKS:
        display(figure)  # noqa: F821
        return
    path = OUTPUT / f"sweep_{sweep_run_id}" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    print(f"figure: {path}")


def logged(run: pd.Series, name: str):
    """One `search_runs` value of a run, or None when the run did not log it."""
    value = run.get(name)
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def columns(runs: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """The named `search_runs` columns, renamed; a column no run has logged comes out empty."""
    return runs.reindex(columns=list(names)).rename(columns=names)


# COMMAND ----------

# MAGIC %md
# MAGIC ## Sweeps in the experiment
# MAGIC
# MAGIC Parent runs carry the tag `stage = train`; their `champion_*` metrics, `champion_run_id`
# MAGIC and `champion_model_version` tags say what each sweep crowned. A sweep where no fit met the
# MAGIC rule has none.

# COMMAND ----------

experiment_id = tracking.configure(cfg.mlflow)
sweeps = mlflow.search_runs(
    [experiment_id], filter_string="tags.stage = 'train'", order_by=["start_time DESC"]
)
if sweeps.empty:
    raise InputError(
        f"MLflow experiment {cfg.mlflow.experiment} has no sweep runs; run `segment train` first"
    )
show(
    columns(
        sweeps,
        {
            "run_id": "sweep_run_id",
            "start_time": "started",
            "status": "status",
            "params.as_of_date": "as_of_date",
            "params.features_table_version": "features_version",
            "params.customers": "customers",
            "params.grid_points": "fits",
            "tags.champion_run_id": "champion_run_id",
            "tags.champion_model_version": "model_version",
            "metrics.champion_clusters": "clusters",
            "metrics.champion_silhouette": "silhouette",
            "metrics.champion_min_segment_share": "smallest_segment",
        },
    )
)
if sweep_run_id is None:
    sweep_run_id = sweeps.iloc[0]["run_id"]
elif sweep_run_id not in set(sweeps["run_id"]):
    raise InputError(f"MLflow experiment {cfg.mlflow.experiment} has no sweep run {sweep_run_id}")
sweep = sweeps.set_index("run_id").loc[sweep_run_id]

# COMMAND ----------

# MAGIC %md
# MAGIC ## The fits of one sweep: the champion, the other eligible fits, the rest
# MAGIC
# MAGIC The rule (as the sweep logged it, parameter `selection_rule`): among fits whose smallest
# MAGIC segment and stability pass the thresholds, the first in the order of its `rule`
# MAGIC (`silhouette` by default: the highest silhouette at the logged number of decimals), ties
# MAGIC to fewer clusters; docs/champion-rule.md lists the orders. Each child run's `eligible` and
# MAGIC `verdict` tags say where it stands; stability is only measured for the leading fits. Below,
# MAGIC within each group, fits are listed by silhouette.

# COMMAND ----------

fits = mlflow.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{sweep_run_id}'")
if fits.empty:
    raise InputError(f"MLflow sweep run {sweep_run_id} has no child runs (fits)")
rule = json.loads(logged(sweep, "params.selection_rule") or "{}")
decimals = rule.get("silhouette_decimals", cfg.selection.silhouette_decimals)
board = columns(
    fits,
    {
        "tags.mlflow.runName": "fit",
        f"params.{ALGORITHM}": ALGORITHM,
        f"params.{K}": K,
        "metrics.clusters": "clusters",
        **{f"metrics.{metric}": metric for metric, _ in plots.SWEEP_METRICS},
        "metrics.stability": "stability",
        "metrics.fit_seconds": "fit_seconds",
        "tags.eligible": "eligible",
        "tags.verdict": "verdict",
        "run_id": "run_id",
    },
)
board[K] = board[K].astype(int)
board = (
    board.assign(
        _other=board["verdict"] != "champion",
        _ineligible=board["eligible"] != "true",
        _silhouette=-board["silhouette"].round(decimals).fillna(-2.0),
    )
    .sort_values(["_other", "_ineligible", "_silhouette", "clusters", K])
    .drop(columns=["_other", "_ineligible", "_silhouette"])
    .reset_index(drop=True)
)
print(f"sweep {sweep_run_id} ({sweep['tags.mlflow.runName']}, {sweep['status']}): {len(board)} fits")
print(f"rule: {json.dumps(rule, sort_keys=True)}")
print(f"reasoning: {logged(sweep, 'tags.champion_rule') or '-'}")
show(board)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Metrics against k
# MAGIC
# MAGIC One line per algorithm; where the grid holds several fits per (algorithm, k), the one with
# MAGIC the highest silhouette stands for it. The champion is circled on the silhouette panel.

# COMMAND ----------

show(board.pivot_table(index=K, columns=ALGORITHM, values="silhouette", aggfunc="max").reset_index())
rows = [
    {name: value for name, value in row.items() if not (isinstance(value, float) and np.isnan(value))}
    for row in board.to_dict("records")
]
figure = plots.metrics_against_k(rows)
champion_run_id = logged(sweep, "tags.champion_run_id")
champions = board[board["run_id"] == champion_run_id]
if not champions.empty:
    figure.axes[0].scatter(
        champions[K],
        champions["silhouette"],
        s=200,
        facecolors="none",
        edgecolors="black",
        label="champion",
    )
    figure.axes[0].legend()
show_figure(figure, "metrics_against_k")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Champion against runners-up
# MAGIC
# MAGIC The champion is the sweep's `champion_run_id` tag; the registry alias (`model.alias`,
# MAGIC default `champion`) points at the model version scoring assignments, which a later sweep
# MAGIC may have moved. Runners-up are the next fits in the rule's order, with their differences
# MAGIC from the champion.

# COMMAND ----------

try:
    registered = MlflowClient().get_model_version_by_alias(cfg.model.registered_name, cfg.model.alias)
except MlflowException:
    registered = None

if champion_run_id is None:
    print(f"no champion in sweep {sweep_run_id}: no fit met the rule")
else:
    champion = board[board["run_id"] == champion_run_id].iloc[0]
    print(f"champion run: {champion_run_id} ({champion['fit']})")
if registered is None:
    print(f"registered champion: none (no alias '{cfg.model.alias}' on {cfg.model.registered_name})")
else:
    same = "this sweep's champion" if registered.run_id == champion_run_id else "not this sweep's champion"
    print(
        f"registered champion: {cfg.model.registered_name} version {registered.version}, alias "
        f"'{cfg.model.alias}' -> run {registered.run_id} (sweep {registered.tags.get('sweep_run_id', '-')}): "
        f"{same}"
    )

others = board[board["run_id"] != champion_run_id].head(RUNNERS_UP)
compared = pd.concat([board[board["run_id"] == champion_run_id], others])
roles = ["champion"] * (len(compared) - len(others)) + [f"runner-up {i + 1}" for i in range(len(others))]
compared = compared.assign(role=roles)
metrics = ["silhouette", "min_segment_share", "stability"]
shown = ["role", "fit", "clusters"]
for metric in metrics:
    shown.append(metric)
    if champion_run_id is not None:
        compared[f"{metric}_vs_champion"] = compared[metric] - champion[metric]
        shown.append(f"{metric}_vs_champion")
show(compared[[*shown, "davies_bouldin", "calinski_harabasz", "verdict", "run_id"]])

figure = Figure(figsize=(max(7, 1.8 * len(compared)), 4.5), layout="constrained")
axis = figure.subplots()
width = 0.8 / len(metrics)
for offset, metric in enumerate(metrics):
    axis.bar(
        np.arange(len(compared)) + (offset - (len(metrics) - 1) / 2) * width,
        compared[metric].fillna(0.0),
        width,
        label=metric,
    )
axis.set_xticks(
    range(len(compared)),
    [f"{role}\n{fit}" for role, fit in zip(compared["role"], compared["fit"], strict=True)],
)
axis.set_ylabel("value (stability 0: not measured)")
axis.set_title(f"champion against runners-up, sweep {sweep_run_id}")
axis.grid(alpha=0.3, axis="y")
axis.legend()
show_figure(figure, "champion_vs_runners_up")
