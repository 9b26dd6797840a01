"""Typed configuration: YAML files merged in order, then `--set` overrides, validated once.

The rest of the code receives these dataclasses, never raw dicts. Loading names the
offending key for an unknown key, a wrong type or a missing required value:

    >>> cfg = load_config(["conf/local.yaml"], ["generate.customers=1000"])
    >>> cfg.generate.customers
    1000

An overlay is a file path or the name of one shipped with the package (`local`, `cluster`,
`databricks`): a job started from the wheel alone, on a cluster or Databricks, has no `conf/`
folder beside it. The YAML files live in the top-level `conf/`; the wheel carries them as
`segmentation/conf/` (setup.py), read through importlib.resources so a zipped wheel in
spark-submit's `--py-files` works too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from segmentation.errors import ConfigError


def _conf_dir() -> Traversable:
    """The configs shipped in the wheel, else (a source checkout) the top-level `conf/`."""
    packaged = resources.files("segmentation") / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


CONF_DIR = _conf_dir()
BASE_CONF = CONF_DIR / "base.yaml"
DEFAULT_OVERLAY = "local"

_REQUIRED = dataclasses.MISSING


@dataclass(frozen=True)
class SparkConfig:
    """Used only when the job starts its own local session (never under spark-submit or Databricks)."""

    app_name: str = "customer-segmentation"
    master: str = "local[*]"
    driver_memory: str = "4g"
    shuffle_partitions: Optional[int] = None
    ui_enabled: bool = False
    maven_repo: str = "~/.m2/repository"
    local_dir: Optional[str] = None
    extra_conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LakeConfig:
    root: str = "lake"
    catalog: Optional[str] = None
    schema: Optional[str] = None


@dataclass(frozen=True)
class MlflowConfig:
    """`MLFLOW_TRACKING_URI` / `MLFLOW_REGISTRY_URI`, when set, win over the keys here."""

    tracking_uri: str = "sqlite:///mlflow.db"
    registry_uri: Optional[str] = None  # null: the tracking URI
    experiment: str = "customer-segmentation"
    artifact_location: Optional[str] = None  # used only when the experiment is created


@dataclass(frozen=True)
class TransactionColumns:
    """Source column for each canonical column; an optional one set to null is ignored."""

    customer_id: str = "customer_id"
    order_ts: str = "order_ts"
    amount: str = "amount"
    order_id: Optional[str] = "order_id"
    quantity: Optional[str] = "quantity"
    category: Optional[str] = "category"
    channel: Optional[str] = "channel"


@dataclass(frozen=True)
class CustomerColumns:
    customer_id: str = "customer_id"
    signup_date: Optional[str] = "signup_date"
    birth_date: Optional[str] = "birth_date"
    gender: Optional[str] = "gender"
    region: Optional[str] = "region"


SourceFormat = Literal["csv", "parquet", "delta", "table"]
PiiAction = Literal["hash", "drop"]


@dataclass(frozen=True)
class TransactionsInput:
    path: str = _REQUIRED
    format: SourceFormat = "parquet"
    options: dict[str, str] = field(default_factory=dict)
    columns: TransactionColumns = field(default_factory=TransactionColumns)
    timestamp_format: Optional[str] = None
    pii: dict[str, PiiAction] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomersInput:
    path: Optional[str] = None
    format: SourceFormat = "parquet"
    options: dict[str, str] = field(default_factory=dict)
    columns: CustomerColumns = field(default_factory=CustomerColumns)
    date_format: Optional[str] = None
    extra_columns: list[str] = field(default_factory=list)
    pii: dict[str, PiiAction] = field(default_factory=dict)


@dataclass(frozen=True)
class InputConfig:
    transactions: TransactionsInput = _REQUIRED
    customers: CustomersInput = field(default_factory=CustomersInput)


@dataclass(frozen=True)
class IngestConfig:
    max_reject_share: float = 0.05
    pii_salt: Optional[str] = None
    pii_salt_env: str = "SEGMENTATION_PII_SALT"


@dataclass(frozen=True)
class GenerateConfig:
    """Synthetic input; written where `input.*.path` of the embedded default reads it."""

    transactions_path: str = "data/generated/transactions"
    customers_path: str = "data/generated/customers"
    format: SourceFormat = "parquet"
    customers: int = 50_000
    seed: int = 42
    start_date: dt.date = dt.date(2023, 1, 1)
    end_date: Optional[dt.date] = None
    dirty_share: float = 0.002
    partitions: Optional[int] = None


@dataclass(frozen=True)
class FeaturesConfig:
    as_of_date: dt.date = _REQUIRED
    windows_days: list[int] = field(default_factory=lambda: [30, 90, 365])
    trend_window_days: int = 90
    top_categories: int = 5
    categories: Optional[list[str]] = None
    channels: Optional[list[str]] = None

    def __post_init__(self) -> None:
        # Each window names two columns (orders_<d>d, spend_<d>d): a repeat would name them twice.
        if len(set(self.windows_days)) != len(self.windows_days):
            raise ConfigError(f"config key 'features.windows_days' repeats a window: {self.windows_days}")
        if any(days < 1 for days in self.windows_days):
            raise ConfigError(f"config key 'features.windows_days' must be positive, got {self.windows_days}")


ALGORITHMS = ("kmeans", "bisecting_kmeans", "gaussian_mixture")
Algorithm = Literal["kmeans", "bisecting_kmeans", "gaussian_mixture"]


@dataclass(frozen=True)
class ModelConfig:
    """What the clustering sees: the feature columns and their preprocessing, saved in the model."""

    feature_columns: list[str] = _REQUIRED
    log1p_columns: list[str] = field(default_factory=list)
    winsorize_quantiles: Optional[list[float]] = field(default_factory=lambda: [0.01, 0.99])
    standardize: bool = True
    pca_components: Optional[int] = None
    registered_name: str = "customer-segmentation"
    alias: str = "champion"

    def __post_init__(self) -> None:
        if not self.feature_columns:
            raise ConfigError("config key 'model.feature_columns' must name at least one column")
        if len(set(self.feature_columns)) != len(self.feature_columns):
            raise ConfigError("config key 'model.feature_columns' repeats a column")
        stray = [column for column in self.log1p_columns if column not in self.feature_columns]
        if stray:
            raise ConfigError(f"config key 'model.log1p_columns' names {stray[0]!r}, not a feature column")
        quantiles = self.winsorize_quantiles
        if quantiles is not None and (len(quantiles) != 2 or not 0 <= quantiles[0] < quantiles[1] <= 1):
            raise ConfigError(
                f"config key 'model.winsorize_quantiles' must be [low, high] with 0 <= low < high <= 1, "
                f"got {quantiles}"
            )
        if self.pca_components is not None and not 1 <= self.pca_components <= len(self.feature_columns):
            raise ConfigError(
                f"config key 'model.pca_components' must be between 1 and the "
                f"{len(self.feature_columns)} feature columns, got {self.pca_components}"
            )


@dataclass(frozen=True)
class SweepConfig:
    """The grid of fits: per algorithm, every combination of the listed parameter values."""

    grid: dict[str, dict[str, list[Any]]] = _REQUIRED
    algorithms: list[Algorithm] = field(default_factory=lambda: list(ALGORITHMS))
    seed: int = 42
    max_rows: int = 500_000
    restarts: int = 3
    parallelism: int = 1
    log_all_models: bool = False
    silhouette_max_rows: int = 200_000
    stability_sample: float = 0.8
    projection_rows: int = 2_000

    def __post_init__(self) -> None:
        unknown = sorted(set(self.grid) - set(ALGORITHMS))
        if unknown:
            raise ConfigError(
                f"unknown config key 'sweep.grid.{unknown[0]}'; known algorithms: {', '.join(ALGORITHMS)}"
            )
        for algorithm in self.algorithms:
            params = self.grid.get(algorithm)
            if not params or "k" not in params:
                raise ConfigError(f"config key 'sweep.grid.{algorithm}.k' is missing: list the k to try")
            for name, values in params.items():
                if not values:
                    raise ConfigError(f"config key 'sweep.grid.{algorithm}.{name}' is an empty list")
            bad_k = [k for k in params["k"] if not isinstance(k, int) or isinstance(k, bool) or k < 2]
            if bad_k:
                raise ConfigError(
                    f"config key 'sweep.grid.{algorithm}.k' must hold integers >= 2, got {bad_k[0]!r}"
                )
        for name in ("max_rows", "restarts", "parallelism", "silhouette_max_rows", "projection_rows"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"config key 'sweep.{name}' must be at least 1, got {value}")
        if not 0 < self.stability_sample <= 1:
            raise ConfigError(
                f"config key 'sweep.stability_sample' must be in (0, 1], got {self.stability_sample}"
            )


@dataclass(frozen=True)
class SelectionConfig:
    """The champion rule; see README "Champion rule"."""

    min_segment_share: float = 0.02
    min_stability: float = 0.8
    stability_candidates: int = 3
    silhouette_decimals: int = 3

    def __post_init__(self) -> None:
        for name in ("min_segment_share", "min_stability"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"config key 'selection.{name}' must be in [0, 1], got {value}")
        if self.stability_candidates < 1:
            raise ConfigError(
                "config key 'selection.stability_candidates' must be at least 1, "
                f"got {self.stability_candidates}"
            )


@dataclass(frozen=True)
class AssignConfig:
    """Which registered model scores (`model_version` or `run_id` instead of the alias) and how
    the segments it finds are matched to the previous assignment and explained."""

    model_version: Optional[str] = None
    run_id: Optional[str] = None
    min_match_jaccard: float = 0.5
    rules_max_depth: int = 3
    rules_max_rows: int = 200_000
    median_max_rows: int = 200_000
    median_accuracy: int = 1_000

    def __post_init__(self) -> None:
        if self.model_version is not None and self.run_id is not None:
            raise ConfigError("config keys 'assign.model_version' and 'assign.run_id' exclude each other")
        if not 0 < self.min_match_jaccard <= 1:
            raise ConfigError(
                f"config key 'assign.min_match_jaccard' must be in (0, 1], got {self.min_match_jaccard}"
            )
        for name in ("rules_max_depth", "rules_max_rows", "median_max_rows", "median_accuracy"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config key 'assign.{name}' must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class ReportConfig:
    output_dir: str = "reports"


@dataclass(frozen=True)
class Config:
    input: InputConfig = _REQUIRED
    features: FeaturesConfig = _REQUIRED
    model: ModelConfig = _REQUIRED
    sweep: SweepConfig = _REQUIRED
    spark: SparkConfig = field(default_factory=SparkConfig)
    lake: LakeConfig = field(default_factory=LakeConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    assign: AssignConfig = field(default_factory=AssignConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

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
    return _build(Config, merged, "")


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
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return content


def _parse_override(override: str) -> dict[str, Any]:
    key, sep, raw_value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects dotted.key=value, got {override!r}")
    value = yaml.safe_load(raw_value) if raw_value.strip() else None
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


def _build(cls: type, data: Any, prefix: str) -> Any:
    where = prefix or "the top level"
    if not isinstance(data, dict):
        raise ConfigError(f"config key '{prefix}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown config key '{_join(prefix, unknown[0])}' at {where}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    values = {}
    for name, spec in known.items():
        key = _join(prefix, name)
        if name in data:
            values[name] = _coerce(hints[name], data[name], key)
        elif spec.default is _REQUIRED and spec.default_factory is _REQUIRED:
            raise ConfigError(f"missing required config key '{key}'")
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, key)
    if hint is Any:
        return value
    if value is None:
        raise ConfigError(f"config key '{key}' must not be null")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"config key '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return [_coerce(args[0], item, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, _join(key, str(k))) for k, v in value.items()}
    if hint is dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f"config key '{key}' must be a date YYYY-MM-DD, got {value!r}") from None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"config key '{key}' must be {hint.__name__}, got {value!r}")
    return value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
