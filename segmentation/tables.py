"""Every Delta table the project reads or writes: name, schema, keys, partitioning, column names.

This module is the table contract. Library code names columns only through the constants
below, and every write goes through `segmentation.io.write_table`, which checks the frame
against the table's declared schema before anything is committed (`check_frame`): a missing
column, a column of another type, or (where the schema is closed) a column the table does not
have is a `SchemaError` naming the table and the column. Key columns are declared NOT NULL, and
the tables are created with that schema, so Delta itself rejects a null key from any writer.

Three tables are open (`extensible`): `customer_features` gains a share column per category and
channel and the customer attributes the config maps, `customers` and `customers_rejected` the
configured extra columns. Their declared columns are the ones every run writes; the rest follow
the config.

Two ids must not be confused: `model_cluster_id` is the number a fitted model gives a cluster
(arbitrary, changes from fit to fit); `segment_id` is the business segment people see, kept
stable across assignments by identity matching (`segmentation.assign`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pyspark.sql import types as T

from segmentation.errors import SchemaError

# Canonical input and bronze columns.
CUSTOMER_ID = "customer_id"
ORDER_TS = "order_ts"
AMOUNT = "amount"
ORDER_ID = "order_id"
QUANTITY = "quantity"
CATEGORY = "category"
CHANNEL = "channel"
SIGNUP_DATE = "signup_date"
BIRTH_DATE = "birth_date"
GENDER = "gender"
REGION = "region"
REJECT_REASON = "reject_reason"
MALFORMED_ROW = "_malformed_row"  # raw CSV text of a row whose field count differs from the header
INGESTED_AT = "ingested_at"
PERSONA = "persona"

# Silver customer_features.
AS_OF_DATE = "as_of_date"
FREQUENCY = "frequency"
MONETARY = "monetary"
RECENCY_DAYS = "recency_days"
TENURE_DAYS = "tenure_days"
AVG_ORDER_VALUE = "avg_order_value"
SPEND_TREND = "spend_trend"
MEAN_DAYS_BETWEEN_ORDERS = "mean_days_between_orders"
STD_DAYS_BETWEEN_ORDERS = "std_days_between_orders"
GROSS_SPEND = "gross_spend"
RETURNED_AMOUNT = "returned_amount"
RETURN_SHARE = "return_share"
DISTINCT_CATEGORIES = "distinct_categories"
WEEKEND_SHARE = "weekend_share"
DAYS_SINCE_SIGNUP = "days_since_signup"
AGE_YEARS = "age_years"
CATEGORY_SHARE_PREFIX = "category_share"
CHANNEL_SHARE_PREFIX = "channel_share"

# Gold: assignments, profiles, membership, migrations.
ASSIGNMENT_ID = "assignment_id"
SEGMENT_ID = "segment_id"
SEGMENT_NAME = "segment_name"
MODEL_CLUSTER_ID = "model_cluster_id"
SEGMENT_PROBABILITY = "segment_probability"
DISTANCE_TO_CENTROID = "distance_to_centroid"
SECOND_SEGMENT_ID = "second_segment_id"  # the customer's second most probable segment
SECOND_PROBABILITY = "second_probability"
BOUNDARY = "boundary"  # the top probability is below assign.boundary_probability
# Scored frames only (not stored): the model's number of the second most probable cluster.
SECOND_MODEL_CLUSTER_ID = "second_model_cluster_id"
BOUNDARY_SHARE = "boundary_share"
BOUNDARY_PROBABILITY = "boundary_probability"  # the assign.boundary_probability an assignment used
BOUNDARY_NEIGHBOURS = "boundary_neighbours"
SHARE_OF_BOUNDARY = "share_of_boundary"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
MLFLOW_RUN_ID = "mlflow_run_id"
ALGORITHM = "algorithm"
K = "k"
FEATURES_AS_OF_DATE = "features_as_of_date"
FEATURES_TABLE_VERSION = "features_table_version"
ASSIGNED_AT = "assigned_at"
DESCRIPTION = "description"
CUSTOMER_COUNT = "customers"  # customers in a segment or a migration cell
CUSTOMER_SHARE = "customer_share"
REVENUE = "revenue"
REVENUE_SHARE = "revenue_share"
VALUE_SHARE = "value_share"  # share of the customers' expected value (customer_value) in a segment
FEATURE_STATS = "feature_stats"
FEATURE = "feature"
MEAN = "mean"
MEDIAN = "median"
Z_SCORE = "z_score"
RULE = "rule"
RULE_RECALL = "rule_recall"
RULE_PRECISION = "rule_precision"
RULES_FIDELITY = "rules_fidelity"
PREVIOUS_SEGMENT_ID = "previous_segment_id"
MATCH_JACCARD = "match_jaccard"
VALID_FROM = "valid_from"
VALID_TO = "valid_to"
IS_CURRENT = "is_current"
FROM_ASSIGNMENT_ID = "from_assignment_id"
TO_ASSIGNMENT_ID = "to_assignment_id"
FROM_SEGMENT_ID = "from_segment_id"
FROM_SEGMENT_NAME = "from_segment_name"
TO_SEGMENT_ID = "to_segment_id"
TO_SEGMENT_NAME = "to_segment_name"
SHARE_OF_FROM = "share_of_from"
COMPUTED_AT = "computed_at"

# Gold: segment_runs, the commit point of assignments (segmentation.publish).
WRITE_ID = "write_id"  # one attempt at writing an assignment's slices; sorts by start time
STATUS = "status"
PUBLISHED = "published"
PUBLISHED_AT = "published_at"
SEGMENT_COUNT = "segments"
ASSIGNMENTS_VERSION = "assignments_version"
PROFILES_VERSION = "profiles_version"
MEMBERSHIP_STATUS = "membership_status"  # null until applied: merged | unchanged | backfill
MEMBERSHIP_VERSION = "membership_version"
CONFIG_HASH = "config_hash"


# Gold: customer value (segmentation.clv).
MODEL = "model"
PARAMETERS = "parameters"
LOG_LIKELIHOOD = "log_likelihood"
CONVERGED = "converged"
TIME_UNIT = "time_unit"
FITTED_AT = "fitted_at"
REPEAT_PURCHASES = "x"  # orders - 1
LAST_PURCHASE_AGE = "t_x"  # time from the first order to the last
CUSTOMER_AGE = "T"  # time from the first order to the as-of date
REPEAT_ORDER_VALUE = "m_x"  # mean value of the repeat orders
P_ALIVE = "p_alive"
EXPECTED_ORDER_VALUE = "expected_order_value"
BG_NBD = "bg_nbd"
GAMMA_GAMMA = "gamma_gamma"


def expected_purchases_in(horizon: int) -> str:
    """`expected_purchases_<h>`: purchases expected in the next `horizon` time units."""
    return f"expected_purchases_{horizon}"


def clv_in(horizon: int) -> str:
    """`clv_<h>`: discounted value expected in the next `horizon` time units."""
    return f"clv_{horizon}"


def value_horizons(columns: list[str]) -> list[int]:
    """The horizons h whose `clv_<h>` is among `columns`, in order.

    >>> value_horizons(["frequency", clv_in(52), clv_in(13), "clv_total"])
    [13, 52]
    """
    prefix = clv_in(0).removesuffix("0")
    return sorted(
        int(c.removeprefix(prefix)) for c in columns if c.startswith(prefix) and c[len(prefix) :].isdigit()
    )


def orders_in_window(days: int) -> str:
    """`orders_<days>d`: orders in the last `days` days, as-of date included."""
    return f"orders_{days}d"


def spend_in_window(days: int) -> str:
    """`spend_<days>d`: net spend in the last `days` days, as-of date included."""
    return f"spend_{days}d"


@dataclass(frozen=True)
class Table:
    """One Delta table: what it is called, what it holds and how it is keyed and laid out."""

    name: str
    schema: T.StructType
    keys: tuple[str, ...]
    description: str
    partitioned_by: tuple[str, ...] = ()
    extensible: bool = False  # columns beyond `schema` may be written (they follow the config)
    # Slowly changing (type 2) tables: the business key, and the columns whose change closes
    # the key's current row and opens a new one (`segmentation.io.merge_scd2`).
    scd2_key: Optional[str] = None
    scd2_tracked: tuple[str, ...] = ()
    layer: str = ""  # bronze | silver | gold, for the table reference
    # Row rules as Delta CHECK constraints (name, SQL expression), held by the table itself so
    # that every writer, not only this code, obeys them.
    checks: tuple[tuple[str, str], ...] = ()

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]


def _fields(*specs: tuple[str, T.DataType], required: tuple[str, ...] = ()) -> T.StructType:
    """A schema whose `required` columns are NOT NULL (keys, and what every row must have)."""
    return T.StructType([T.StructField(name, dtype, name not in required) for name, dtype in specs])


def _within(column: str, low: float, high: Optional[float] = None) -> tuple[str, str]:
    """A CHECK constraint: `column` is null or in [low, high] (no upper bound without `high`)."""
    bound = f"`{column}` >= {low}" if high is None else f"`{column}` BETWEEN {low} AND {high}"
    return (f"{column}_range", f"`{column}` IS NULL OR {bound}")


_S, _D, _I, _L = T.StringType(), T.DoubleType(), T.IntegerType(), T.LongType()
_DATE, _TS, _B = T.DateType(), T.TimestampType(), T.BooleanType()

_TRANSACTION_COLUMNS = (
    (CUSTOMER_ID, _S),
    (ORDER_TS, _TS),
    (AMOUNT, _D),
    (ORDER_ID, _S),
    (QUANTITY, _D),
    (CATEGORY, _S),
    (CHANNEL, _S),
)
_CUSTOMER_COLUMNS = ((CUSTOMER_ID, _S), (SIGNUP_DATE, _DATE), (BIRTH_DATE, _DATE), (GENDER, _S), (REGION, _S))
_REJECT_COLUMNS = ((REJECT_REASON, _S), (INGESTED_AT, _TS))

TRANSACTIONS = Table(
    "transactions",
    _fields(*_TRANSACTION_COLUMNS, required=(CUSTOMER_ID, ORDER_TS, AMOUNT)),
    keys=(CUSTOMER_ID, ORDER_TS),
    description="Bronze: every valid transaction line, typed, on the canonical columns.",
    layer="bronze",
)
TRANSACTIONS_REJECTED = Table(
    "transactions_rejected",
    _fields(*[(name, _S) for name, _ in _TRANSACTION_COLUMNS], *_REJECT_COLUMNS, required=(REJECT_REASON,)),
    keys=(),
    description="Bronze: input lines that broke a rule, raw values kept as strings, with the rule.",
    layer="bronze",
)
CUSTOMERS = Table(
    "customers",
    _fields(*_CUSTOMER_COLUMNS, required=(CUSTOMER_ID,)),
    keys=(CUSTOMER_ID,),
    description="Bronze: customer attributes, one row per customer, plus input.customers.extra_columns.",
    extensible=True,
    layer="bronze",
)
CUSTOMERS_REJECTED = Table(
    "customers_rejected",
    _fields(*[(name, _S) for name, _ in _CUSTOMER_COLUMNS], *_REJECT_COLUMNS, required=(REJECT_REASON,)),
    keys=(),
    description="Bronze: customer rows that broke a rule, raw values kept as strings, with the rule.",
    extensible=True,
    layer="bronze",
)
CUSTOMER_PERSONAS = Table(
    "customer_personas",
    _fields((CUSTOMER_ID, _S), (PERSONA, _S), required=(CUSTOMER_ID, PERSONA)),
    keys=(CUSTOMER_ID,),
    description="The persona `segment generate` planted in each synthetic customer (labels for tests).",
    layer="bronze",
)
CUSTOMER_FEATURES = Table(
    "customer_features",
    _fields(
        (CUSTOMER_ID, _S),
        (AS_OF_DATE, _DATE),
        (FREQUENCY, _L),
        (MONETARY, _D),
        (RECENCY_DAYS, _I),
        (TENURE_DAYS, _I),
        (AVG_ORDER_VALUE, _D),
        (SPEND_TREND, _D),
        (MEAN_DAYS_BETWEEN_ORDERS, _D),
        (STD_DAYS_BETWEEN_ORDERS, _D),
        (GROSS_SPEND, _D),
        (RETURNED_AMOUNT, _D),
        (RETURN_SHARE, _D),
        (DISTINCT_CATEGORIES, _I),
        (WEEKEND_SHARE, _D),
        required=(CUSTOMER_ID, AS_OF_DATE),
    ),
    keys=(CUSTOMER_ID, AS_OF_DATE),
    partitioned_by=(AS_OF_DATE,),
    checks=(
        _within(FREQUENCY, 0),
        _within(RECENCY_DAYS, 0),
        _within(TENURE_DAYS, 0),
        _within(SPEND_TREND, -1, 1),
        _within(MEAN_DAYS_BETWEEN_ORDERS, 0),
        _within(STD_DAYS_BETWEEN_ORDERS, 0),
        _within(RETURN_SHARE, 0),
        _within(WEEKEND_SHARE, 0, 1),
        _within(DISTINCT_CATEGORIES, 0),
    ),
    description=(
        "Silver: one row of behavioural features per customer and as-of date; also orders_<w>d and "
        "spend_<w>d per features.windows_days (long, double), category_share_<level> and "
        "channel_share_<level> (double) and, with a customers table, its attributes."
    ),
    extensible=True,
    layer="silver",
)

_LINEAGE = (
    (MODEL_NAME, _S),
    (MODEL_VERSION, _S),
    (MLFLOW_RUN_ID, _S),
    (ALGORITHM, _S),
    (K, _I),
    (FEATURES_AS_OF_DATE, _DATE),
    (FEATURES_TABLE_VERSION, _L),
    (ASSIGNED_AT, _TS),
    (WRITE_ID, _S),
)
FEATURE_STATS_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField(FEATURE, _S, False),
            T.StructField(MEAN, _D, True),
            T.StructField(MEDIAN, _D, True),
            T.StructField(Z_SCORE, _D, True),
        ]
    )
)

BOUNDARY_NEIGHBOURS_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField(SEGMENT_ID, _I, False),
            T.StructField(CUSTOMER_COUNT, _L, False),
            T.StructField(SHARE_OF_BOUNDARY, _D, False),
        ]
    )
)

SEGMENT_ASSIGNMENTS = Table(
    "segment_assignments",
    _fields(
        (ASSIGNMENT_ID, _S),
        (CUSTOMER_ID, _S),
        (SEGMENT_ID, _I),
        (SEGMENT_NAME, _S),
        (SEGMENT_PROBABILITY, _D),
        (SECOND_SEGMENT_ID, _I),
        (SECOND_PROBABILITY, _D),
        (BOUNDARY, _B),
        (DISTANCE_TO_CENTROID, _D),
        (MODEL_CLUSTER_ID, _I),
        *_LINEAGE,
        required=(ASSIGNMENT_ID, CUSTOMER_ID, SEGMENT_ID, SEGMENT_NAME, MODEL_CLUSTER_ID, WRITE_ID),
    ),
    keys=(ASSIGNMENT_ID, WRITE_ID, CUSTOMER_ID),
    partitioned_by=(ASSIGNMENT_ID,),
    checks=(
        # One rule for the top probability's range and its being at least the runner-up's, so
        # that a bad top probability breaks exactly one constraint.
        (
            f"{SEGMENT_PROBABILITY}_range",
            f"`{SEGMENT_PROBABILITY}` IS NULL OR (`{SEGMENT_PROBABILITY}` BETWEEN 0 AND 1 AND "
            f"(`{SECOND_PROBABILITY}` IS NULL OR `{SECOND_PROBABILITY}` <= `{SEGMENT_PROBABILITY}`))",
        ),
        _within(SECOND_PROBABILITY, 0, 1),
        _within(DISTANCE_TO_CENTROID, 0),
    ),
    description=(
        "Gold: one row per customer and assignment, with the segment and the lineage of the model; "
        "only the slice segment_runs publishes (assignment_id, write_id) is the assignment. "
        "segment_probability is the probability of the assigned segment (the mixture's posterior, "
        "or for K-means the distance-based membership in docs/assignments.md), always the highest; "
        "second_segment_id and second_probability the runner-up (null with one segment); boundary: "
        "segment_probability < assign.boundary_probability."
    ),
    layer="gold",
)
SEGMENT_PROFILES = Table(
    "segment_profiles",
    _fields(
        (ASSIGNMENT_ID, _S),
        (SEGMENT_ID, _I),
        (SEGMENT_NAME, _S),
        (DESCRIPTION, _S),
        (CUSTOMER_COUNT, _L),
        (CUSTOMER_SHARE, _D),
        (REVENUE, _D),
        (REVENUE_SHARE, _D),
        (VALUE_SHARE, _D),
        (BOUNDARY_PROBABILITY, _D),
        (BOUNDARY_SHARE, _D),
        (BOUNDARY_NEIGHBOURS, BOUNDARY_NEIGHBOURS_TYPE),
        (FEATURE_STATS, FEATURE_STATS_TYPE),
        (RULE, _S),
        (RULE_RECALL, _D),
        (RULE_PRECISION, _D),
        (RULES_FIDELITY, _D),
        (PREVIOUS_SEGMENT_ID, _I),
        (MATCH_JACCARD, _D),
        (MODEL_CLUSTER_ID, _I),
        *_LINEAGE,
        required=(ASSIGNMENT_ID, SEGMENT_ID, SEGMENT_NAME, MODEL_CLUSTER_ID, WRITE_ID),
    ),
    keys=(ASSIGNMENT_ID, WRITE_ID, SEGMENT_ID),
    checks=(
        _within(CUSTOMER_COUNT, 0),
        _within(CUSTOMER_SHARE, 0, 1),
        _within(BOUNDARY_PROBABILITY, 0, 1),
        _within(BOUNDARY_SHARE, 0, 1),
        _within(RULE_RECALL, 0, 1),
        _within(RULE_PRECISION, 0, 1),
        _within(RULES_FIDELITY, 0, 1),
        _within(MATCH_JACCARD, 0, 1),
    ),
    description=(
        "Gold: one row per segment and assignment: size, revenue, feature statistics, name, rule; "
        "value_share is the segment's share of clv_<longest horizon> when customer_value has the date; "
        "boundary_share the share of its customers flagged boundary (top probability below "
        "boundary_probability), and boundary_neighbours the "
        "segments those sit between it and: per second_segment_id, its boundary customers and their "
        "share of the segment's boundary customers, most first (empty without boundary customers); "
        "rule_recall and rule_precision measure the segment's rule alone, rules_fidelity the rules "
        "read as one decision list (docs/assignments.md)."
    ),
    layer="gold",
)
SEGMENT_MEMBERSHIP = Table(
    "segment_membership",
    _fields(
        (CUSTOMER_ID, _S),
        (SEGMENT_ID, _I),
        (SEGMENT_NAME, _S),
        (ASSIGNMENT_ID, _S),
        (MODEL_VERSION, _S),
        (VALID_FROM, _DATE),
        (VALID_TO, _DATE),
        (IS_CURRENT, _B),
        required=(CUSTOMER_ID, SEGMENT_ID, SEGMENT_NAME, ASSIGNMENT_ID, VALID_FROM, IS_CURRENT),
    ),
    keys=(CUSTOMER_ID, VALID_FROM),
    checks=(("valid_range", f"`{VALID_TO}` IS NULL OR `{VALID_TO}` >= `{VALID_FROM}`"),),
    description=(
        "Gold: each customer's segment over time (slowly changing, type 2), from published assignments only."
    ),
    scd2_key=CUSTOMER_ID,
    scd2_tracked=(SEGMENT_ID, SEGMENT_NAME),
    layer="gold",
)
SEGMENT_MIGRATIONS = Table(
    "segment_migrations",
    _fields(
        (FROM_ASSIGNMENT_ID, _S),
        (TO_ASSIGNMENT_ID, _S),
        (FROM_SEGMENT_ID, _I),
        (FROM_SEGMENT_NAME, _S),
        (TO_SEGMENT_ID, _I),
        (TO_SEGMENT_NAME, _S),
        (CUSTOMER_COUNT, _L),
        (SHARE_OF_FROM, _D),
        (COMPUTED_AT, _TS),
        required=(FROM_ASSIGNMENT_ID, TO_ASSIGNMENT_ID),
    ),
    keys=(FROM_ASSIGNMENT_ID, TO_ASSIGNMENT_ID, FROM_SEGMENT_ID, TO_SEGMENT_ID),
    checks=(_within(CUSTOMER_COUNT, 0), _within(SHARE_OF_FROM, 0, 1)),
    description=(
        "Gold: customers per (segment before, segment after) between two assignments; a null "
        "segment id (allowed in this key) is a customer new to or gone from an assignment."
    ),
    layer="gold",
)

CLV_FITS = Table(
    "clv_fits",
    _fields(
        (AS_OF_DATE, _DATE),
        (MODEL, _S),
        (PARAMETERS, T.MapType(_S, _D)),
        (LOG_LIKELIHOOD, _D),
        (CUSTOMER_COUNT, _L),
        (CONVERGED, _B),
        (TIME_UNIT, _S),
        (FITTED_AT, _TS),
        required=(AS_OF_DATE, MODEL, PARAMETERS, TIME_UNIT),
    ),
    keys=(AS_OF_DATE, MODEL),
    description=(
        "Gold: one row per as-of date and model (bg_nbd: r, alpha, a, b; gamma_gamma: p, q, v) with "
        "its maximum-likelihood parameters, log-likelihood, customers fitted and convergence."
    ),
    layer="gold",
)
CUSTOMER_VALUE = Table(
    "customer_value",
    _fields(
        (CUSTOMER_ID, _S),
        (AS_OF_DATE, _DATE),
        (REPEAT_PURCHASES, _L),
        (LAST_PURCHASE_AGE, _D),
        (CUSTOMER_AGE, _D),
        (REPEAT_ORDER_VALUE, _D),
        (P_ALIVE, _D),
        (EXPECTED_ORDER_VALUE, _D),
        required=(CUSTOMER_ID, AS_OF_DATE),
    ),
    keys=(CUSTOMER_ID, AS_OF_DATE),
    partitioned_by=(AS_OF_DATE,),
    checks=(
        _within(REPEAT_PURCHASES, 0),
        _within(LAST_PURCHASE_AGE, 0),
        (f"{CUSTOMER_AGE}_range", f"`{CUSTOMER_AGE}` IS NULL OR `{CUSTOMER_AGE}` >= `{LAST_PURCHASE_AGE}`"),
        _within(P_ALIVE, 0, 1),
    ),
    description=(
        "Gold: per customer and as-of date, the BG/NBD inputs (x, t_x, T, m_x in clv.time_unit), "
        "P(alive), the expected order value and, per clv.horizons h, expected_purchases_<h> and "
        "clv_<h> (double)."
    ),
    extensible=True,
    layer="gold",
)

SEGMENT_RUNS = Table(
    "segment_runs",
    _fields(
        (ASSIGNMENT_ID, _S),
        (WRITE_ID, _S),
        (STATUS, _S),
        (MODEL_NAME, _S),
        (MODEL_VERSION, _S),
        (MLFLOW_RUN_ID, _S),
        (ALGORITHM, _S),
        (AS_OF_DATE, _DATE),
        (FEATURES_TABLE_VERSION, _L),
        (CUSTOMER_COUNT, _L),
        (SEGMENT_COUNT, _I),
        (ASSIGNMENTS_VERSION, _L),
        (PROFILES_VERSION, _L),
        (ASSIGNED_AT, _TS),
        (PUBLISHED_AT, _TS),
        (CONFIG_HASH, _S),
        (MEMBERSHIP_STATUS, _S),
        (MEMBERSHIP_VERSION, _L),
        required=(ASSIGNMENT_ID, WRITE_ID, STATUS, AS_OF_DATE, CUSTOMER_COUNT, PUBLISHED_AT),
    ),
    keys=(ASSIGNMENT_ID,),
    checks=(
        ("status_known", f"`{STATUS}` IN ('{PUBLISHED}')"),
        _within(CUSTOMER_COUNT, 0),
    ),
    description=(
        "Gold: the commit point and durable catalog of assignments, one row per published "
        "assignment: which slice (write_id) of segment_assignments and segment_profiles it is, "
        "its model, dates, row counts and Delta versions, and whether segment_membership has it."
    ),
    layer="gold",
)

ALL_TABLES = (
    TRANSACTIONS,
    TRANSACTIONS_REJECTED,
    CUSTOMERS,
    CUSTOMERS_REJECTED,
    CUSTOMER_PERSONAS,
    CUSTOMER_FEATURES,
    SEGMENT_ASSIGNMENTS,
    SEGMENT_PROFILES,
    SEGMENT_MEMBERSHIP,
    SEGMENT_MIGRATIONS,
    SEGMENT_RUNS,
    CLV_FITS,
    CUSTOMER_VALUE,
)
REJECTED = {TRANSACTIONS.name: TRANSACTIONS_REJECTED, CUSTOMERS.name: CUSTOMERS_REJECTED}


def check_frame(table: Table, schema: T.StructType) -> None:
    """Raise `SchemaError` naming the table and the first column that breaks its contract.

    Types are compared without nullability (Spark marks most computed columns nullable);
    null keys are caught by the NOT NULL columns of the table itself.
    """
    present = {f.name: f for f in schema.fields}
    for declared in table.schema.fields:
        actual = present.get(declared.name)
        if actual is None:
            raise SchemaError(
                f"table {table.name}: column {declared.name!r} ({declared.dataType.simpleString()}) is "
                f"missing; the frame has {', '.join(present) or 'no columns'}"
            )
        if _shape(actual.dataType) != _shape(declared.dataType):
            raise SchemaError(
                f"table {table.name}: column {declared.name!r} is {actual.dataType.simpleString()}, "
                f"the table holds {declared.dataType.simpleString()}"
            )
    extra = [name for name in present if name not in table.columns]
    if extra and not table.extensible:
        raise SchemaError(f"table {table.name}: column {extra[0]!r} is not in the table's schema")


def _shape(dtype: T.DataType) -> object:
    """A data type with every nullability flag removed."""
    if isinstance(dtype, T.StructType):
        return tuple((f.name, _shape(f.dataType)) for f in dtype.fields)
    if isinstance(dtype, T.ArrayType):
        return ("array", _shape(dtype.elementType))
    if isinstance(dtype, T.MapType):
        return ("map", _shape(dtype.keyType), _shape(dtype.valueType))
    return dtype.simpleString()


def ddl(schema: T.StructType) -> str:
    """Column definitions for `CREATE TABLE`, NOT NULL where the schema says so."""
    return ", ".join(
        f"`{f.name}` {f.dataType.simpleString()}{'' if f.nullable else ' NOT NULL'}" for f in schema.fields
    )
