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
from segmentation.tables import (
    ASSIGNMENT_ID,
    AVG_ORDER_VALUE,
    BOUNDARY_NEIGHBOURS,
    BOUNDARY_PROBABILITY,
    BOUNDARY_SHARE,
    CUSTOMER_COUNT,
    CUSTOMER_SHARE,
    DESCRIPTION,
    FEATURE,
    FEATURE_STATS,
    FREQUENCY,
    MEAN,
    MEAN_DAYS_BETWEEN_ORDERS,
    MEDIAN,
    MONETARY,
    P_ALIVE,
    RECENCY_DAYS,
    RETURN_SHARE,
    REVENUE_SHARE,
    RULE,
    RULE_PRECISION,
    RULE_RECALL,
    RULES_FIDELITY,
    SEGMENT_ID,
    SEGMENT_NAME,
    SHARE_OF_BOUNDARY,
    SHARE_OF_FROM,
    SPEND_TREND,
    TENURE_DAYS,
    VALUE_SHARE,
    Z_SCORE,
    clv_in,
    expected_purchases_in,
    value_horizons,
)
from segmentation.usefulness import SegmentationOutcome

# Features shown in the report's profile table and heatmap, when the profiles have them.
HEADLINE_FEATURES = (
    RECENCY_DAYS,
    FREQUENCY,
    MONETARY,
    AVG_ORDER_VALUE,
    TENURE_DAYS,
    MEAN_DAYS_BETWEEN_ORDERS,
    P_ALIVE,
    SPEND_TREND,
    RETURN_SHARE,
)


def identity_text(profile: Any) -> str:
    """How a segment relates to the previous assignment: new, kept, or new with its closest
    previous segment; `profile` has `match_jaccard`, `previous_segment_id` and `segment_id`."""
    if profile.match_jaccard is None:
        return "new"
    if profile.previous_segment_id == profile.segment_id:
        return f"kept ({profile.match_jaccard:.2f})"
    return f"new, closest {profile.previous_segment_id} ({profile.match_jaccard:.2f})"


def render_report(
    meta: dict[str, Any],
    profiles: Sequence[dict[str, Any]],
    *,
    migration: Optional[MigrationSummary],
    previous_assignment: Optional[str],
    next_period: str = "",
    outcomes: Sequence[tuple[str, SegmentationOutcome]] = (),
) -> str:
    """The whole page. `profiles` are `segment_profiles` rows as dicts, one per segment;
    `next_period` introduces the titled `outcomes` of `segment evaluate` (or says why there are
    none)."""
    profiles = sorted(profiles, key=lambda p: p[SEGMENT_ID])
    labels = [f"{p[SEGMENT_ID]} {p[SEGMENT_NAME]}" for p in profiles]
    stats = [{s[FEATURE]: s for s in p[FEATURE_STATS]} for p in profiles]
    headline = [f for f in HEADLINE_FEATURES if all(f in s for s in stats)]
    sizes = np.array([p[CUSTOMER_COUNT] for p in profiles], dtype=float)
    z_scores = np.array([[s[f][Z_SCORE] or 0.0 for f in headline] for s in stats])

    sections = [
        f"<h1>Customer segments: {_e(meta[ASSIGNMENT_ID])}</h1>",
        _table(["", ""], [[_e(key), _e(value)] for key, value in meta.items()]),
        "<h2>Segments</h2>",
        _table(
            ["id", "name", "description", "customers", "share", "revenue share", "boundary", "identity"],
            [
                [
                    p[SEGMENT_ID],
                    _e(p[SEGMENT_NAME]),
                    _e(p[DESCRIPTION]),
                    f"{p[CUSTOMER_COUNT]:,}",
                    f"{p[CUSTOMER_SHARE]:.1%}",
                    f"{p[REVENUE_SHARE]:.1%}",
                    _percent(p.get(BOUNDARY_SHARE)),
                    _e(identity_text(_Attributes(p))),
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
        _image(plots.profile_heatmap(labels, z_scores, headline, title="segment means, population z-scores")),
        *_value(labels, profiles, stats),
        *_boundary(labels, profiles),
        "<h2>Rules</h2>",
        "<p>One decision tree per segment against the rest, on the original features. "
        "Recall: share of the segment's customers its rule covers; precision: share of the "
        "customers the rule covers that are in the segment. Read as one list, most precise clause "
        "first, the first clause a customer meets placing them, the rules place "
        f"{_percent(profiles[0][RULES_FIDELITY])} of customers in their segment (fidelity).</p>",
        _table(
            ["segment", "rule", "recall", "precision"],
            [
                [
                    _e(label),
                    f"<code>{_e(p[RULE])}</code>",
                    _percent(p[RULE_RECALL]),
                    _percent(p[RULE_PRECISION]),
                ]
                for label, p in zip(labels, profiles, strict=True)
            ],
        ),
        *next_period_section(next_period, outcomes),
        "<h2>Migration from the previous assignment</h2>",
        _migration(migration, previous_assignment),
    ]
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>Segments {_e(meta[ASSIGNMENT_ID])}</title><style>{_STYLE}</style></head>"
        "<body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def _boundary(labels: list[str], profiles: Sequence[dict[str, Any]]) -> list[str]:
    """Per segment, the share of its customers on a boundary and the segments they sit
    between it and (`boundary_neighbours`)."""
    if all(p.get(BOUNDARY_SHARE) is None for p in profiles):
        return []
    by_id = {p[SEGMENT_ID]: label for label, p in zip(labels, profiles, strict=True)}
    rows = [
        [
            _e(label),
            _percent(p.get(BOUNDARY_SHARE)),
            _e(
                ", ".join(
                    f"{by_id.get(n[SEGMENT_ID], n[SEGMENT_ID])} ({n[SHARE_OF_BOUNDARY]:.0%})"
                    for n in p.get(BOUNDARY_NEIGHBOURS) or []
                )
                or "-"
            ),
        ]
        for label, p in zip(labels, profiles, strict=True)
    ]
    return [
        "<h2>Boundary customers</h2>",
        "<p>Customers whose most probable segment has a probability below "
        f"{profiles[0][BOUNDARY_PROBABILITY]:g}: their share of each "
        "segment, and the segments they come second in (share of the segment's boundary "
        "customers).</p>",
        _table(["segment", "boundary share", "between it and"], rows),
    ]


def eta_text(value: Optional[float]) -> str:
    """An eta squared as the report and the CLI print it; `-` when the outcome does not vary."""
    return "-" if value is None else f"{value:.4f}"


def next_period_section(intro: str, outcomes: Sequence[tuple[str, SegmentationOutcome]]) -> list[str]:
    """What each segmentation's customers did after the assignment's date (`segment evaluate`);
    `intro` alone when there is nothing to show yet, nothing without it."""
    if not intro:
        return []
    sections = ["<h2>Next period</h2>", f"<p>{_e(intro)}</p>"]
    for title, outcome in outcomes:
        sections += [
            f"<h3>{title}: eta squared of spend {eta_text(outcome.eta_squared_spend)}, of buying again "
            f"{eta_text(outcome.eta_squared_bought_again)}</h3>",
            _table(
                ["segment", "customers", "bought again", "spend each", "orders each", "spend share"],
                [
                    [
                        _e(f"{segment.segment_id} {segment.segment_name}"),
                        f"{segment.customers:,}",
                        _percent(segment.bought_again_share),
                        f"{segment.mean_spend:,.2f}",
                        f"{segment.mean_orders:,.2f}",
                        _percent(segment.spend_share),
                    ]
                    for segment in outcome.segments
                ],
            ),
        ]
    return sections


class _Attributes:
    """Attribute access to a profile dict, for `_identity`."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.__dict__.update(row)


def _migration(migration: Optional[MigrationSummary], previous: Optional[str]) -> str:
    if migration is None:
        return "<p>This is the first assignment; there is nothing to compare with.</p>"
    targets = migration.targets()
    rows = []
    for source in migration.sources():
        row = [_e(migration.label(source, "new customers"))]
        for target in targets:
            cell = migration.cell(source, target)
            row.append(f"{cell[CUSTOMER_COUNT]:,} ({cell[SHARE_OF_FROM]:.0%})" if cell else "")
        retention = migration.retention.get(source)
        row.append(_percent(retention) if retention is not None else "")
        rows.append(row)
    return (
        f"<p>From {_e(previous)}: {migration.new_customers:,} customers new, "
        f"{migration.gone_customers:,} gone. Rows: segment before; columns: segment now.</p>"
        + _table(["before \\ now", *[_e(migration.label(t, "gone")) for t in targets], "retention"], rows)
    )


def _value(labels: list[str], profiles: Sequence[dict[str, Any]], stats: list[dict[str, Any]]) -> list[str]:
    """Mean P(alive), expected purchases and CLV per segment and its share of the base's
    expected value, when the assignment's features carried customer_value (`segment clv`)."""
    horizons = value_horizons(list(stats[0]))
    if not horizons or all(p.get(VALUE_SHARE) is None for p in profiles):
        return []
    h = horizons[-1]
    columns = (P_ALIVE, expected_purchases_in(h), clv_in(h))
    rows = [
        [_e(label), *[_mean(s.get(c)) for c in columns], _percent(p.get(VALUE_SHARE))]
        for label, p, s in zip(labels, profiles, stats, strict=True)
    ]
    return [
        "<h2>Value</h2>",
        f"<p>Means per segment from customer_value (BG/NBD and Gamma-Gamma, `segment clv`), over the "
        f"next {h} time units; value share: the segment's share of the customers' expected value.</p>",
        _table(["segment", "P(alive)", f"expected purchases ({h})", f"CLV ({h})", "value share"], rows),
    ]


def _mean(stats: Optional[dict[str, Any]]) -> str:
    return "-" if stats is None or stats[MEAN] is None else f"{stats[MEAN]:,.2f}"


def _stat(stats: dict[str, Any]) -> str:
    median, z = stats[MEDIAN], stats[Z_SCORE]
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
