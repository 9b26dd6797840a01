"""Typed configuration: YAML files merged in order, then `--set` overrides, validated once.

The rest of the code receives these frozen pydantic models, never raw dicts. Every default
lives on a model field; `conf/base.yaml` sets only what the embedded default (generated data
on a laptop) needs beyond them. Loading names the offending key for an unknown key, a wrong
type, a value out of range or a missing required value:

    >>> cfg = load_config(["local"], ["generate.customers=1000"])
    >>> cfg.generate.customers
    1000
    >>> load_config(["local"], ["generate.customers=many"])
    Traceback (most recent call last):
    ...
    segmentation.errors.ConfigError: config key 'generate.customers' must be an integer, got 'many'

An overlay is a file path or the name of one shipped with the package (`local`, `cluster`,
`databricks`): a job started from the wheel alone, on a cluster or Databricks, has no `conf/`
folder beside it. The YAML files live in the top-level `conf/`; the wheel carries them as
`segmentation/conf/` (setup.py), read through importlib.resources so a zipped wheel in
spark-submit's `--py-files` works too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import warnings
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin, get_type_hints

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    WrapValidator,
    model_validator,
    with_config,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError
from typing_extensions import TypedDict, is_typeddict

from segmentation.errors import ConfigError


def _conf_dir() -> Traversable:
    """The configs shipped in the wheel, else (a source checkout) the top-level `conf/`."""
    packaged = resources.files("segmentation") / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


CONF_DIR = _conf_dir()
BASE_CONF = CONF_DIR / "base.yaml"
DEFAULT_OVERLAY = "local"

SourceFormat = Literal["csv", "parquet", "delta", "table"]
PiiAction = Literal["hash", "drop"]
Algorithm = Literal["kmeans", "bisecting_kmeans", "gaussian_mixture"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)


# Value types. YAML gives ints, floats, bools, strings and dates; `--set` values are YAML too.
# A bool is never an int or a float; an int is accepted for a float; a number given for a
# string becomes that string (`assign.model_version=3`), as does a dict key.


def _iso_date(value: Any) -> Any:
    """A `YYYY-MM-DD` string to a date; anything else goes on to the strict date check."""
    if not isinstance(value, str):
        return value
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise PydanticCustomError("date_format", "Input should be a date YYYY-MM-DD")


def _unique(noun: str) -> AfterValidator:
    """A list check: no item twice, the error naming what repeats."""

    def check(items: list[Any]) -> list[Any]:
        if len(set(items)) != len(items):
            raise ValueError(f"repeats a {noun}: {items}")
        return items

    return AfterValidator(check)


def _ascending(pair: list[float]) -> list[float]:
    if pair[0] >= pair[1]:
        raise ValueError(f"must be [low, high] with 0 <= low < high <= 1, got {pair}")
    return pair


def _in_written_order(value: Any, handler: Any) -> Any:
    """Validate, then keep the keys in the order written: a grid's order is its fits' order."""
    validated = handler(value)
    return {name: validated[name] for name in value}


Date = Annotated[dt.date, Strict(), BeforeValidator(_iso_date)]
Share = Annotated[StrictFloat, Field(ge=0, le=1)]
Positive = Annotated[StrictInt, Field(ge=1)]


def _rule(message: str) -> PydanticCustomError:
    """A cross-field rule's error; its message names its keys in full."""
    return PydanticCustomError("config_rule", message)


class _Section(BaseModel):
    """Base of every config section: unknown keys are errors and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class SparkConfig(_Section):
    """Used only when the job starts its own session: a local one, or a Spark Connect client when
    `remote` (or the environment's `SPARK_REMOTE`) names a server; never under spark-submit or
    Databricks, which hand the job their session."""

    remote: Optional[str] = Field(
        None,
        pattern=r"^sc://",
        description="Spark Connect server, `sc://host:port`; the environment's SPARK_REMOTE wins. "
        "With a remote, no local Spark is started and the other `spark.*` keys are not used.",
    )
    app_name: str = Field("customer-segmentation", description="Spark application name.")
    master: str = Field("local[*]", description="Spark master URL; `local[*]` uses every core.")
    driver_memory: str = Field(
        "4g",
        pattern=r"(?i)^[0-9]+([bkmgtp]|[kmgtp]b)?$",
        description="spark.driver.memory, a size such as `4g` or `512m`.",
    )
    shuffle_partitions: Optional[Positive] = Field(
        None, description="spark.sql.shuffle.partitions; null: 4 per core."
    )
    ui_enabled: StrictBool = Field(False, description="Start the Spark web UI.")
    maven_repo: str = Field(
        "~/.m2/repository", description="Local Maven repository where `make setup` put the Delta Lake jars."
    )
    local_dir: Optional[str] = Field(
        None, description="spark.local.dir for shuffle and spill files; null: Spark's default."
    )
    extra_conf: dict[str, str] = Field({}, description="Further Spark settings, `name: value`, set as given.")


_INTERVAL = r"^interval [1-9][0-9]* (hours|days|weeks)$"

with warnings.catch_warnings():
    # The key `schema` shadows BaseModel's deprecated `schema()` classmethod, which nothing here uses.
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class LakeConfig(_Section):
        """Where the Delta tables live: path-based under `root`, or metastore tables."""

        root: str = Field("lake", description="Folder of the path-based Delta tables: `<root>/<table>`.")
        catalog: Optional[str] = Field(
            None, description="With `schema`: tables are metastore tables `catalog.schema.table`."
        )
        schema: Optional[str] = Field(
            None, description="With `catalog`: tables are metastore tables `catalog.schema.table`."
        )
        log_retention: str = Field(
            "interval 30 days",
            pattern=_INTERVAL,
            description="`delta.logRetentionDuration` of every table: how long time travel reaches "
            "back. Nothing the project reads depends on it (segment_runs is the catalog of assignments).",
        )
        deleted_file_retention: str = Field(
            "interval 7 days",
            pattern=_INTERVAL,
            description="`delta.deletedFileRetentionDuration` of every table: the files VACUUM must "
            "keep; a reader or writer running longer than this may fail after a VACUUM.",
        )


class MlflowConfig(_Section):
    """`MLFLOW_TRACKING_URI` / `MLFLOW_REGISTRY_URI`, when set, win over the keys here."""

    tracking_uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking store.")
    registry_uri: Optional[str] = Field(None, description="MLflow model registry; null: the tracking URI.")
    experiment: str = Field("customer-segmentation", description="MLflow experiment name.")
    artifact_location: Optional[str] = Field(
        None,
        description="Artifact root, used only when the experiment is created; null: MLflow's default "
        "(./mlruns beside a SQLite store).",
    )
    dfs_tmpdir: Optional[str] = Field(
        None,
        description="Over Spark Connect: a folder both this process and the Spark server see, where "
        "Spark ML models are saved and loaded on their way to and from MLflow (MLflow's MLFLOW_DFS_TMP, "
        "which wins); on Databricks a Unity Catalog volume, `/Volumes/<catalog>/<schema>/<volume>/...`. "
        "null: MLflow's default, /tmp/mlflow (a Connect server on this machine).",
    )


class TransactionColumns(_Section):
    """Source column for each canonical column; an optional one set to null is not in the source."""

    customer_id: str = Field("customer_id", description="Source column of the customer id (read as text).")
    order_ts: str = Field("order_ts", description="Source column of the order timestamp or date.")
    amount: str = Field("amount", description="Source column of the net amount; negative is a return.")
    order_id: Optional[str] = Field(
        "order_id", description="Source column of the order id; null: an order is a (customer, time)."
    )
    quantity: Optional[str] = Field("quantity", description="Source column of the quantity.")
    category: Optional[str] = Field("category", description="Source column of the product category.")
    channel: Optional[str] = Field("channel", description="Source column of the sales channel.")


class CustomerColumns(_Section):
    """Source column for each canonical customer column; an optional one set to null is not in the source."""

    customer_id: str = Field("customer_id", description="Source column of the customer id (read as text).")
    signup_date: Optional[str] = Field("signup_date", description="Source column of the signup date.")
    birth_date: Optional[str] = Field("birth_date", description="Source column of the birth date.")
    gender: Optional[str] = Field("gender", description="Source column of the gender.")
    region: Optional[str] = Field("region", description="Source column of the region.")


class TransactionsInput(_Section):
    """The raw transactions: one row per order line."""

    path: str = Field(description="Location of the transactions: a path, or a table name for `table`.")
    format: SourceFormat = Field("parquet", description="Source format.")
    options: dict[str, str] = Field({}, description='Reader options, e.g. `{delimiter: ";"}`.')
    columns: TransactionColumns = Field(
        default_factory=TransactionColumns, description="Source column for each canonical column."
    )
    timestamp_format: Optional[str] = Field(
        None,
        description='Spark pattern for string timestamps, e.g. "dd/MM/yyyy HH:mm"; null: ISO dates and '
        "timestamps.",
    )
    pii: dict[str, PiiAction] = Field(
        {},
        description="PII source columns: hashed with the salt (`hash`) or dropped (`drop`) before writing.",
    )


class CustomersInput(_Section):
    """The optional customer attributes: one row per customer."""

    path: Optional[str] = Field(
        None, description="Location of the customers: a path, or a table name; null: no customer attributes."
    )
    format: SourceFormat = Field("parquet", description="Source format.")
    options: dict[str, str] = Field({}, description="Reader options.")
    columns: CustomerColumns = Field(
        default_factory=CustomerColumns, description="Source column for each canonical column."
    )
    date_format: Optional[str] = Field(None, description="Spark pattern for string dates; null: ISO dates.")
    extra_columns: list[str] = Field(
        [], description="Further source columns carried into the features as is."
    )
    pii: dict[str, PiiAction] = Field(
        {},
        description="PII source columns: hashed with the salt (`hash`) or dropped (`drop`) before writing.",
    )


class InputConfig(_Section):
    """The raw input read by `segment ingest`."""

    transactions: TransactionsInput = Field(description="The transactions source.")
    customers: CustomersInput = Field(default_factory=CustomersInput, description="The customers source.")


class IngestConfig(_Section):
    """Ingestion thresholds, duplicate lines and the PII salt."""

    dedupe: Literal["auto", "exact", "key", "none"] = Field(
        "auto",
        description="Repeated transaction lines: `exact` drops lines identical in every column, `key` "
        "lines equal on ingest.dedupe_key, `none` keeps all; `auto` is `exact` when an order id is "
        "mapped and `none` without one (identical lines are then separate purchases). Kept repeats "
        "are counted as possible duplicates.",
    )
    dedupe_key: list[str] = Field(
        [], description="Canonical transaction columns that identify a line, for dedupe `key`."
    )
    max_reject_share: Share = Field(
        0.05, description="A run fails, writing nothing, when more than this share of rows is rejected."
    )
    max_order_ts: Optional[dt.datetime] = Field(
        None,
        description="Transactions dated after this instant (UTC) are rejected as clock errors; null: "
        "the run's start. Transactions after features.as_of_date are kept: features and CLV select "
        "by their own as-of date, and a holdout needs the later ones.",
    )
    pii_salt: Optional[str] = Field(
        None, description="Salt for hashing PII when the environment variable is unset; prefer the variable."
    )
    pii_salt_env: str = Field(
        "SEGMENTATION_PII_SALT", description="Environment variable holding the PII salt; wins over pii_salt."
    )

    @model_validator(mode="after")
    def _key_when_needed(self) -> IngestConfig:
        """ingest.dedupe `key` needs ingest.dedupe_key, which names canonical transaction columns."""
        known = list(TransactionColumns.model_fields)
        stray = [column for column in self.dedupe_key if column not in known]
        if stray:
            raise _rule(
                f"config key 'ingest.dedupe_key' names {stray[0]!r}, not a transaction column "
                f"({', '.join(known)})"
            )
        if self.dedupe == "key" and not self.dedupe_key:
            raise _rule("config key 'ingest.dedupe' is key: list the columns in ingest.dedupe_key")
        return self


class GenerateConfig(_Section):
    """Synthetic input; written where `input.*.path` of the embedded default reads it."""

    transactions_path: str = Field(
        "data/generated/transactions", description="Where the generated transactions are written."
    )
    customers_path: str = Field(
        "data/generated/customers", description="Where the generated customers are written."
    )
    format: SourceFormat = Field("parquet", description="Format of the generated data.")
    customers: Positive = Field(50_000, description="Number of customers generated.")
    seed: StrictInt = Field(
        42, description="Seed: the same seed gives the same data whatever the partitioning."
    )
    start_date: Date = Field(dt.date(2023, 1, 1), description="Earliest possible order date.")
    end_date: Optional[Date] = Field(None, description="Latest order date; null: features.as_of_date.")
    dirty_share: Share = Field(
        0.002,
        description="Share of rows duplicated; a quarter of that each lose customer id or get a future date.",
    )
    partitions: Optional[Positive] = Field(
        None, description="Partitions of the generated data; null: one per 250k customers, at least 2."
    )


class FeaturesConfig(_Section):
    """The customer features: computed as of one date, over trailing windows."""

    as_of_date: Date = Field(description="Date the features are computed as of; also ingestion's cut-off.")
    # Each window names two columns (orders_<d>d, spend_<d>d): a repeat would name them twice.
    windows_days: Annotated[list[Positive], _unique("window")] = Field(
        [30, 90, 365], description="Trailing windows in days, each giving orders_<d>d and spend_<d>d."
    )
    trend_window_days: Positive = Field(
        90, description="spend_trend compares net spend in this many last days with the as many before."
    )
    top_categories: Annotated[StrictInt, Field(ge=0)] = Field(
        5,
        description="Categories with a share column, the top ones by gross spend (when categories is null).",
    )
    categories: Optional[list[str]] = Field(
        None, description="Categories with a share column; null: the top_categories by gross spend."
    )
    channels: Optional[list[str]] = Field(
        None, description="Channels with a share column; null: every channel seen."
    )


class ModelConfig(_Section):
    """What the clustering sees: the feature columns and their preprocessing, saved in the model."""

    feature_columns: Annotated[list[str], _unique("column")] = Field(
        min_length=1, description="customer_features columns the clustering uses."
    )
    log1p_columns: list[str] = Field([], description="Feature columns transformed by a signed log1p.")
    winsorize_quantiles: Optional[
        Annotated[list[Share], Field(min_length=2, max_length=2), AfterValidator(_ascending)]
    ] = Field(
        [0.01, 0.99],
        description="[low, high] quantiles each feature is clipped to (approxQuantile); null: no clipping.",
    )
    standardize: StrictBool = Field(True, description="Scale every feature to unit variance (not centred).")
    pca_components: Optional[Positive] = Field(
        None, description="Project on this many principal components before clustering; null: no PCA."
    )
    registered_name: str = Field(
        "customer-segmentation", description="MLflow registered model; catalog.schema.model in Unity Catalog."
    )
    alias: str = Field("champion", description="Registry alias moved to each new champion; assign loads it.")

    @model_validator(mode="after")
    def _columns_agree(self) -> ModelConfig:
        """Every model.log1p_columns entry is a feature column; model.pca_components is at most the
        number of feature columns."""
        stray = [column for column in self.log1p_columns if column not in self.feature_columns]
        if stray:
            raise _rule(f"config key 'model.log1p_columns' names {stray[0]!r}, not a feature column")
        if self.pca_components is not None and self.pca_components > len(self.feature_columns):
            raise _rule(
                f"config key 'model.pca_components' must be between 1 and the "
                f"{len(self.feature_columns)} feature columns, got {self.pca_components}"
            )
        return self


@with_config(ConfigDict(extra="allow"))
class AlgorithmGrid(
    TypedDict,
    total=False,
    extra_items=Annotated[
        list[Any], Field(min_length=1, description="Values of this estimator parameter (Spark ML's name).")
    ],
):
    """One algorithm's grid: `k` and any estimator parameter, each a non-empty list of values."""

    k: Annotated[
        list[Annotated[StrictInt, Field(ge=2)]],
        Field(min_length=1, description="Numbers of clusters to try."),
    ]


# Measured by bench/fit_levers.py and tests/test_fit_quality.py: a single k-means|| start lands
# 3-36% above scikit-learn's KMeans(n_init=10) about one time in four; three starts missed once
# (+4.0% at k=6, on vectors partitioned differently: k-means|| depends on the partitioning),
# five were within 1% in every case measured; bisecting K-means ended identical from every
# seed, so one start; the mixture keeps 3 (its starts differ, each costs several K-means').
DEFAULT_RESTARTS: dict[str, int] = {"kmeans": 5, "bisecting_kmeans": 1, "gaussian_mixture": 3}


def _restarts_per_algorithm(value: Any) -> Any:
    """One count for every algorithm (`sweep.restarts=1`), or a count per algorithm with the
    algorithms left out at their defaults."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return dict.fromkeys(ALGORITHMS, value)
    if isinstance(value, dict):
        unknown = sorted(set(map(str, value)) - set(ALGORITHMS))
        if unknown:
            raise ValueError(f"names unknown algorithm {unknown[0]!r}; known: {', '.join(ALGORITHMS)}")
        return {**DEFAULT_RESTARTS, **value}
    return value


class SweepConfig(_Section):
    """The grid of fits: per algorithm, every combination of the listed parameter values."""

    grid: dict[str, Annotated[AlgorithmGrid, WrapValidator(_in_written_order)]] = Field(
        description="Per algorithm, parameter: values to try; every combination is fitted."
    )
    algorithms: list[Algorithm] = Field(list(ALGORITHMS), description="Algorithms the sweep fits.")
    seed: StrictInt = Field(
        42,
        description="Seed of each grid point's first fit (restarts use seed+1, ...) and of the hash samples.",
    )
    max_rows: Positive = Field(
        500_000,
        description="Above this many customers: sweep on a seeded hash sample, refit the champion on all.",
    )
    restarts: Annotated[dict[Algorithm, Positive], BeforeValidator(_restarts_per_algorithm)] = Field(
        DEFAULT_RESTARTS,
        description="Fits per grid point from seed, seed+1, ...; the best (lowest cost, highest "
        "log-likelihood) is kept. One number for every algorithm, or per algorithm; unlisted "
        "algorithms keep the default.",
    )
    parallelism: Positive = Field(1, description="Fits run concurrently.")
    log_all_models: StrictBool = Field(
        False, description="Log every fit's model, not only the champion's (many seconds each)."
    )
    silhouette_max_rows: Positive = Field(
        200_000, description="Silhouette on a seeded hash sample above this many customers."
    )
    stability_sample: Annotated[StrictFloat, Field(gt=0, le=1)] = Field(
        0.8, description="Stability: refit on this hash sample share with another seed."
    )
    projection_rows: Positive = Field(2_000, description="Points in the 2-D projection plot.")
    mixture_regularization: Annotated[StrictFloat, Field(gt=0)] = Field(
        1e-6,
        description="Variance of the seeded uniform noise added to every dimension of the scaled "
        "vectors before a Gaussian mixture is fitted: Spark's mixture has no covariance floor "
        "(scikit-learn's reg_covar), and without one a component can narrow onto customers sharing "
        "exact values. The fitted model scores the noiseless vectors.",
    )
    fit_timeout_seconds: Annotated[StrictFloat, Field(gt=0)] = Field(
        300.0,
        description="A fit start still running after this many seconds is interrupted and skipped "
        "(Spark's Gaussian mixture can loop forever on a degenerate component); a grid point with "
        "no finished start is left out of the champion rule.",
    )

    @model_validator(mode="after")
    def _grid_covers_algorithms(self) -> SweepConfig:
        """sweep.grid names only known algorithms, and lists k for every algorithm in sweep.algorithms."""
        unknown = sorted(set(self.grid) - set(ALGORITHMS))
        if unknown:
            raise _rule(
                f"unknown config key 'sweep.grid.{unknown[0]}'; known algorithms: {', '.join(ALGORITHMS)}"
            )
        for algorithm in self.algorithms:
            if "k" not in self.grid.get(algorithm, {}):
                raise _rule(f"config key 'sweep.grid.{algorithm}.k' is missing: list the k to try")
        return self


ChampionRule = Literal[
    "silhouette", "calinski_harabasz", "davies_bouldin", "bic", "icl", "rank", "knee", "largest_stable_k"
]


class SelectionConfig(_Section):
    """The champion rule; docs/champion-rule.md explains it and the benchmark behind the default."""

    rule: ChampionRule = Field(
        "silhouette",
        description="How qualifying fits are ordered; the first stable one is the champion "
        "(docs/champion-rule.md).",
    )

    min_segment_share: Share = Field(
        0.02, description="A fit qualifies when its smallest segment holds at least this share of customers."
    )
    min_stability: Share = Field(
        0.8, description="A fit qualifies at this adjusted Rand index against a perturbed refit."
    )
    stability_candidates: Positive = Field(3, description="Leading fits whose stability is always measured.")
    silhouette_decimals: Annotated[StrictInt, Field(ge=0)] = Field(
        3, description="Silhouettes equal at this many decimals tie; the smaller k wins."
    )


class AssignConfig(_Section):
    """Which registered model scores (`model_version` or `run_id` instead of the alias) and how
    the segments it finds are matched to the previous assignment and explained."""

    model_version: Optional[str] = Field(
        None, description="Registered model version that scores; null: the version under model.alias."
    )
    run_id: Optional[str] = Field(
        None, description="MLflow run whose logged model scores, instead of the alias."
    )
    min_match_jaccard: Annotated[StrictFloat, Field(gt=0, le=1)] = Field(
        0.5, description="A segment keeps the previous version's id and name above this Jaccard overlap."
    )
    rules_max_depth: Annotated[StrictInt, Field(ge=1, le=4)] = Field(
        4,
        description="Depth of each segment's decision tree (one per segment against the rest) behind its "
        "readable rule; at most 4, so a clause has at most four conditions.",
    )
    boundary_probability: Annotated[StrictFloat, Field(gt=0, le=1)] = Field(
        0.6,
        description="A customer whose top segment probability is below this is flagged boundary "
        "(segment_assignments.boundary).",
    )
    rules_max_rows: Positive = Field(
        200_000, description="The rules tree is fitted on a seeded hash sample of this many customers."
    )
    median_max_rows: Positive = Field(
        200_000, description="Profiles' medians on a seeded hash sample of this many customers."
    )
    median_accuracy: Positive = Field(
        1_000, description="percentile_approx accuracy for the profiles' medians."
    )

    @model_validator(mode="after")
    def _one_model_choice(self) -> AssignConfig:
        """assign.model_version and assign.run_id exclude each other."""
        if self.model_version is not None and self.run_id is not None:
            raise _rule("config keys 'assign.model_version' and 'assign.run_id' exclude each other")
        return self


class ClvConfig(_Section):
    """Customer lifetime value: BG/NBD purchases and Gamma-Gamma spend, fitted as of
    features.as_of_date (docs/clv.md)."""

    enabled: StrictBool = Field(True, description="`segment pipeline` runs the clv stage after features.")
    time_unit: Literal["weeks", "days"] = Field(
        "weeks", description="Unit of t_x, T and the horizons (a week is 7 days)."
    )
    horizons: Annotated[list[Positive], _unique("horizon")] = Field(
        [13, 26, 52],
        description="Horizons, in time units, of the expected_purchases_<h> and clv_<h> columns.",
    )
    annual_discount_rate: Annotated[StrictFloat, Field(ge=0, lt=1)] = Field(
        0.1, description="Yearly rate at which future spend is discounted in clv_<h>."
    )
    max_driver_rows: Positive = Field(
        100_000,
        description="Above this many distinct fitting rows, the likelihood is summed by Spark at each "
        "optimiser step instead of on the driver.",
    )
    starts: Positive = Field(3, description="Optimiser starts per model; the best fit is kept.")
    seed: StrictInt = Field(42, description="Seed of the optimiser's starting points.")


class EvaluateConfig(_Section):
    """`segment evaluate`: how segments did on what customers bought after the as-of date."""

    horizon_days: Positive = Field(
        180,
        description="Days after the as-of date whose transactions are the next period: dates in "
        "(as_of_date, as_of_date + horizon_days].",
    )


class ReportConfig(_Section):
    """Where `segment report` writes."""

    output_dir: str = Field(
        "reports", description="`segment report` writes <output_dir>/<assignment_id>.html."
    )


class Config(_Section):
    """The whole configuration, one section per concern."""

    input: InputConfig = Field(description="The raw input read by ingestion.")
    features: FeaturesConfig = Field(description="The customer features.")
    model: ModelConfig = Field(description="What the clustering sees and its preprocessing.")
    sweep: SweepConfig = Field(description="The sweep of clustering fits.")
    spark: SparkConfig = Field(default_factory=SparkConfig, description="A local Spark session's settings.")
    lake: LakeConfig = Field(default_factory=LakeConfig, description="Where the Delta tables live.")
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description="MLflow tracking and registry.")
    ingest: IngestConfig = Field(
        default_factory=IngestConfig, description="Ingestion thresholds and PII salt."
    )
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="Synthetic input data.")
    selection: SelectionConfig = Field(default_factory=SelectionConfig, description="The champion rule.")
    assign: AssignConfig = Field(
        default_factory=AssignConfig, description="Scoring with the registered model and explaining segments."
    )
    clv: ClvConfig = Field(default_factory=ClvConfig, description="Customer lifetime value and churn.")
    report: ReportConfig = Field(default_factory=ReportConfig, description="The HTML report.")
    evaluate: EvaluateConfig = Field(
        default_factory=EvaluateConfig, description="Next-period usefulness of the segments."
    )

    @model_validator(mode="after")
    def _rule_has_fits_to_rank(self) -> Config:
        """selection.rule bic or icl ranks Gaussian mixtures only: sweep.algorithms has gaussian_mixture."""
        if self.selection.rule in ("bic", "icl") and "gaussian_mixture" not in self.sweep.algorithms:
            raise _rule(
                f"config key 'selection.rule' is {self.selection.rule}, which ranks Gaussian mixtures "
                "only: add gaussian_mixture to sweep.algorithms"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON-able values, dates as ISO strings."""
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        """Stable hash of the resolved config, for tagging what produced an output."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_config(
    conf_files: list[str | Path] | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Merge `conf/base.yaml`, the overlays (later wins; `local` when none given) and
    `dotted.key=value` overrides, then validate into a `Config`."""
    files = [BASE_CONF, *(overlay_file(conf) for conf in conf_files or [DEFAULT_OVERLAY])]
    merged: dict[str, Any] = {}
    for path in files:
        merged = _deep_merge(merged, _read_yaml(path))
    for override in overrides or []:
        merged = _deep_merge(merged, _parse_override(override))
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0])) from None


def overrides_under(root: Path) -> list[str]:
    """`--set` values that put every path a run reads or writes (raw input, lake, MLflow store
    and artifacts, reports) under one absolute folder, as a cluster's executors need them."""
    root = Path(root).resolve()
    return [
        f"lake.root={root / 'lake'}",
        f"generate.transactions_path={root / 'raw' / 'transactions'}",
        f"generate.customers_path={root / 'raw' / 'customers'}",
        f"input.transactions.path={root / 'raw' / 'transactions'}",
        f"input.customers.path={root / 'raw' / 'customers'}",
        f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"mlflow.artifact_location={root / 'mlruns'}",
        f"report.output_dir={root / 'reports'}",
    ]


def overlay_names() -> list[str]:
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in CONF_DIR.iterdir()
        if entry.name.endswith(".yaml") and entry.name != "base.yaml"
    )


def overlay_file(conf: str | Path) -> Traversable:
    """A shipped overlay by name (`local`, `cluster`, `databricks`), else a path."""
    if isinstance(conf, str) and conf in overlay_names():
        return CONF_DIR / f"{conf}.yaml"
    return Path(conf)


def _read_yaml(path: Traversable) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist (shipped overlays by name: {', '.join(overlay_names())})"
        )
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date such as 2025-02-30
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return content


def _parse_override(override: str) -> dict[str, Any]:
    key, sep, raw_value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects dotted.key=value, got {override!r}")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except (yaml.YAMLError, ValueError):  # e.g. 2025-02-30, a date YAML cannot build
        value = raw_value
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# Validation errors in words: the full dotted key, what the value must be, and the value.

_MUST_BE = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "date_type": "a date YYYY-MM-DD",
    "date_format": "a date YYYY-MM-DD",
}
_BOUNDS = {
    "ge": ("[", "at least"),
    "gt": ("(", "greater than"),
    "le": ("]", "at most"),
    "lt": (")", "less than"),
}


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as a sentence naming the full dotted key, e.g. `features.windows_days[1]`."""
    loc, kind, value = error["loc"], error["type"], error.get("input")
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    if kind == "config_rule":
        return error["msg"]
    if kind == "missing":
        return f"missing required config key '{key}'"
    if kind == "extra_forbidden":
        known = _type_at(loc[:-1])[0].model_fields
        return f"unknown config key '{key}'; known keys: {', '.join(sorted(known))}"
    if kind == "value_error":
        return f"config key '{key}' {error['ctx']['error']}"
    if value is None:
        return f"config key '{key}' must not be null"
    return f"config key '{key}' {_requirement(kind, error.get('ctx', {}), loc)}, got {value!r}"


def _requirement(kind: str, ctx: dict[str, Any], loc: tuple[str | int, ...]) -> str:
    if kind in _MUST_BE:
        return f"must be {_MUST_BE[kind]}"
    if kind == "literal_error":
        return f"must be one of {list(get_args(_type_at(loc)[0]))}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return _range(_type_at(loc)[1])
    if kind == "too_short":
        return (
            "must not be empty" if ctx["min_length"] == 1 else f"must hold at least {ctx['min_length']} items"
        )
    if kind == "too_long":
        return f"must hold at most {ctx['max_length']} items"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']}"
    return f"is invalid ({kind})"


def _range(constraints: list[Any]) -> str:
    """`must be in [0, 1]`, `must be at least 1`, ... from a field's bound constraints."""
    bounds = {name: getattr(c, name) for c in constraints for name in _BOUNDS if hasattr(c, name)}
    low = next(((name, bounds[name]) for name in ("ge", "gt") if name in bounds), None)
    high = next(((name, bounds[name]) for name in ("le", "lt") if name in bounds), None)
    if low and high:
        return f"must be in {_BOUNDS[low[0]][0]}{low[1]}, {high[1]}{_BOUNDS[high[0]][0]}"
    name, bound = low or high
    return f"must be {_BOUNDS[name][1]} {bound}"


def _type_at(loc: tuple[str | int, ...]) -> tuple[Any, list[Any]]:
    """The type at an error's location in `Config`, with its constraints (Ge, Le, ...)."""
    hint, constraints = _unwrap(Config)
    for part in loc:
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            field = hint.model_fields[str(part)]
            hint = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        elif is_typeddict(hint):
            hint = get_type_hints(hint, include_extras=True).get(str(part), hint.__extra_items__)
        else:  # a list's item or a dict's value
            hint = get_args(hint)[-1]
        hint, constraints = _unwrap(hint)
    return hint, constraints


def _unwrap(hint: Any) -> tuple[Any, list[Any]]:
    """The bare type under `Optional[...]` and `Annotated[...]`, and the constraints collected."""
    constraints: list[Any] = []
    while True:
        if get_origin(hint) is Annotated:
            hint, *extras = get_args(hint)
            for extra in extras:
                constraints.extend(extra.metadata if isinstance(extra, FieldInfo) else [extra])
        elif get_origin(hint) is Union:
            hint = next(arg for arg in get_args(hint) if arg is not type(None))
        else:
            return hint, constraints
