"""The recovery benchmark's planted datasets: deterministic, self-consistent and as varied as
the benchmark claims. Small sizes, pandas only (no Spark)."""

from __future__ import annotations

import datetime as dt
from functools import cache

import pandas as pd
import pytest

from bench.recovery.generators import DATASETS, PlantedDataset, reference_features, write

SMALL = 600
# Spark datetime pattern letters -> strftime, written out here independently of the module.
SPARK_TO_STRFTIME = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"))
LOGICAL = ("customer_id", "order_ts", "amount", "order_id", "quantity", "category", "channel")


def _strftime(spark_pattern: str) -> str:
    python = spark_pattern.replace("'T'", "T")
    for spark_letters, directive in SPARK_TO_STRFTIME:
        python = python.replace(spark_letters, directive)
    return python


@cache
def _small(name: str, seed: int) -> PlantedDataset:
    return DATASETS[name](seed, SMALL)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_deterministic_for_a_seed_and_different_for_another(name):
    first, again, other = _small(name, 7), DATASETS[name](7, SMALL), _small(name, 8)
    pd.testing.assert_frame_equal(first.transactions, again.transactions)
    pd.testing.assert_frame_equal(first.labels, again.labels)
    assert not first.transactions.equals(other.transactions)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_labels_cover_every_customer_once(name):
    dataset = _small(name, 7)
    ids = dataset.labels["customer_id"]
    assert list(dataset.labels.columns) == ["customer_id", "persona", "persona_name"]
    assert ids.is_unique
    assert len(ids) == SMALL
    assert set(ids) == set(dataset.transactions[dataset.columns["customer_id"]])
    personas = set(dataset.labels["persona"])
    assert personas - {-1} == set(range(dataset.planted_k))
    assert (dataset.labels.loc[dataset.labels["persona"] == -1, "persona_name"] == "noise").all()
    assert dataset.labels.groupby("persona")["persona_name"].nunique().eq(1).all()


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_columns_amounts_and_timestamps(name):
    dataset = _small(name, 7)
    lines = dataset.transactions
    assert set(dataset.columns) == set(LOGICAL)
    mapped = [column for column in dataset.columns.values() if column is not None]
    assert set(mapped) == set(lines.columns)
    assert not set(mapped) & set(LOGICAL), "columns use the dataset's own vocabulary"
    assert all(dataset.columns[required] for required in ("customer_id", "order_ts", "amount"))
    assert (lines[dataset.columns["amount"]] > 0).all()
    ids = lines[dataset.columns["customer_id"]]
    prefix = ids.str.extract(r"^(\D+)")[0]
    assert prefix.notna().all() and prefix.nunique() == 1
    stamps = pd.to_datetime(lines[dataset.columns["order_ts"]], format=_strftime(dataset.timestamp_format))
    as_of = pd.Timestamp(dataset.as_of_date)
    assert stamps.max() <= as_of + pd.Timedelta(days=181)
    assert stamps.min() >= as_of - pd.Timedelta(days=365 * 10)
    assert (stamps.dt.normalize() <= as_of).groupby(ids).any().all(), "every customer buys by as_of_date"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_without_order_ids_one_line_per_customer_and_day(name):
    dataset = _small(name, 7)
    if dataset.columns["order_id"] is not None:
        lines = dataset.transactions
        orders = lines.groupby(dataset.columns["order_id"])[dataset.columns["customer_id"]].nunique()
        assert orders.eq(1).all(), "an order belongs to one customer"
        return
    stamps = pd.to_datetime(
        dataset.transactions[dataset.columns["order_ts"]], format=_strftime(dataset.timestamp_format)
    )
    customers = dataset.transactions[dataset.columns["customer_id"]]
    assert not pd.DataFrame({"customer": customers, "day": stamps.dt.date}).duplicated().any()


def test_reference_features_by_hand():
    transactions = pd.DataFrame(
        {
            "who": ["a", "a", "a", "b", "b"],
            "when": ["2025-01-01", "2025-01-01", "2025-01-05", "2025-01-09", "2025-02-01"],
            "paid": [10.0, 5.0, 30.0, 8.0, 99.0],
            "ticket": ["t1", "t1", "t2", "t3", "t4"],
        }
    )
    dataset = PlantedDataset(
        name="tiny",
        description="two customers",
        planted_k=1,
        separation="well_separated",
        transactions=transactions,
        labels=pd.DataFrame({"customer_id": ["a", "b"], "persona": [0, 0], "persona_name": ["p", "p"]}),
        as_of_date=dt.date(2025, 1, 10),
        columns={"customer_id": "who", "order_ts": "when", "amount": "paid", "order_id": "ticket"}
        | {"quantity": None, "category": None, "channel": None},
        timestamp_format="yyyy-MM-dd",
    )
    features = reference_features(dataset).set_index("customer_id")
    # a: orders t1 (15 on Jan 1) and t2 (30 on Jan 5); b: t3 on Jan 9, t4 after the as-of date.
    assert features.loc["a"].to_dict() == {
        "recency_days": 5,
        "frequency": 2,
        "avg_order_value": 22.5,
        "tenure_days": 9,
    }
    assert features.loc["b"].to_dict() == {
        "recency_days": 1,
        "frequency": 1,
        "avg_order_value": 8.0,
        "tenure_days": 1,
    }


def test_write_round_trips(tmp_path):
    dataset = _small("bookshop_long_tail", 7)
    write(dataset, tmp_path)
    lines = pd.read_csv(tmp_path / "transactions" / "part-0.csv", dtype=str)
    labels = pd.read_csv(tmp_path / "labels.csv", dtype={"customer_id": str})
    assert list(lines.columns) == list(dataset.transactions.columns)
    assert len(lines) == len(dataset.transactions)
    pd.testing.assert_frame_equal(labels, dataset.labels)


def test_the_set_is_varied():
    datasets = [_small(name, 7) for name in DATASETS]
    separations = pd.Series([d.separation for d in datasets]).value_counts()
    ks = {d.planted_k for d in datasets}
    assert len(datasets) >= 12
    assert separations["well_separated"] >= 5 and separations["overlapping"] >= 5
    assert min(ks) == 3 and max(ks) == 8
    assert any(d.columns["order_id"] is None for d in datasets)
    assert any(d.columns["order_id"] is not None for d in datasets)
    assert any(d.columns["channel"] is not None for d in datasets)
    assert any((d.labels["persona"] == -1).any() for d in datasets)
    assert len({d.columns["customer_id"] for d in datasets}) >= 8, "vocabularies differ"
    assert len({d.timestamp_format for d in datasets}) >= 5
