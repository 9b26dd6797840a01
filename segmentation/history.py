"""Change between assignment versions: membership rows for the SCD2 table, migration
matrices, and the list of assignment versions from the Delta commit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from segmentation.assign import ASSIGNMENT_ID, SEGMENT_ID, SEGMENT_NAME
from segmentation.features import CUSTOMER_ID

# A customer's membership row changes when either of these does.
MEMBERSHIP_TRACKED = [SEGMENT_ID, SEGMENT_NAME]


def membership_rows(assignments: DataFrame) -> DataFrame:
    """One row per customer of one assignment, as `segment_membership` tracks it."""
    return assignments.select(CUSTOMER_ID, SEGMENT_ID, SEGMENT_NAME, ASSIGNMENT_ID, "model_version")


def migration(before: DataFrame, after: DataFrame) -> DataFrame:
    """Customers per (segment before, segment after); a null segment means the customer is not
    in that assignment (new or gone). `share_of_from` is the share of the row's "before" segment."""
    old = before.select(
        CUSTOMER_ID,
        F.col(SEGMENT_ID).alias("from_segment_id"),
        F.col(SEGMENT_NAME).alias("from_segment_name"),
    )
    new = after.select(
        CUSTOMER_ID,
        F.col(SEGMENT_ID).alias("to_segment_id"),
        F.col(SEGMENT_NAME).alias("to_segment_name"),
    )
    counts = (
        old.join(new, CUSTOMER_ID, "full")
        .groupBy("from_segment_id", "from_segment_name", "to_segment_id", "to_segment_name")
        .agg(F.count(F.lit(1)).alias("customers"))
    )
    return counts.withColumn(
        "share_of_from",
        F.col("customers") / F.sum("customers").over(Window.partitionBy("from_segment_id")),
    )


@dataclass(frozen=True)
class MigrationSummary:
    cells: list[dict[str, Any]]  # rows of `migration`, collected (at most (k + 1)^2)
    new_customers: int
    gone_customers: int
    retention: dict[int, float]  # per "before" segment: share still in the same segment id
    names: dict[int, str]

    @classmethod
    def from_cells(cls, cells: list[dict[str, Any]]) -> MigrationSummary:
        names, sizes, stayed = {}, {}, {}
        for cell in cells:
            for side in ("from", "to"):
                if cell[f"{side}_segment_id"] is not None:
                    names[cell[f"{side}_segment_id"]] = cell[f"{side}_segment_name"]
            source = cell["from_segment_id"]
            if source is not None:
                sizes[source] = sizes.get(source, 0) + cell["customers"]
                if cell["to_segment_id"] == source:
                    stayed[source] = cell["customers"]
        return cls(
            cells=cells,
            new_customers=sum(c["customers"] for c in cells if c["from_segment_id"] is None),
            gone_customers=sum(c["customers"] for c in cells if c["to_segment_id"] is None),
            retention={segment: stayed.get(segment, 0) / size for segment, size in sizes.items()},
            names=names,
        )

    def matrix_lines(self) -> list[str]:
        """The matrix as text: rows "from", columns "to", counts with row shares."""
        sources = sorted({c["from_segment_id"] for c in self.cells}, key=_none_last)
        targets = sorted({c["to_segment_id"] for c in self.cells}, key=_none_last)
        lookup = {(c["from_segment_id"], c["to_segment_id"]): c for c in self.cells}
        texts = {key: f"{cell['customers']:,} ({cell['share_of_from']:.0%})" for key, cell in lookup.items()}
        corner = "from \\ to"
        width = max(*(len(self._label(t, "gone")) for t in targets), *(len(t) for t in texts.values())) + 2
        first = max(len(corner), *(len(self._label(source, "new")) for source in sources)) + 2
        lines = [f"{corner:<{first}}" + "".join(f"{self._label(t, 'gone'):>{width}}" for t in targets)]
        for source in sources:
            row = f"{self._label(source, 'new'):<{first}}"
            row += "".join(f"{texts.get((source, target), '-'):>{width}}" for target in targets)
            lines.append(row)
        return lines

    def _label(self, segment: Optional[int], missing: str) -> str:
        return missing if segment is None else f"{segment} {self.names[segment]}"


def previous_assignment_id(profiles: DataFrame, assigned_at: Any) -> Optional[str]:
    """The assignment made most recently before `assigned_at`, the one a report compares with;
    `profiles` is `segment_profiles` (k rows per assignment)."""
    previous = (
        profiles.filter(F.col("assigned_at") < F.lit(assigned_at))
        .groupBy(ASSIGNMENT_ID)
        .agg(F.max("assigned_at").alias("assigned_at"))
        .orderBy(F.desc("assigned_at"), F.desc(ASSIGNMENT_ID))
        .first()
    )
    return previous[ASSIGNMENT_ID] if previous is not None else None


def _none_last(value: Optional[int]) -> tuple[bool, int]:
    return (value is None, value or 0)


def assignment_versions(commits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The commits of `segment_assignments` that wrote an assignment, oldest first."""
    return [
        {"version": c["version"], "timestamp": c["timestamp"], **c["user_metadata"]}
        for c in commits
        if c["user_metadata"].get("stage") == "assign"
    ]
