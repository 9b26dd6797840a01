"""Segment recovery on planted datasets that `segment generate` did not write.

    make bench-recovery                                   # every dataset, default sizes
    .venv/bin/python bench/recovery/run.py --datasets NAME,NAME --customers 2000 --label quick

Each dataset of bench/recovery/generators.py (its own code, sharing nothing with the
product's generator) is written as raw CSV in its own column vocabulary and fed through the
real CLI, `segment pipeline`, with a YAML overlay that maps its columns, into a lake and an
MLflow store of its own. Then:

* the published assignment is read back with delta-rs (not the project's reader) and scored
  by the adjusted Rand index (scikit-learn) against the planted personas, over the customers
  that belong to one (noise customers, persona -1, have no right answer and are left out);
* "found k": whether the champion has exactly the planted number of segments;
* the best achievable ARI on the same vectors: scikit-learn KMeans (n_init=10) and
  GaussianMixture (n_init=5, reg_covar=1e-6) at the planted k, fitted on the vectors the
  project's own preprocessing makes from its customer_features (log1p, winsorising, scaling),
  so a miss is attributed to the rule (best high, champion low), the optimiser (champion at
  the planted k but below the reference) or the features (best low too).

The table is printed, written to bench/recovery/results/<label>.md and logged with every
figure to one MLflow run (experiment `segment-recovery`, store `--tracking-uri`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import mlflow
import numpy as np
import pandas as pd
import yaml
from deltalake import DeltaTable
from generators import DATASETS, PlantedDataset, write
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from segmentation.config import Config, load_config
from segmentation.io import read_table, table_ref
from segmentation.models import SCALED, Preprocessing, build_preprocessing
from segmentation.spark import get_spark
from segmentation.tables import (
    ALGORITHM,
    AS_OF_DATE,
    ASSIGNMENT_ID,
    CUSTOMER_FEATURES,
    CUSTOMER_ID,
    PUBLISHED,
    PUBLISHED_AT,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_COUNT,
    SEGMENT_ID,
    SEGMENT_RUNS,
    STATUS,
    WRITE_ID,
)

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
REAL = "cdnow"  # the real dataset: no planted personas, scored by the rules' comparison only
RESULTS = HERE / "results"
NOISE = -1
PIPELINE_TIMEOUT_SECONDS = 3600


@dataclass(frozen=True)
class Recovery:
    """One dataset's row of the benchmark table."""

    dataset: str
    separation: str
    planted_k: int  # 0: real data, no planted personas
    customers: int
    noise_share: float
    champion: str
    champion_k: int
    found_k: Optional[bool]
    ari: Optional[float]
    best_ari_kmeans: Optional[float]
    best_ari_gmm: Optional[float]
    pipeline_seconds: float

    @property
    def best_ari(self) -> Optional[float]:
        return None if self.best_ari_kmeans is None else max(self.best_ari_kmeans, self.best_ari_gmm)


def cdnow_dataset() -> PlantedDataset:
    """CDNOW (the real CD retailer, 23,570 customers, 1997-01 to 1998-06) in the benchmark's
    shape, mapped as conf/cdnow.yaml maps it, features as of 1997-12-31; no personas."""
    sys.path.insert(0, str(HERE.parent))
    import cdnow  # bench/cdnow.py, beside this folder

    folder = Path(tempfile.mkdtemp(prefix="cdnow-"))
    transactions = pd.read_csv(cdnow.write_csv("master", folder) / "transactions.csv", dtype=str)
    return PlantedDataset(
        name=REAL,
        description="the real CDNOW customers; no planted personas",
        planted_k=0,
        separation="real",
        transactions=transactions,
        labels=pd.DataFrame({CUSTOMER_ID: pd.Series(dtype=str), "persona": pd.Series(dtype=int)}),
        as_of_date=dt.date(1997, 12, 31),
        columns={
            "customer_id": "customer_id",
            "order_ts": "date",
            "amount": "dollars",
            "order_id": None,
            "quantity": "cds",
            "category": None,
            "channel": None,
        },
        timestamp_format="yyyyMMdd",
    )


def overlay(dataset: PlantedDataset, folder: Path) -> dict:
    """The config a user would write for this data: where it is, what its columns are called,
    and a lake, MLflow store and report folder of its own."""
    return {
        "input": {
            "transactions": {
                "path": str(folder / "raw" / "transactions"),
                "format": "csv",
                "timestamp_format": dataset.timestamp_format,
                "columns": dict(dataset.columns),
            },
            "customers": {"path": None},
        },
        "features": {"as_of_date": dataset.as_of_date.isoformat()},
        "lake": {"root": str(folder / "lake")},
        "mlflow": {
            "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
            "artifact_location": str(folder / "mlruns"),
        },
        "report": {"output_dir": str(folder / "reports")},
    }


def make_dataset(name: str, seed: int, customers: Optional[int]) -> PlantedDataset:
    """A planted dataset by name (at `customers`, default its own size), or CDNOW."""
    sizes = {} if customers is None else {"customers": customers}
    return cdnow_dataset() if name == REAL else DATASETS[name](seed, **sizes)


def write_inputs(dataset: PlantedDataset, folder: Path) -> Path:
    """The raw CSV files and the YAML overlay a user would write for them; returns the overlay."""
    write(dataset, folder / "raw")
    config = folder / "recovery.yaml"
    config.write_text(yaml.safe_dump(overlay(dataset, folder), sort_keys=False))
    return config


def run_pipeline(dataset: PlantedDataset, folder: Path, *, overrides: list[str]) -> float:
    """`segment pipeline` on the dataset, as a user runs it; returns its seconds."""
    config = write_inputs(dataset, folder)
    command = [
        str(PROJECT / ".venv" / "bin" / "segment"),
        "pipeline",
        "--conf",
        "local",
        "--conf",
        str(config),
        *(part for override in overrides for part in ("--set", override)),
    ]
    started = time.perf_counter()
    with (folder / "pipeline.log").open("w") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        finished = subprocess.run(
            command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, timeout=PIPELINE_TIMEOUT_SECONDS
        )
    if finished.returncode != 0:
        tail = (folder / "pipeline.log").read_text().splitlines()[-15:]
        raise SystemExit(
            f"{dataset.name}: segment pipeline exited {finished.returncode}:\n" + "\n".join(tail)
        )
    return time.perf_counter() - started


def published_assignment(lake: Path) -> tuple[str, int, pd.DataFrame]:
    """The latest published assignment's algorithm, segment count and (customer_id, segment_id),
    read with delta-rs from segment_runs and the slice it names."""
    runs = DeltaTable(str(lake / SEGMENT_RUNS.name)).to_pandas()
    run = runs[runs[STATUS] == PUBLISHED].sort_values(PUBLISHED_AT).iloc[-1]
    assignments = DeltaTable(str(lake / SEGMENT_ASSIGNMENTS.name)).to_pandas(
        columns=[ASSIGNMENT_ID, WRITE_ID, CUSTOMER_ID, SEGMENT_ID]
    )
    mine = assignments[
        (assignments[ASSIGNMENT_ID] == run[ASSIGNMENT_ID]) & (assignments[WRITE_ID] == run[WRITE_ID])
    ]
    return str(run[ALGORITHM]), int(run[SEGMENT_COUNT]), mine[[CUSTOMER_ID, SEGMENT_ID]]


def dataset_config(folder: Path, overrides: list[str]) -> Config:
    """The config `segment pipeline` ran this dataset with: the local overlay, the dataset's
    overlay and the `--set` overrides."""
    return load_config(["local", str(folder / "recovery.yaml")], overrides)


def project_vectors(spark: SparkSession, cfg: Config) -> DataFrame:
    """customer_id and the vectors the project clusters: its preprocessing fitted on its
    customer_features as of the config's date."""
    features = read_table(spark, table_ref(cfg.lake, CUSTOMER_FEATURES)).filter(
        F.col(AS_OF_DATE) == F.lit(cfg.features.as_of_date)
    )
    prepared = build_preprocessing(
        features, cfg.model.feature_columns, Preprocessing.from_config(cfg.model)
    ).fit(features)
    return prepared.transform(features).select(CUSTOMER_ID, SCALED)


def best_achievable_on(spark: SparkSession, cfg: Config, dataset: PlantedDataset) -> tuple[float, float]:
    """`best_achievable` on the project's vectors of the dataset's lake (`cfg`)."""
    vectors = project_vectors(spark, cfg).select(CUSTOMER_ID, vector_to_array(SCALED).alias("vector"))
    # a bench dataset is a few thousand customers
    return best_achievable(vectors.toPandas(), dataset.labels, dataset.planted_k)


def best_achievable(vectors: pd.DataFrame, labels: pd.DataFrame, k: int) -> tuple[float, float]:
    """ARI of scikit-learn's K-means (10 starts) and Gaussian mixture (5 starts) at the planted
    k on the project's vectors, over the customers of a persona."""
    joined = vectors.merge(labels, on=CUSTOMER_ID)
    points = np.vstack(joined["vector"].to_numpy())
    planted = joined["persona"].to_numpy()
    member = planted != NOISE
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(points)
    mixture = GaussianMixture(k, n_init=5, reg_covar=1e-6, random_state=0).fit(points).predict(points)
    return (
        float(adjusted_rand_score(planted[member], kmeans[member])),
        float(adjusted_rand_score(planted[member], mixture[member])),
    )


def recover(spark: SparkSession, dataset: PlantedDataset, folder: Path, *, overrides: list[str]) -> Recovery:
    seconds = run_pipeline(dataset, folder, overrides=overrides)
    algorithm, segments, assigned = published_assignment(folder / "lake")
    labels = dataset.labels
    ari = best_kmeans = best_gmm = None
    if dataset.planted_k:
        joined = assigned.merge(labels, on=CUSTOMER_ID)
        member = joined["persona"] != NOISE
        ari = float(adjusted_rand_score(joined.loc[member, "persona"], joined.loc[member, SEGMENT_ID]))
        best_kmeans, best_gmm = best_achievable_on(spark, dataset_config(folder, overrides), dataset)
    recovery = Recovery(
        dataset=dataset.name,
        separation=dataset.separation,
        planted_k=dataset.planted_k,
        customers=len(assigned),
        noise_share=float((labels["persona"] == NOISE).mean()),
        champion=f"{algorithm} k={segments}",
        champion_k=segments,
        found_k=segments == dataset.planted_k if dataset.planted_k else None,
        ari=ari,
        best_ari_kmeans=best_kmeans,
        best_ari_gmm=best_gmm,
        pipeline_seconds=seconds,
    )
    # What bench/recovery/rules.py needs to redo the sweep on this folder's lake.
    (folder / "recovery.json").write_text(
        json.dumps(
            {
                **asdict(recovery),
                "best_ari": recovery.best_ari,
                "as_of_date": dataset.as_of_date.isoformat(),
                "columns": dataset.columns,
                "timestamp_format": dataset.timestamp_format,
            },
            indent=2,
        )
    )
    return recovery


def table(rows: list[Recovery]) -> list[str]:
    lines = [
        "| dataset | separation | planted k | customers | noise | champion | found k | ARI | "
        "best ARI (kmeans / gmm) | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        found = "-" if r.found_k is None else ("yes" if r.found_k else "no")
        best = "-" if r.best_ari is None else f"{r.best_ari_kmeans:.3f} / {r.best_ari_gmm:.3f}"
        lines.append(
            f"| {r.dataset} | {r.separation} | {r.planted_k or '-'} | {r.customers:,} | "
            f"{r.noise_share:.1%} | {r.champion} | {found} | {_figure(r.ari)} | {best} | "
            f"{r.pipeline_seconds:.0f} |"
        )
    for separation in ("well_separated", "overlapping"):
        group = [r for r in rows if r.separation == separation and r.planted_k]
        if group:
            lines.append(
                f"\n{separation}: {len(group)} datasets, planted k found in "
                f"{sum(r.found_k for r in group)}, ARI >= 0.9 in {sum(r.ari >= 0.9 for r in group)}, "
                f"mean ARI {np.mean([r.ari for r in group]):.3f}, "
                f"mean best achievable {np.mean([r.best_ari for r in group]):.3f}"
            )
    return lines


def _figure(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"


def log_to_mlflow(rows: list[Recovery], *, tracking_uri: str, label: str, text: str, params: dict) -> str:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("segment-recovery")
    with mlflow.start_run(run_name=label) as run:
        mlflow.log_params(params)
        for r in rows:
            figures = {"ari": r.ari, "found_k": r.found_k, "champion_k": r.champion_k, "best_ari": r.best_ari}
            mlflow.log_metrics(
                {f"{r.dataset}.{key}": float(v) for key, v in figures.items() if v is not None}
            )
        planted = [r for r in rows if r.planted_k]
        mlflow.log_metric("datasets", len(planted))
        if planted:
            mlflow.log_metric("found_k", sum(r.found_k for r in planted))
            mlflow.log_metric("mean_ari", float(np.mean([r.ari for r in planted])))
        mlflow.log_text(text, "recovery.md")
        mlflow.log_text(json.dumps([asdict(r) for r in rows], indent=2), "recovery.json")
        return run.info.run_id


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", help="comma-separated names; default every dataset")
    parser.add_argument("--customers", type=int, help="customers per dataset; default each one's own")
    parser.add_argument("--seed", type=int, default=7, help="the generators' seed")
    parser.add_argument("--label", default="latest", help="results/<label>.md and the MLflow run name")
    parser.add_argument("--work-dir", type=Path, help="where datasets, lakes and logs go; default a temp dir")
    parser.add_argument(
        "--tracking-uri", default=f"sqlite:///{HERE / '.mlflow' / 'recovery.db'}", help="the MLflow store"
    )
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    known = [*DATASETS, REAL]
    names = args.datasets.split(",") if args.datasets else known
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"--datasets: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    args.names = names
    return args


def main(argv: Optional[list[str]] = None) -> list[Recovery]:
    args = parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="recovery-"))
    maven = [o for o in args.overrides if o.startswith("spark.maven_repo=")]
    spark = get_spark(load_config(["local"], maven).spark)
    rows = []
    for name in args.names:
        dataset = make_dataset(name, args.seed, args.customers)
        row = recover(spark, dataset, work / name, overrides=args.overrides)
        print(
            f"{name}: champion {row.champion}, planted k={row.planted_k or '-'}, ARI {_figure(row.ari)}, "
            f"best {_figure(row.best_ari)}, {row.pipeline_seconds:.0f} s",
            flush=True,
        )
        rows.append(row)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    text = "\n".join([f"$ {command}", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "", *table(rows)])
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.label}.md").write_text(text + "\n")
    (HERE / ".mlflow").mkdir(exist_ok=True)
    run_id = log_to_mlflow(
        rows,
        tracking_uri=args.tracking_uri,
        label=args.label,
        text=text,
        params={
            "seed": args.seed,
            "customers": args.customers or "default",
            "overrides": " ".join(args.overrides),
        },
    )
    print(f"MLflow run {run_id} in {args.tracking_uri}; datasets and logs in {work}")
    return rows


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    main()
