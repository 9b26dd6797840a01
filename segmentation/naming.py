"""Human-readable segment names and descriptions, derived from the profiles alone.

Each name of an RFM-style vocabulary scores every segment from its population z-scores:
r = -z(recency_days) (recent buyers score high), f = z(frequency), m = z(monetary),
a = z(avg_order_value), t = z(tenure_days). The best-scoring (segment, name) pair is taken
first, then the next best among what is left, so names are deterministic and unique within
an assignment. Segments that kept their identity from the previous assignment keep their name
and are not renamed. Beyond the vocabulary, segments are called "Segment <id>".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from segmentation.profiles import ClusterProfile
from segmentation.tables import AVG_ORDER_VALUE, FREQUENCY, MONETARY, RECENCY_DAYS, TENURE_DAYS

Scores = dict[str, float]

VOCABULARY: dict[str, Callable[[Scores], float]] = {
    "Champions": lambda s: (s["r"] + s["f"] + s["m"]) / 3,
    "Loyal customers": lambda s: (s["f"] + s["t"] + 0.5 * s["r"]) / 2.5,
    "Big spenders": lambda s: s["a"],
    "Potential loyalists": lambda s: (s["r"] + 0.5 * s["f"] - 0.5 * s["t"]) / 2,
    "New customers": lambda s: (s["r"] - s["t"]) / 2,
    "At risk": lambda s: (-s["r"] + s["f"] + s["t"]) / 3,
    "Can't lose them": lambda s: (-s["r"] + 2 * s["m"]) / 3,
    "Hibernating": lambda s: (-s["r"] - s["f"] + 0.5 * s["t"]) / 2.5,
    "Lost": lambda s: (-s["r"] - s["f"] - s["m"]) / 3,
    "One-time buyers": lambda s: (-s["f"] - 0.5 * s["t"] - 0.5 * s["a"]) / 2,
    "Need attention": lambda s: -(abs(s["r"]) + abs(s["f"]) + abs(s["m"])) / 3,
    "Bargain hunters": lambda s: -s["a"],
}


def rfm_scores(profile: ClusterProfile) -> Scores:
    return {
        "r": -profile.z(RECENCY_DAYS),
        "f": profile.z(FREQUENCY),
        "m": profile.z(MONETARY),
        "a": profile.z(AVG_ORDER_VALUE),
        "t": profile.z(TENURE_DAYS),
    }


def assign_names(profiles: list[ClusterProfile], kept: Iterable[int] = ()) -> None:
    """Set `segment_name` on every profile whose segment id is not in `kept` (those already
    carry their previous name); names stay unique."""
    kept = set(kept)
    taken = {p.segment_name for p in profiles if p.segment_id in kept}
    open_profiles = [p for p in profiles if p.segment_id not in kept]
    candidates = sorted(
        (
            (-score(rfm_scores(p)), p.segment_id, order, name)
            for p in open_profiles
            for order, (name, score) in enumerate(VOCABULARY.items())
            if name not in taken
        ),
    )
    named: dict[int, str] = {}
    for _, segment_id, _, name in candidates:
        if segment_id in named or name in taken:
            continue
        named[segment_id] = name
        taken.add(name)
    for profile in open_profiles:
        profile.segment_name = named.get(profile.segment_id, f"Segment {profile.segment_id}")


def describe(profile: ClusterProfile) -> str:
    """One line from the profile's medians and shares."""
    parts = [f"{profile.customer_share:.1%} of customers, {profile.revenue_share:.1%} of revenue"]
    facts = (
        (RECENCY_DAYS, "last order {:.0f} days ago"),
        (FREQUENCY, "{:.0f} order(s)"),
        (AVG_ORDER_VALUE, "{:,.2f} per order"),
        (TENURE_DAYS, "customer for {:.0f} days"),
    )
    medians = [template.format(profile.median(f)) for f, template in facts if profile.median(f) is not None]
    if medians:
        parts.append("median: " + ", ".join(medians))
    return "; ".join(parts)
