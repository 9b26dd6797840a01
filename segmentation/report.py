"""The segment report: one self-contained static HTML page (plots embedded as PNG) built from
an assignment's profile rows and its migration from the previous assignment. Also the text
segment table the commands print. Input is k-sized; nothing here touches Spark or storage."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
from matplotlib.figure import Figure

from segmentation import plots
from segmentation.history import MigrationSummary

# Features shown in the report's profile table and heatmap, when the profiles have them.
HEADLINE_FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "tenure_days",
    "mean_days_between_orders",
    "spend_trend",
    "return_share",
)


def segment_table(profiles: Sequence[Any], matched: bool = False) -> list[str]:
    """Segments as text, largest first; `profiles` are profile rows or `ClusterProfile`s."""
    header = f"  {'id':>3}  {'segment':<22} {'customers':>10} {'share':>7} {'revenue':>8}"
    lines = [header + ("  identity (Jaccard)" if matched else "")]
    for p in sorted(profiles, key=lambda p: (-p.customers, p.segment_id)):
        line = (
            f"  {p.segment_id:>3}  {p.segment_name:<22} {p.customers:>10,} {p.customer_share:>7.1%} "
            f"{p.revenue_share:>8.1%}"
        )
        if matched:
            line += "  " + _identity(p)
        lines.append(line)
    return lines


def _identity(profile: Any) -> str:
    if profile.match_jaccard is None:
        return "new"
    if profile.previous_segment_id == profile.segment_id:
        return f"kept ({profile.match_jaccard:.2f})"
    return f"new, closest {profile.previous_segment_id} ({profile.match_jaccard:.2f})"


def render_report(
    meta: dict[str, Any],
    profiles: Sequence[dict[str, Any]],
    migration: Optional[MigrationSummary],
    previous_assignment: Optional[str],
) -> str:
    """The whole page. `profiles` are `segment_profiles` rows as dicts, one per segment."""
    profiles = sorted(profiles, key=lambda p: p["segment_id"])
    labels = [f"{p['segment_id']} {p['segment_name']}" for p in profiles]
    stats = [{s["feature"]: s for s in p["feature_stats"]} for p in profiles]
    headline = [f for f in HEADLINE_FEATURES if all(f in s for s in stats)]
    sizes = np.array([p["customers"] for p in profiles], dtype=float)
    z_scores = np.array([[s[f]["z_score"] or 0.0 for f in headline] for s in stats])

    sections = [
        f"<h1>Customer segments: {_e(meta['assignment_id'])}</h1>",
        _table(["", ""], [[_e(key), _e(value)] for key, value in meta.items()]),
        "<h2>Segments</h2>",
        _table(
            ["id", "name", "description", "customers", "share", "revenue share", "identity"],
            [
                [
                    p["segment_id"],
                    _e(p["segment_name"]),
                    _e(p["description"]),
                    f"{p['customers']:,}",
                    f"{p['customer_share']:.1%}",
                    f"{p['revenue_share']:.1%}",
                    _e(_identity(_Attributes(p))),
                ]
                for p in profiles
            ],
        ),
        _image(plots.segment_sizes(labels, sizes, "customers per segment")),
        "<h2>Profiles</h2>",
        "<p>Median per segment in original units; population z-score of the segment mean in brackets.</p>",
        _table(
            ["segment", *headline],
            [[_e(label), *[_stat(s[f]) for f in headline]] for label, s in zip(labels, stats, strict=True)],
        ),
        _image(plots.profile_heatmap(labels, z_scores, headline, "segment means, population z-scores")),
        "<h2>Rules</h2>",
        f"<p>A decision tree predicting the segment from the original features places "
        f"{_percent(profiles[0]['rules_fidelity'])} of customers in their segment (fidelity). "
        "Recall: share of the segment's customers its rule covers; precision: share of the "
        "customers the rule covers that are in the segment.</p>",
        _table(
            ["segment", "rule", "recall", "precision"],
            [
                [
                    _e(label),
                    f"<code>{_e(p['rule'])}</code>",
                    _percent(p["rule_recall"]),
                    _percent(p["rule_precision"]),
                ]
                for label, p in zip(labels, profiles, strict=True)
            ],
        ),
        "<h2>Migration from the previous assignment</h2>",
        _migration(migration, previous_assignment),
    ]
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>Segments {_e(meta['assignment_id'])}</title><style>{_STYLE}</style></head>"
        "<body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


class _Attributes:
    """Attribute access to a profile dict, for `_identity`."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.__dict__.update(row)


def _migration(migration: Optional[MigrationSummary], previous: Optional[str]) -> str:
    if migration is None:
        return "<p>This is the first assignment; there is nothing to compare with.</p>"
    sources = sorted({c["from_segment_id"] for c in migration.cells}, key=lambda v: (v is None, v or 0))
    targets = sorted({c["to_segment_id"] for c in migration.cells}, key=lambda v: (v is None, v or 0))
    cells = {(c["from_segment_id"], c["to_segment_id"]): c for c in migration.cells}

    def label(segment: Optional[int], missing: str) -> str:
        return missing if segment is None else f"{segment} {migration.names[segment]}"

    rows = []
    for source in sources:
        row = [_e(label(source, "new customers"))]
        for target in targets:
            cell = cells.get((source, target))
            row.append(f"{cell['customers']:,} ({cell['share_of_from']:.0%})" if cell else "")
        retention = migration.retention.get(source)
        row.append(_percent(retention) if retention is not None else "")
        rows.append(row)
    return (
        f"<p>From {_e(previous)}: {migration.new_customers:,} customers new, "
        f"{migration.gone_customers:,} gone. Rows: segment before; columns: segment now.</p>"
        + _table(["before \\ now", *[_e(label(t, "gone")) for t in targets], "retention"], rows)
    )


def _stat(stats: dict[str, Any]) -> str:
    median, z = stats["median"], stats["z_score"]
    median_text = "-" if median is None else f"{median:,.2f}"
    return median_text if z is None else f"{median_text} ({z:+.2f})"


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1%}"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='plot' src='data:image/png;base64,{encoded}'>"


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}code{white-space:pre-wrap}img{max-width:100%}"
)
