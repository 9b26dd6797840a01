"""Bronze: map raw input onto the canonical contract, parse types, and split good rows from rejects.

Every row that breaks a rule keeps its raw values and gets a `reject_reason`; the job writes
those to `<table>_rejected`. A column whose values mostly fail to parse is a contract error
(wrong format string, wrong mapping), not bad rows, and stops the run with examples.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, Optional

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from segmentation.config import CustomerColumns, CustomersInput, TransactionColumns, TransactionsInput
from segmentation.errors import InputError
from segmentation.tables import (
    AMOUNT,
    BIRTH_DATE,
    CATEGORY,
    CHANNEL,
    CUSTOMER_ID,
    CUSTOMERS,
    GENDER,
    MALFORMED_ROW,
    ORDER_ID,
    ORDER_TS,
    QUANTITY,
    REGION,
    REJECT_REASON,
    SIGNUP_DATE,
    TRANSACTIONS,
)

_RAW = "__raw"
_EXAMPLES = 5

ColumnKind = Literal["id", "string", "timestamp", "date", "double"]


@dataclass(frozen=True)
class ColumnRule:
    """One canonical column: how to parse it and whether a row without it is rejected."""

    name: str
    kind: ColumnKind
    required: bool = False


TRANSACTION_RULES = (
    ColumnRule(CUSTOMER_ID, "id", required=True),
    ColumnRule(ORDER_TS, "timestamp", required=True),
    ColumnRule(AMOUNT, "double", required=True),
    ColumnRule(ORDER_ID, "string"),
    ColumnRule(QUANTITY, "double"),
    ColumnRule(CATEGORY, "string"),
    ColumnRule(CHANNEL, "string"),
)

CUSTOMER_RULES = (
    ColumnRule(CUSTOMER_ID, "id", required=True),
    ColumnRule(SIGNUP_DATE, "date"),
    ColumnRule(BIRTH_DATE, "date"),
    ColumnRule(GENDER, "string"),
    ColumnRule(REGION, "string"),
)


@dataclass(frozen=True)
class ParsedInput:
    """`valid` holds typed canonical columns; `rejected` raw strings plus `reject_reason`."""

    table: str
    valid: DataFrame
    rejected: DataFrame
    parsed: DataFrame
    source: str = ""  # file or table read, for messages


@dataclass(frozen=True)
class RejectReport:
    table: str
    rows_read: int
    rows_rejected: int
    rejects_by_reason: dict[str, int]

    @property
    def reject_share(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    def describe(self) -> str:
        reasons = ", ".join(
            f"{reason}: {count:,}" for reason, count in sorted(self.rejects_by_reason.items())
        )
        return f"{self.rows_rejected:,} of {self.rows_read:,} rows ({self.reject_share:.2%}) rejected" + (
            f" ({reasons})" if reasons else ""
        )


def protect_pii(raw: DataFrame, pii: dict[str, str], *, salt: Optional[str], table: str) -> DataFrame:
    """Drop or salt-and-hash PII columns before anything else sees them, e.g.
    `protect_pii(raw, {"email": "hash", "name": "drop"}, salt="s3cret", table="customers")`."""
    missing = [column for column in pii if column not in raw.columns]
    if missing:
        raise InputError(f"table {table}: PII column {missing[0]!r} configured but not in the input")
    if any(action == "hash" for action in pii.values()) and not salt:
        raise InputError(
            f"table {table}: PII hashing needs a salt; set ingest.pii_salt or the env var named "
            "by ingest.pii_salt_env"
        )
    for column, action in pii.items():
        if action == "drop":
            raw = raw.drop(column)
        else:
            raw = raw.withColumn(column, F.sha2(F.concat(F.lit(salt), F.col(column).cast("string")), 256))
    return raw


def select_canonical(
    raw: DataFrame,
    mapping: dict[str, Optional[str]],
    rules: tuple[ColumnRule, ...],
    *,
    table: str,
    source: str,
    extra_columns: tuple[str, ...] = (),
) -> DataFrame:
    """Rename source columns to canonical names; a missing required column is a contract error.
    CSV's `MALFORMED_ROW` passes through, for `parse_canonical` to reject those rows."""
    available = set(raw.columns) - {MALFORMED_ROW}
    selected = [F.col(MALFORMED_ROW)] if MALFORMED_ROW in raw.columns else []
    for rule in rules:
        source_column = mapping.get(rule.name)
        if source_column and source_column in available:
            selected.append(F.col(f"`{source_column}`").alias(rule.name))
        elif rule.required:
            raise InputError(
                f"table {table}: required column {rule.name!r} (source column {source_column!r}) "
                f"is missing from {source}; columns present: {', '.join(sorted(available))}"
            )
        else:
            selected.append(F.lit(None).cast("string").alias(rule.name))
    for column in extra_columns:
        if column not in available:
            raise InputError(f"table {table}: extra column {column!r} is missing from {source}")
        selected.append(F.col(f"`{column}`"))
    return raw.select(*selected)


def parse_canonical(
    canonical: DataFrame,
    rules: tuple[ColumnRule, ...],
    *,
    table: str,
    source: str = "",
    formats: Optional[dict[str, Optional[str]]] = None,
    row_rules: tuple[tuple[str, Column], ...] = (),
) -> ParsedInput:
    """Type every canonical column and give each bad row its first broken rule as `reject_reason`.

    Before the columns' own rules: a CSV row whose field count differs from the header. Per
    column: missing (required), text that is not valid UTF-8 (the reader decoded it to U+FFFD),
    unparseable, and for numbers NaN or infinite (`NaN`, `Infinity`, `1e309`). `row_rules` are
    extra (reason, condition-on-parsed-columns) checks, tried after parsing.
    """
    formats = formats or {}
    dtypes = dict(canonical.dtypes)
    own = {rule.name for rule in rules} | {MALFORMED_ROW}
    passthrough = [column for column in canonical.columns if column not in own]
    parsed_columns, reasons = [], []
    if MALFORMED_ROW in canonical.columns:
        parsed_columns.append(F.col(MALFORMED_ROW))
        reasons.append(
            (F.col(MALFORMED_ROW).isNotNull(), "malformed row: its field count differs from the header")
        )
    for rule in rules:
        raw_value = F.col(rule.name)
        parsed = _parse(raw_value, rule.kind, dtype=dtypes[rule.name], fmt=formats.get(rule.kind))
        raw_string = F.nullif(F.trim(raw_value.cast("string")), F.lit(""))
        parsed_columns += [parsed.alias(rule.name), raw_string.alias(rule.name + _RAW)]
        raw_column, value = F.col(rule.name + _RAW), F.col(rule.name)
        if rule.required:
            reasons.append((raw_column.isNull(), f"missing {rule.name}"))
        reasons.append((raw_column.contains("\ufffd"), f"invalid UTF-8 text in {rule.name}"))
        reasons.append((raw_column.isNotNull() & value.isNull(), f"unparseable {rule.name}"))
        if rule.kind == "double":
            infinite = F.isnan(value) | (F.abs(value) == F.lit(float("inf")))
            reasons.append((value.isNotNull() & infinite, f"non-finite {rule.name}"))
    reasons += [(condition, reason) for reason, condition in row_rules]
    parsed = canonical.select(*parsed_columns, *passthrough)
    reject_reason = F.lit(None).cast("string")
    for condition, reason in reversed(reasons):
        reject_reason = F.when(condition, F.lit(reason)).otherwise(reject_reason)
    parsed = parsed.withColumn(REJECT_REASON, reject_reason)
    names = [rule.name for rule in rules]
    valid = parsed.filter(F.col(REJECT_REASON).isNull()).select(*names, *passthrough)
    rejected = parsed.filter(F.col(REJECT_REASON).isNotNull()).select(
        *[F.col(name + _RAW).alias(name) for name in names],
        *[F.col(column).cast("string") for column in passthrough],
        REJECT_REASON,
    )
    return ParsedInput(table=table, valid=valid, rejected=rejected, parsed=parsed, source=source)


def check_rejects(
    parsed_input: ParsedInput, rules: tuple[ColumnRule, ...], max_reject_share: float
) -> RejectReport:
    """Count rejects by reason in one pass; raise when a column or the table fails the contract."""
    parsed = parsed_input.parsed
    failed = {rule.name: F.col(rule.name + _RAW).isNotNull() & F.col(rule.name).isNull() for rule in rules}
    grouped = (
        parsed.groupBy(REJECT_REASON)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            *[F.sum(F.col(name + _RAW).isNotNull().cast("long")).alias(f"present_{name}") for name in failed],
            *[F.sum(condition.cast("long")).alias(f"failed_{name}") for name, condition in failed.items()],
        )
        .collect()
    )
    rows_read = sum(row["rows"] for row in grouped)
    if rows_read == 0:
        raise InputError(f"table {parsed_input.table}: the input {parsed_input.source} has no rows")
    for name, condition in failed.items():
        present = sum(row[f"present_{name}"] or 0 for row in grouped)
        failures = sum(row[f"failed_{name}"] or 0 for row in grouped)
        if present and failures / present > max_reject_share:
            examples = [
                row[0]
                for row in parsed.filter(condition).select(name + _RAW).distinct().limit(_EXAMPLES).collect()
            ]
            kind = next(rule.kind for rule in rules if rule.name == name)
            raise InputError(
                f"table {parsed_input.table}, column {name}: {failures:,} of {present:,} values "
                f"({failures / present:.1%}) cannot be parsed as {kind}; examples: {examples}; "
                "check input.*.columns and the timestamp/date format"
            )
    by_reason = {row[REJECT_REASON]: row["rows"] for row in grouped if row[REJECT_REASON] is not None}
    report = RejectReport(parsed_input.table, rows_read, sum(by_reason.values()), by_reason)
    if report.reject_share > max_reject_share:
        raise InputError(
            f"table {parsed_input.table}: {report.describe()}, above ingest.max_reject_share="
            f"{max_reject_share}; nothing was written"
        )
    return report


EARLIEST_ORDER_DATE = dt.datetime(1900, 1, 1)


def parse_transactions(
    raw: DataFrame, input_cfg: TransactionsInput, *, max_order_ts: dt.datetime, source: str
) -> ParsedInput:
    """Canonical, typed transactions. Rows dated after `max_order_ts` (a clock error: the
    future of the run) or before 1900 are rejected; rows after the features' as-of date are
    kept, since features, CLV and holdouts each select by their own date."""
    canonical = select_canonical(
        raw, _mapping(input_cfg.columns), TRANSACTION_RULES, table=TRANSACTIONS.name, source=source
    )
    if max_order_ts.tzinfo is not None:  # the session's time zone is UTC
        max_order_ts = max_order_ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
    latest = max_order_ts.replace(microsecond=0)
    return parse_canonical(
        canonical,
        TRANSACTION_RULES,
        table=TRANSACTIONS.name,
        source=source,
        formats={"timestamp": input_cfg.timestamp_format},
        row_rules=(
            (
                f"{ORDER_TS} after ingest.max_order_ts {latest.isoformat(sep=' ')}",
                F.col(ORDER_TS) > F.lit(latest),
            ),
            (
                f"{ORDER_TS} before {EARLIEST_ORDER_DATE.isoformat(sep=' ')}",
                F.col(ORDER_TS) < F.lit(EARLIEST_ORDER_DATE),
            ),
        ),
    )


def parse_customers(raw: DataFrame, input_cfg: CustomersInput, source: str) -> ParsedInput:
    """Canonical customers; every row of a customer_id listed twice with different values is rejected."""
    canonical = select_canonical(
        raw.dropDuplicates(),
        _mapping(input_cfg.columns),
        CUSTOMER_RULES,
        table=CUSTOMERS.name,
        source=source,
        extra_columns=tuple(input_cfg.extra_columns),
    )
    copies = F.count(F.lit(1)).over(Window.partitionBy(CUSTOMER_ID))
    return parse_canonical(
        canonical,
        CUSTOMER_RULES,
        table=CUSTOMERS.name,
        source=source,
        formats={"date": input_cfg.date_format},
        row_rules=((f"conflicting duplicate {CUSTOMER_ID}", copies > 1),),
    )


def _mapping(columns: TransactionColumns | CustomerColumns) -> dict[str, Optional[str]]:
    return columns.model_dump()


def _parse(value: Column, kind: ColumnKind, *, dtype: str, fmt: Optional[str]) -> Column:
    is_string = dtype == "string"
    if kind == "id":
        return F.nullif(F.trim(value.cast("string")), F.lit(""))
    if kind == "string":
        return F.nullif(value.cast("string"), F.lit(""))
    if kind == "double":
        return value.try_cast("double") if is_string else value.cast("double")
    if kind == "timestamp":
        if is_string and fmt:
            return F.try_to_timestamp(value, F.lit(fmt))
        return value.try_cast("timestamp")
    if is_string and fmt:
        return F.try_to_timestamp(value, F.lit(fmt)).cast("date")
    return value.try_cast("date")
