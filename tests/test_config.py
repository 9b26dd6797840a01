"""Config loads in layers and every mistake names its key."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from segmentation.config import (
    BASE_CONF,
    CONF_DIR,
    AssignConfig,
    Config,
    FeaturesConfig,
    SparkConfig,
    SweepConfig,
    load_config,
)
from segmentation.errors import ConfigError


def test_base_and_local_overlay_load_into_typed_objects():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.features.as_of_date == dt.date(2025, 12, 31)
    assert cfg.input.transactions.columns.customer_id == "customer_id"
    assert cfg.ingest.max_reject_share == 0.05
    assert cfg.input.customers.pii == {"email": "hash", "full_name": "drop"}


@pytest.mark.parametrize("overlay", ["local", "cluster", "databricks"])
def test_every_shipped_overlay_is_valid_and_named_by_its_file(overlay):
    assert load_config([overlay]) == load_config([CONF_DIR / f"{overlay}.yaml"])
    assert load_config([overlay]) != load_config([CONF_DIR / "base.yaml"])


def test_an_overlay_that_is_neither_a_file_nor_shipped_names_the_shipped_ones():
    with pytest.raises(ConfigError, match=r"databricks-prod does not exist .*cluster, databricks, local"):
        load_config(["databricks-prod"])


def test_later_overlays_and_sets_win(tmp_path):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("generate: {customers: 10, seed: 1}\n")
    second.write_text("generate: {customers: 20}\n")
    cfg = load_config([first, second], ["generate.seed=7", "features.as_of_date=2024-06-30"])
    assert (cfg.generate.customers, cfg.generate.seed) == (20, 7)
    assert cfg.features.as_of_date == dt.date(2024, 6, 30)


def test_databricks_overlay_switches_to_catalog_tables():
    cfg = load_config([CONF_DIR / "databricks.yaml"])
    assert (cfg.lake.catalog, cfg.lake.schema) == ("main", "segmentation")
    assert cfg.input.transactions.format == "table"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "features.as_of_dat=2025-01-01",
            r"unknown config key 'features.as_of_dat'; known keys: as_of_date, ",
        ),
        ("input.transactions.columns.custid=x", r"unknown config key 'input.transactions.columns.custid'"),
        ("generate.customers=many", r"config key 'generate.customers' must be an integer, got 'many'"),
        ("generate.customers=true", r"config key 'generate.customers' must be an integer, got True"),
        ("generate.customers=1.5", r"config key 'generate.customers' must be an integer, got 1.5"),
        ("input.transactions.format=xlsx", r"'input.transactions.format' must be one of \[.*\], got 'xlsx'"),
        (
            "features.as_of_date=31/12/2025",
            r"'features.as_of_date' must be a date YYYY-MM-DD, got '31/12/2025'",
        ),
        (
            "features.as_of_date=2025-02-30",
            r"'features.as_of_date' must be a date YYYY-MM-DD, got '2025-02-30'",
        ),
        (
            "features.as_of_date=2025-12-31 10:00:00",
            r"'features.as_of_date' must be a date YYYY-MM-DD, got datetime",
        ),
        (
            "input.transactions.pii={email: encrypt}",
            r"'input.transactions.pii.email' must be one of \['hash', 'drop'\], got 'encrypt'",
        ),
        ("features.windows_days=[30, x]", r"'features.windows_days\[1\]' must be an integer, got 'x'"),
        ("features.windows_days=[30, 90, 30]", r"'features.windows_days' repeats a window: \[30, 90, 30\]"),
        ("features.windows_days=[0, 30]", r"'features.windows_days\[0\]' must be at least 1, got 0"),
        ("lake=nowhere", r"config key 'lake' must be a mapping, got 'nowhere'"),
        ("features.as_of_date=null", r"config key 'features.as_of_date' must not be null"),
        ("ingest.max_reject_share=true", r"config key 'ingest.max_reject_share' must be a number, got True"),
        ("sweep.restarts=0", r"config key 'sweep.restarts' must be at least 1, got 0"),
        ("selection.min_stability=1.5", r"config key 'selection.min_stability' must be in \[0, 1\], got 1.5"),
        ("sweep.stability_sample=0", r"config key 'sweep.stability_sample' must be in \(0, 1\], got 0"),
        ("sweep.grid.kmeans.k=[1, 2]", r"config key 'sweep.grid.kmeans.k\[0\]' must be at least 2, got 1"),
        ("sweep.grid.kmeans.maxIter=[]", r"config key 'sweep.grid.kmeans.maxIter' must not be empty"),
        ("sweep.grid.kmean={k: [2]}", r"unknown config key 'sweep.grid.kmean'; known algorithms: kmeans, "),
        (
            "model.log1p_columns=[email]",
            r"config key 'model.log1p_columns' names 'email', not a feature column",
        ),
        ("model.feature_columns=[]", r"config key 'model.feature_columns' must not be empty"),
        (
            "model.winsorize_quantiles=[0.9, 0.1]",
            r"'model.winsorize_quantiles' must be \[low, high\] with 0 <= low",
        ),
        (
            "model.pca_components=5",
            r"'model.pca_components' must be between 1 and the 4 feature columns, got 5",
        ),
        ("spark.driver_memory=lots", r"config key 'spark.driver_memory' must match .*, got 'lots'"),
        (
            "spark.remote=127.0.0.1:15002",
            r"config key 'spark.remote' must match .*sc://.*, got '127.0.0.1:15002'",
        ),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_required_key_is_named(tmp_path, monkeypatch):
    base_without_date = tmp_path / "base.yaml"
    base_without_date.write_text(
        BASE_CONF.read_text().replace("as_of_date: 2025-12-31", "trend_window_days: 60")
    )
    monkeypatch.setattr("segmentation.config.BASE_CONF", base_without_date)
    with pytest.raises(ConfigError, match=r"missing required config key 'features\.as_of_date'"):
        load_config()


def test_malformed_set_and_missing_file_are_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"--set expects dotted\.key=value"):
        load_config(None, ["generate.customers"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config([tmp_path / "nope.yaml"])


def test_fingerprint_changes_with_config():
    assert load_config().fingerprint() == load_config().fingerprint()
    assert load_config().fingerprint() != load_config(None, ["generate.seed=1"]).fingerprint()


def test_assign_model_version_and_run_id_exclude_each_other():
    assert load_config(None, ["assign.run_id=abc"]).assign.run_id == "abc"
    with pytest.raises(ConfigError, match=r"'assign.model_version' and 'assign.run_id' exclude each other"):
        load_config(None, ["assign.model_version=3", "assign.run_id=abc"])


def test_numbers_given_for_strings_become_strings_and_ints_for_floats_become_floats():
    cfg = load_config(None, ["assign.model_version=3", "spark.extra_conf={spark.sql.shuffle.partitions: 8}"])
    assert cfg.assign.model_version == "3"
    assert cfg.spark.extra_conf == {"spark.sql.shuffle.partitions": "8"}
    assert load_config(None, ["assign.run_id=1.5e10"]).assign.run_id == "1.5e10"
    assert load_config(None, ["ingest.max_reject_share=1"]).ingest.max_reject_share == 1.0
    assert isinstance(load_config(None, ["ingest.max_reject_share=1"]).ingest.max_reject_share, float)
    assert load_config(None, ["features.as_of_date='2024-02-29'"]).features.as_of_date == dt.date(2024, 2, 29)


def test_grid_parameters_keep_the_order_written():
    """The order of a grid's parameters is the order of the sweep's fits."""
    sweep = SweepConfig(grid={"kmeans": {"tol": [0.1], "k": [3, 4], "maxIter": [5]}}, algorithms=["kmeans"])
    assert list(sweep.grid["kmeans"]) == ["tol", "k", "maxIter"]
    cfg = load_config(None, ["sweep.grid.gaussian_mixture={tol: [0.1], k: [3]}"])
    assert list(cfg.sweep.grid["gaussian_mixture"]) == ["k", "maxIter", "tol"]  # merged into base's order


def test_top_level_and_file_errors(tmp_path):
    with pytest.raises(
        ConfigError, match=r"unknown config key 'foo'; known keys: assign, clv, evaluate, features, "
    ):
        load_config(None, ["foo=1"])
    not_yaml, not_mapping = tmp_path / "bad.yaml", tmp_path / "list.yaml"
    not_yaml.write_text("lake: [unclosed\n")
    not_mapping.write_text("- lake\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config([not_yaml])
    with pytest.raises(ConfigError, match="must hold a mapping at the top level"):
        load_config([not_mapping])


def test_sections_are_frozen():
    cfg = load_config()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.generate.seed = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        cfg.features = cfg.features  # type: ignore[misc]


def test_sections_build_from_keywords_with_model_defaults():
    spark = SparkConfig(master="local[2]", driver_memory="2g", shuffle_partitions=2, maven_repo="/m2")
    assert (spark.app_name, spark.ui_enabled, spark.extra_conf) == ("customer-segmentation", False, {})
    assert FeaturesConfig(as_of_date=dt.date(2025, 1, 31)).windows_days == [30, 90, 365]
    with pytest.raises(ValidationError, match="exclude each other"):
        AssignConfig(model_version="1", run_id="abc")
    with pytest.raises(
        ValidationError, match=r"config key 'sweep.grid.kmeans.k' is missing: list the k to try"
    ):
        SweepConfig(grid={"kmeans": {"tol": [0.1]}}, algorithms=["kmeans"])


def _defaults_repeated(model: type[BaseModel], data: dict, prefix: str = "") -> list[str]:
    """Keys of `data` whose value equals the model field's default (recursing into sections)."""
    repeated = []
    for key, value in data.items():
        field = model.model_fields[key]
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel) and isinstance(value, dict):
            repeated += _defaults_repeated(section, value, f"{prefix}{key}.")
        elif not field.is_required() and value == field.get_default(call_default_factory=True):
            repeated.append(f"{prefix}{key}")
    return repeated


def test_base_yaml_does_not_repeat_a_model_default():
    """A default lives on the model field only; base.yaml sets what has no universal default."""
    assert _defaults_repeated(Config, yaml.safe_load(BASE_CONF.read_text())) == []


def test_the_duplicate_default_check_catches_a_repeat():
    data = {
        "spark": {"master": "local[*]"},
        "features": {"as_of_date": dt.date(2025, 1, 1), "windows_days": [30]},
    }
    assert _defaults_repeated(Config, data) == ["spark.master"]


def test_to_dict_is_plain_json_with_the_resolved_values():
    resolved = load_config(["local"]).to_dict()
    assert json.loads(json.dumps(resolved)) == resolved  # plain JSON values, dates as ISO strings
    assert set(resolved) == set(Config.model_fields)
    assert resolved["features"]["as_of_date"] == "2025-12-31"
    assert resolved["features"]["windows_days"] == [30, 90, 365]
    assert resolved["generate"]["start_date"] == "2023-01-01"
    assert resolved["generate"]["end_date"] is None
    assert resolved["input"]["transactions"]["path"] == "data/generated/transactions"
    assert resolved["input"]["customers"]["pii"] == {"email": "hash", "full_name": "drop"}
    assert resolved["ingest"]["pii_salt"] == "local-development-salt"
    assert resolved["model"]["winsorize_quantiles"] == [0.01, 0.99]
    assert resolved["sweep"]["grid"]["kmeans"]["k"] == list(range(2, 13))
    assert resolved["sweep"]["grid"]["bisecting_kmeans"]["minDivisibleClusterSize"] == [1.0]
    assert resolved["selection"] == {
        "rule": "silhouette",
        "min_segment_share": 0.02,
        "min_stability": 0.8,
        "stability_candidates": 3,
        "silhouette_decimals": 3,
    }
    assert resolved["lake"] == {
        "root": "lake",
        "catalog": None,
        "schema": None,
        "log_retention": "interval 30 days",
        "deleted_file_retention": "interval 7 days",
    }


def test_fingerprint_is_the_hash_of_the_sorted_json():
    cfg = load_config(["cluster"])
    canonical = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    assert cfg.fingerprint() == hashlib.sha256(canonical.encode()).hexdigest()[:16]
