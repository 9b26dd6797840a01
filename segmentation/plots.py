"""Sweep plots from small driver-side summaries (one row per fit or per segment, or a sample).

Figures are returned, not saved, so the caller decides where they go (MLflow, a report). They
are built as bare `Figure` objects, without pyplot's global state, so they are safe in threads
and need no display or closing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from segmentation.tables import ALGORITHM, K

SWEEP_METRICS = (
    ("silhouette", "silhouette (higher is better)"),
    ("davies_bouldin", "Davies-Bouldin (lower is better)"),
    ("calinski_harabasz", "Calinski-Harabasz (higher is better)"),
    ("within_ss", "within-cluster sum of squares"),
    ("min_segment_share", "smallest segment share"),
    ("size_entropy", "segment size entropy"),
)


def metrics_against_k(leaderboard: list[dict[str, Any]]) -> Figure:
    """Each metric against k, one line per algorithm; where the grid holds several fits per
    (algorithm, k), the one with the highest silhouette stands for it."""
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for row in leaderboard:
        key = (row[ALGORITHM], row[K])
        if key not in best or row.get("silhouette", -2.0) > best[key].get("silhouette", -2.0):
            best[key] = row
    figure = Figure(figsize=(15, 8), layout="constrained")
    axes = figure.subplots(2, 3)
    for axis, (metric, title) in zip(axes.flat, SWEEP_METRICS, strict=True):
        for algorithm in sorted({algorithm for algorithm, _ in best}):
            ks = sorted(k for name, k in best if name == algorithm and best[name, k].get(metric) is not None)
            axis.plot(ks, [best[algorithm, k][metric] for k in ks], marker="o", label=algorithm)
        axis.set_title(title)
        axis.set_xlabel("k")
        axis.grid(alpha=0.3)
    axes.flat[0].legend()
    return figure


def segment_sizes(labels: list[Any], sizes: np.ndarray, title: str) -> Figure:
    figure = Figure(figsize=(max(8, 1.1 * len(labels)), 4.5), layout="constrained")
    axis = figure.subplots()
    shares = sizes / sizes.sum()
    bars = axis.bar([str(label) for label in labels], sizes)
    if any(len(str(label)) > 4 for label in labels):
        axis.tick_params(axis="x", labelrotation=30)
    for bar, share in zip(bars, shares, strict=True):
        axis.annotate(
            f"{share:.1%}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom"
        )
    axis.set_xlabel("segment")
    axis.set_ylabel("customers")
    axis.set_title(title)
    return figure


def profile_heatmap(
    labels: list[str], centroids: np.ndarray, feature_columns: list[str], *, title: str
) -> Figure:
    """One row per segment, one column per feature, cells coloured by z-score."""
    size = (1.2 * len(feature_columns) + 3, 0.5 * len(labels) + 2.5)
    figure = Figure(figsize=size, layout="constrained")
    axis = figure.subplots()
    limit = max(float(np.abs(centroids).max()), 1e-9)
    image = axis.imshow(centroids, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axis.set_xticks(range(len(feature_columns)), feature_columns, rotation=30, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    for (row, column), value in np.ndenumerate(centroids):
        axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axis, label="z-score")
    axis.set_title(title)
    return figure


def projection(points: np.ndarray, segments: np.ndarray, title: str) -> Figure:
    figure = Figure(figsize=(7, 6), layout="constrained")
    axis = figure.subplots()
    for segment in np.unique(segments):
        chosen = segments == segment
        axis.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.6, label=f"segment {segment}")
    axis.set_xlabel("principal component 1")
    axis.set_ylabel("principal component 2")
    axis.legend(markerscale=3, fontsize=8)
    axis.set_title(title)
    return figure


def clv_tracking(holdout: Any, *, time_unit: str) -> Figure:
    """Cumulative repeat purchases of the base over the holdout, predicted against actual: the
    tracking plot of Fader, Hardie and Lee (2005), figure 1 (`holdout` is a HoldoutComparison)."""
    steps = len(holdout.cumulative_predicted)
    times = [holdout.periods * (k + 1) / steps for k in range(steps)]
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axis = figure.subplots()
    axis.plot(times, holdout.cumulative_actual, marker="o", markersize=3, label="actual")
    axis.plot(times, holdout.cumulative_predicted, linestyle="--", label="BG/NBD expected")
    axis.set_xlabel(f"{time_unit} after the as-of date")
    axis.set_ylabel("cumulative repeat purchases")
    axis.set_title(f"holdout to {holdout.holdout_end}: predicted against actual")
    axis.grid(alpha=0.3)
    axis.legend()
    return figure


def clv_by_frequency(holdout: Any) -> Figure:
    """Mean holdout purchases per calibration frequency, predicted against actual: the paper's
    conditional-expectation figure (the last bin holds every frequency from its value up)."""
    bins = [row[0] for row in holdout.by_frequency]
    labels = [f"{x}+" if x == bins[-1] and x >= 7 else str(x) for x in bins]
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axis = figure.subplots()
    axis.plot(labels, [row[3] for row in holdout.by_frequency], marker="o", label="actual")
    axis.plot(labels, [row[2] for row in holdout.by_frequency], marker="s", linestyle="--", label="BG/NBD")
    axis.set_xlabel("repeat purchases in the calibration period")
    axis.set_ylabel("mean repeat purchases in the holdout")
    axis.grid(alpha=0.3)
    axis.legend()
    return figure
