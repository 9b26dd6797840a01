"""Candidate champion rules compared on the recovery benchmark's datasets and on CDNOW.

    make bench-rules                      # every dataset and CDNOW, in bench/recovery/.work
    .venv/bin/python bench/recovery/rules.py --work-dir DIR [--datasets a,b] [--prepare]

Reads the lakes `bench/recovery/run.py --work-dir DIR` left behind (each dataset's
customer_features as of its date), or with `--prepare` writes and ingests the missing ones
itself (ingest and features only, in this process), fits the configured grid there in-process with the
library's own sweep functions (preprocessing once, `fit_all`, `stability`), and records for
every fit: its metrics, its stability, its ARI against the planted personas and how much of
the next period's spend its segments explain. Every candidate rule then picks one fit per
dataset from the same table (written to DIR/<dataset>/fits.csv and reused on a re-run), so
the rules differ only in how they choose.

Next-period spend is computed here from the dataset's own raw lines, in (D, D + H] with H =
`--horizon-days`; "usefulness" is omega squared of that spend across the fit's segments, the
share of variance the segments explain, adjusted for the number of segments (eta squared
minus what k random groups explain by chance), so it does not grow with k by itself.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, get_args

import numpy as np
import pandas as pd
from generators import DATASETS, STRFTIME
from pyspark import StorageLevel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from run import REAL, best_achievable_on, dataset_config, make_dataset, project_vectors, write_inputs
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from segmentation.config import ChampionRule, Config, SelectionConfig, load_config
from segmentation.models import PREDICTION, SCALED
from segmentation.spark import get_spark
from segmentation.stages.features import run_features
from segmentation.stages.ingest import run_ingest
from segmentation.sweep import (
    RULE_CRITERIA,
    FitResult,
    FitStarts,
    champion_order,
    fit_all,
    grid_points,
    stability,
)
from segmentation.tables import CUSTOMER_ID

NOISE = -1
GAP_REFERENCES = 5


def next_period_spend(folder: Path, meta: dict, horizon_days: int) -> pd.Series:
    """Spend per customer in (D, D + H], from the dataset's raw lines (customers with none are
    absent); D's whole day belongs to the features, as in the product."""
    columns, pattern = meta["columns"], meta["timestamp_format"]
    transactions = pd.concat(
        pd.read_csv(path, dtype={columns["order_ts"]: str, columns["customer_id"]: str})
        for path in sorted((folder / "raw" / "transactions").glob("*.csv"))
    )
    stamps = pd.to_datetime(
        transactions[columns["order_ts"]], format=STRFTIME[pattern] if pattern else "ISO8601"
    )
    start = pd.Timestamp(meta["as_of_date"]) + pd.Timedelta(days=1)
    end = start + pd.Timedelta(days=horizon_days)
    window = transactions[(stamps >= start) & (stamps < end)]
    return window.groupby(window[columns["customer_id"]].astype(str))[columns["amount"]].sum()


def omega_squared(values: np.ndarray, groups: np.ndarray) -> float:
    """(SS_between - (k - 1) MS_within) / (SS_total + MS_within): the share of variance the
    groups explain beyond chance (Hays), comparable across k."""
    total = ((values - values.mean()) ** 2).sum()
    labels, inverse = np.unique(groups, return_inverse=True)
    k, n = len(labels), len(values)
    if k < 2 or total == 0 or n <= k:
        return 0.0
    means = np.bincount(inverse, weights=values) / np.bincount(inverse)
    between = (np.bincount(inverse) * (means - values.mean()) ** 2).sum()
    within_mean_square = (total - between) / (n - k)
    return float((between - (k - 1) * within_mean_square) / (total + within_mean_square))


def reference_log_within(points: np.ndarray, ks: list[int], *, seed: int) -> dict[int, tuple[float, float]]:
    """Gap statistic references (Tibshirani, Walther, Hastie 2001): mean and standard error
    (times sqrt(1 + 1/B)) of log W_k of K-means on B uniform samples of the data's bounding box."""
    rng = np.random.default_rng(seed)
    low, high = points.min(axis=0), points.max(axis=0)
    logs = {k: [] for k in ks}
    for _ in range(GAP_REFERENCES):
        uniform = rng.uniform(low, high, size=points.shape)
        for k in ks:
            logs[k].append(math.log(KMeans(n_clusters=k, n_init=3, random_state=0).fit(uniform).inertia_))
    return {
        k: (float(np.mean(v)), float(np.std(v) * math.sqrt(1 + 1 / GAP_REFERENCES))) for k, v in logs.items()
    }


@dataclass
class Prepared:
    cfg: Config
    vectors: DataFrame  # customer_id, features (persisted)
    points: np.ndarray
    customer_ids: np.ndarray


def prepare(spark: SparkSession, folder: Path, overrides: list[str]) -> Prepared:
    """The dataset's config as run.py ran it (plus `overrides`), and its vectors."""
    cfg = dataset_config(folder, overrides)
    vectors = project_vectors(spark, cfg).persist(StorageLevel.MEMORY_AND_DISK)
    local = vectors.select(CUSTOMER_ID, vector_to_array(SCALED).alias("v")).toPandas()
    return Prepared(cfg, vectors, np.vstack(local["v"].to_numpy()), local[CUSTOMER_ID].to_numpy())


def fit_rows(
    prepared: Prepared, *, planted: Optional[pd.Series], spend: pd.Series, say: Callable[[str], None]
) -> pd.DataFrame:
    """One row per grid point: metrics, stability, ARI against the planted personas (None
    without them) and omega squared of next-period spend."""
    sweep = prepared.cfg.sweep
    points = grid_points(sweep.grid, sweep.algorithms)
    next_spend = spend.reindex(prepared.customer_ids).fillna(0.0).to_numpy()
    truth = None if planted is None else planted.reindex(prepared.customer_ids).to_numpy()
    rows = []
    for result in fit_all(prepared.vectors, points, sweep):
        row = {"algorithm": result.point.algorithm, "k": result.point.k, **result.metric_values()}
        if result.model is not None:
            labels = _labels(result, prepared)
            row["omega_squared"] = omega_squared(next_spend, labels)
            if truth is not None:
                member = truth != NOISE
                row["ari"] = float(adjusted_rand_score(truth[member], labels[member]))
            row["stability"] = stability(
                prepared.vectors,
                result,
                seed=sweep.seed,
                sample_fraction=sweep.stability_sample,
                starts=FitStarts.of(sweep),
            )
        say(f"  {result.point.name}: " + ", ".join(f"{key} {row[key]:.3f}" for key in _SHOWN if key in row))
        rows.append(row)
    table = pd.DataFrame(rows)
    ks = sorted(table["k"].unique())
    references = reference_log_within(prepared.points, ks, seed=sweep.seed)
    table["gap"] = [
        references[k][0] - math.log(w) for k, w in zip(table["k"], table["within_ss"], strict=True)
    ]
    table["gap_se"] = [references[k][1] for k in table["k"]]
    return table


_SHOWN = ("silhouette", "calinski_harabasz", "davies_bouldin", "stability", "ari", "omega_squared")


def _labels(result: FitResult, prepared: Prepared) -> np.ndarray:
    scored = result.model.transform(prepared.vectors).select(CUSTOMER_ID, PREDICTION).toPandas()
    return scored.set_index(CUSTOMER_ID)[PREDICTION].reindex(prepared.customer_ids).to_numpy()


# ---- the candidate rules: each picks one row of a dataset's fit table (or None) ----
# The product's own rules (segmentation.sweep.champion_order, selectable as selection.rule) are
# applied exactly as `segment train` applies them: the fits with a large enough smallest segment
# in the rule's order, the first stable one wins. The gap statistic and usefulness need
# reference fits or the future and stay here, as do the two-step candidates (`per_algorithm`).

Rule = Callable[[pd.DataFrame, SelectionConfig], Optional[pd.Series]]


def product_rule(name: str) -> Rule:
    def pick(table: pd.DataFrame, selection: SelectionConfig) -> Optional[pd.Series]:
        settings = selection.model_copy(update={"rule": name})
        candidates = table[
            (table["min_segment_share"] >= settings.min_segment_share) & table["silhouette"].notna()
        ].reset_index(drop=True)
        fits = candidates.astype(object).where(candidates.notna(), None).to_dict("records")
        for position in champion_order(settings, fits):
            if candidates.loc[position, "stability"] >= settings.min_stability:
                return candidates.loc[position]
        return None

    return pick


def eligible(table: pd.DataFrame, selection: SelectionConfig) -> pd.DataFrame:
    ok = (table["min_segment_share"] >= selection.min_segment_share) & (
        table["stability"] >= selection.min_stability
    )
    return table[ok & table["silhouette"].notna()]


def _best(table: pd.DataFrame, column: str, *, largest: bool, decimals: Optional[int] = None):
    if table.empty:
        return None
    values = table[column].round(decimals) if decimals is not None else table[column]
    order = table.assign(_v=values if largest else -values).sort_values(["_v", "k"], ascending=[False, True])
    return order.iloc[0]


def by_gap(table: pd.DataFrame, selection: SelectionConfig) -> Optional[pd.Series]:
    """Per algorithm Tibshirani's rule, the smallest k with gap(k) >= gap(k+1) - se(k+1); of the
    algorithms' choices the highest silhouette."""
    picks = []
    for _, rows in eligible(table, selection).groupby("algorithm"):
        rows = rows.sort_values("k").reset_index(drop=True)
        for i in range(len(rows) - 1):
            if rows.loc[i, "gap"] >= rows.loc[i + 1, "gap"] - rows.loc[i + 1, "gap_se"]:
                picks.append(rows.loc[i])
                break
    return _best(pd.DataFrame(picks), "silhouette", largest=True, decimals=3) if picks else None


def by_usefulness(table: pd.DataFrame, selection: SelectionConfig) -> Optional[pd.Series]:
    return _best(eligible(table, selection), "omega_squared", largest=True)


def per_algorithm(kmeans_family: str, mixture: str, across: str) -> Rule:
    """Two steps, each a product rule: every algorithm picks its own k (the K-means family by
    `kmeans_family`, the mixture by `mixture`), then `across` picks among those choices, so a
    criterion that favours round clusters never compares a K-means fit with a mixture's k."""

    def pick(table: pd.DataFrame, selection: SelectionConfig) -> Optional[pd.Series]:
        choices = [
            product_rule(mixture if algorithm == "gaussian_mixture" else kmeans_family)(rows, selection)
            for algorithm, rows in table.groupby("algorithm")
        ]
        choices = [choice for choice in choices if choice is not None]
        return product_rule(across)(pd.DataFrame(choices), selection) if choices else None

    return pick


# rule name -> (the K-means family's own k by, the mixture's own k by, between algorithms by)
TWO_STEP = {
    "per algorithm CH / ICL, then silhouette (bench only)": ("calinski_harabasz", "icl", "silhouette"),
    "per algorithm DB / ICL, then silhouette (bench only)": ("davies_bouldin", "icl", "silhouette"),
}
RULES: dict[str, Rule] = {
    **{name: product_rule(name) for name in get_args(ChampionRule)},
    "gap statistic (bench only)": by_gap,
    "usefulness, omega2 (bench only)": by_usefulness,
    **{name: per_algorithm(*steps) for name, steps in TWO_STEP.items()},
}


def compare(
    tables: dict[str, pd.DataFrame], meta: dict[str, dict], selections: dict[str, SelectionConfig]
) -> list[str]:
    """The rule comparison table: per rule, what it picks on each kind of data."""
    lines = [
        "| rule | well separated: k found | ARI >= 0.9 | mean ARI | overlapping: mean ARI "
        "(best achievable) | k found | CDNOW: k, omega2 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rule in RULES.items():
        steps = TWO_STEP.get(name, (name,))
        needs = {criterion for step in steps for criterion in RULE_CRITERIA.get(step, ())}
        stale = [d for d, table in tables.items() if not needs <= set(table)]
        if stale:  # a fits.csv written before the product computed this rule's criterion
            lines.append(f"| {name} | not measured: delete fits.csv of {', '.join(stale)} and re-run |")
            continue
        picks = {dataset: rule(table, selections[dataset]) for dataset, table in tables.items()}
        cells = []
        for separation in ("well_separated", "overlapping"):
            group = [d for d in tables if meta[d].get("separation") == separation]
            aris = [picks[d]["ari"] if picks[d] is not None else 0.0 for d in group]
            found = sum(picks[d] is not None and picks[d]["k"] == meta[d]["planted_k"] for d in group)
            best = [meta[d]["best_ari"] for d in group]
            if separation == "well_separated":
                cells += [f"{found}/{len(group)}", f"{sum(a >= 0.9 for a in aris)}/{len(group)}", _mean(aris)]
            else:
                cells += [f"{_mean(aris)} ({_mean(best)})", f"{found}/{len(group)}"]
        real = [d for d in tables if meta[d].get("separation") == "real"]
        cells.append(
            ", ".join(
                f"{picks[d]['algorithm']} k={picks[d]['k']}, {picks[d]['omega_squared']:.3f}"
                if picks[d] is not None
                else "none"
                for d in real
            )
            or "-"
        )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _mean(values: list[float]) -> str:
    return f"{np.mean(values):.3f}" if values else "-"


def prepare_lake(
    spark: SparkSession, name: str, folder: Path, *, seed: int, customers: Optional[int], overrides: list[str]
) -> None:
    """Without run.py: write the dataset and run the ingest and features stages in this process
    (the sweep is what rules.py redoes, so the rest of the pipeline is not needed), then record
    what the rule comparison reads in recovery.json."""
    dataset = make_dataset(name, seed, customers)
    write_inputs(dataset, folder)
    cfg = dataset_config(folder, overrides)
    run_ingest(cfg, spark)
    run_features(cfg, spark)
    best_kmeans = best_gmm = None
    if dataset.planted_k:
        best_kmeans, best_gmm = best_achievable_on(spark, cfg, dataset)
    meta = {
        "dataset": name,
        "separation": dataset.separation,
        "planted_k": dataset.planted_k,
        "best_ari_kmeans": best_kmeans,
        "best_ari_gmm": best_gmm,
        "best_ari": None if best_kmeans is None else max(best_kmeans, best_gmm),
        "as_of_date": dataset.as_of_date.isoformat(),
        "columns": dataset.columns,
        "timestamp_format": dataset.timestamp_format,
    }
    (folder / "recovery.json").write_text(json.dumps(meta, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="a run.py --work-dir")
    parser.add_argument("--datasets", help="comma-separated; default every dataset folder in the work dir")
    parser.add_argument("--horizon-days", type=int, default=180)
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="write and ingest the --datasets missing from the work dir here, without run.py",
    )
    parser.add_argument("--customers", type=int, help="with --prepare: customers per dataset")
    parser.add_argument("--seed", type=int, default=7, help="with --prepare: the generators' seed")
    parser.add_argument(
        "--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE", help="as given to run.py"
    )
    args = parser.parse_args()
    sessions: list[SparkSession] = []

    def session() -> SparkSession:
        """Started on first need: comparing cached fit tables needs no Spark."""
        if not sessions:
            sessions.append(get_spark(load_config(["local"], args.overrides).spark))
        return sessions[0]

    if args.datasets:
        names = args.datasets.split(",")
    elif args.prepare:
        names = [*DATASETS, REAL]
    else:
        names = sorted(p.name for p in args.work_dir.iterdir() if (p / "recovery.json").exists())
    tables, meta, selections = {}, {}, {}
    for name in names:
        folder = args.work_dir / name
        if args.prepare and not (folder / "recovery.json").exists():
            print(f"{name}: writing and ingesting", flush=True)
            prepare_lake(
                session(), name, folder, seed=args.seed, customers=args.customers, overrides=args.overrides
            )
        meta[name] = json.loads((folder / "recovery.json").read_text())
        cached = folder / "fits.csv"
        if not cached.exists():
            print(f"{name}: fitting the grid", flush=True)
            prepared = prepare(session(), folder, args.overrides)
            planted = None
            if meta[name]["planted_k"]:
                labels = pd.read_csv(folder / "raw" / "labels.csv", dtype={CUSTOMER_ID: str})
                planted = labels.set_index(CUSTOMER_ID)["persona"]
            spend = next_period_spend(folder, meta[name], args.horizon_days)
            table = fit_rows(prepared, planted=planted, spend=spend, say=lambda line: print(line, flush=True))
            table.to_csv(cached, index=False)
            prepared.vectors.unpersist()
        tables[name] = pd.read_csv(cached)
        selections[name] = dataset_config(folder, args.overrides).selection
    text = "\n".join(compare(tables, meta, selections))
    print(text)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    (args.work_dir / "rules.md").write_text(text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    main()
