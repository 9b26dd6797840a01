"""Config loads in layers and every mistake names its key."""

from __future__ import annotations

import datetime as dt

import pytest

from segmentation.config import BASE_CONF, CONF_DIR, Config, load_config
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
        ("features.as_of_dat=2025-01-01", r"unknown config key 'features.as_of_dat'"),
        ("input.transactions.columns.custid=x", r"unknown config key 'input.transactions.columns.custid'"),
        ("generate.customers=many", r"config key 'generate.customers' must be int, got 'many'"),
        ("generate.customers=true", r"config key 'generate.customers' must be int"),
        ("input.transactions.format=xlsx", r"'input.transactions.format' must be one of"),
        ("features.as_of_date=31/12/2025", r"'features.as_of_date' must be a date YYYY-MM-DD"),
        ("input.transactions.pii={email: encrypt}", r"'input.transactions.pii.email' must be one of"),
        ("features.windows_days=[30, x]", r"'features.windows_days\[1\]' must be int"),
        ("features.windows_days=[30, 90, 30]", r"'features.windows_days' repeats a window: \[30, 90, 30\]"),
        ("features.windows_days=[0, 30]", r"'features.windows_days' must be positive"),
        ("lake=nowhere", r"config key 'lake' must be a mapping"),
        ("features.as_of_date=null", r"config key 'features.as_of_date' must not be null"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_required_key_is_named(tmp_path, monkeypatch):
    base_without_date = tmp_path / "base.yaml"
    base_without_date.write_text(BASE_CONF.read_text().replace("as_of_date: 2025-12-31", ""))
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
