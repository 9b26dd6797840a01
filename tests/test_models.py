"""Pipelines: preprocessing is fitted once and carried by the saved model."""

from __future__ import annotations

import math

import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.testing import assertDataFrameEqual

from segmentation.errors import InputError
from segmentation.models import PREDICTION, Preprocessing, build_estimator, build_pipeline


@pytest.fixture(scope="module")
def features(spark):
    rows = [(f"{i:03d}", float(i % 10), float(100 * (i % 3) + i) if i % 7 else None) for i in range(60)]
    return spark.createDataFrame(rows, "customer_id string, recency_days double, monetary double")


def test_clean_step_fills_nulls_logs_and_clips(spark, features):
    preprocessing = Preprocessing(
        log1p_columns=("monetary",), winsorize_quantiles=(0.0, 0.5), standardize=False
    )
    pipeline = build_pipeline(
        features, ["recency_days", "monetary"], preprocessing, algorithm="kmeans", params={"k": 2}, seed=1
    )
    model = pipeline.fit(features)
    cleaned = model.transform(features).select("customer_id", vector_to_array("features").alias("v"))
    values = {row.customer_id: row.v for row in cleaned.collect()}
    assert values["000"] == [0.0, 0.0]  # monetary null -> 0 -> log1p 0
    median_recency = max(v[0] for v in values.values())
    assert median_recency == pytest.approx(4.0, abs=1.0)  # clipped at the 0.5 quantile
    assert max(v[1] for v in values.values()) <= math.log1p(260) + 1e-9


def test_saved_model_scores_identically(spark, features, tmp_path):
    pipeline = build_pipeline(
        features, ["recency_days", "monetary"], Preprocessing(), algorithm="kmeans", params={"k": 3}, seed=7
    )
    model = pipeline.fit(features)
    model.write().overwrite().save(str(tmp_path / "model"))
    reloaded = PipelineModel.load(str(tmp_path / "model"))
    extra = features.withColumnRenamed("customer_id", "id")  # other columns do not matter
    assertDataFrameEqual(
        model.transform(extra).select("id", PREDICTION), reloaded.transform(extra).select("id", PREDICTION)
    )


@pytest.mark.parametrize("algorithm", ["kmeans", "bisecting_kmeans", "gaussian_mixture"])
def test_every_algorithm_fits_with_the_same_seed_to_the_same_segments(spark, features, algorithm):
    pipeline = build_pipeline(
        features, ["recency_days", "monetary"], Preprocessing(), algorithm=algorithm, params={"k": 3}, seed=5
    )
    first = pipeline.fit(features).transform(features).select("customer_id", PREDICTION)
    second = pipeline.fit(features).transform(features).select("customer_id", PREDICTION)
    assertDataFrameEqual(first, second)
    assert 1 <= first.select(PREDICTION).distinct().count() <= 3


def test_unknown_column_and_parameter_are_clear_errors(features):
    with pytest.raises(InputError, match=r"unknown feature column 'frequncy'"):
        build_pipeline(features, ["frequncy"], Preprocessing(), algorithm="kmeans", params={"k": 2}, seed=1)
    with pytest.raises(InputError, match=r"kmeans has no parameter 'minDivisibleClusterSize'"):
        build_estimator("kmeans", {"minDivisibleClusterSize": 2.0}, 1)
