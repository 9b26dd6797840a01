"""Change between assignments: migration matrices and their summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from segmentation.tables import (
    CUSTOMER_COUNT,
    CUSTOMER_ID,
    FROM_SEGMENT_ID,
    FROM_SEGMENT_NAME,
    SEGMENT_ID,
    SEGMENT_NAME,
    SHARE_OF_FROM,
    TO_SEGMENT_ID,
    TO_SEGMENT_NAME,
)


def migration(before: DataFrame, after: DataFrame) -> DataFrame:
    """Customers per (segment before, segment after); a null segment means the customer is not
    in that assignment (new or gone). `share_of_from` is the share of the row's "before" segment."""
    old = before.select(
        CUSTOMER_ID,
        F.col(SEGMENT_ID).alias(FROM_SEGMENT_ID),
        F.col(SEGMENT_NAME).alias(FROM_SEGMENT_NAME),
    )
    new = after.select(
        CUSTOMER_ID,
        F.col(SEGMENT_ID).alias(TO_SEGMENT_ID),
        F.col(SEGMENT_NAME).alias(TO_SEGMENT_NAME),
    )
    counts = (
        old.join(new, CUSTOMER_ID, "full")
        .groupBy(FROM_SEGMENT_ID, FROM_SEGMENT_NAME, TO_SEGMENT_ID, TO_SEGMENT_NAME)
        .agg(F.count(F.lit(1)).alias(CUSTOMER_COUNT))
    )
    return counts.withColumn(
        SHARE_OF_FROM,
        F.col(CUSTOMER_COUNT) / F.sum(CUSTOMER_COUNT).over(Window.partitionBy(FROM_SEGMENT_ID)),
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
            for side_id, side_name in (
                (FROM_SEGMENT_ID, FROM_SEGMENT_NAME),
                (TO_SEGMENT_ID, TO_SEGMENT_NAME),
            ):
                if cell[side_id] is not None:
                    names[cell[side_id]] = cell[side_name]
            source = cell[FROM_SEGMENT_ID]
            if source is not None:
                sizes[source] = sizes.get(source, 0) + cell[CUSTOMER_COUNT]
                if cell[TO_SEGMENT_ID] == source:
                    stayed[source] = cell[CUSTOMER_COUNT]
        return cls(
            cells=cells,
            new_customers=sum(c[CUSTOMER_COUNT] for c in cells if c[FROM_SEGMENT_ID] is None),
            gone_customers=sum(c[CUSTOMER_COUNT] for c in cells if c[TO_SEGMENT_ID] is None),
            retention={segment: stayed.get(segment, 0) / size for segment, size in sizes.items()},
            names=names,
        )

    def sources(self) -> list[Optional[int]]:
        """The "before" segments, new customers (None) last."""
        return sorted({c[FROM_SEGMENT_ID] for c in self.cells}, key=_none_last)

    def targets(self) -> list[Optional[int]]:
        """The "after" segments, gone customers (None) last."""
        return sorted({c[TO_SEGMENT_ID] for c in self.cells}, key=_none_last)

    def cell(self, source: Optional[int], target: Optional[int]) -> Optional[dict[str, Any]]:
        return next(
            (c for c in self.cells if (c[FROM_SEGMENT_ID], c[TO_SEGMENT_ID]) == (source, target)), None
        )

    def label(self, segment: Optional[int], missing: str) -> str:
        """`<id> <name>`, or `missing` for the new / gone row or column."""
        return missing if segment is None else f"{segment} {self.names[segment]}"


def _none_last(value: Optional[int]) -> tuple[bool, int]:
    return (value is None, value or 0)
