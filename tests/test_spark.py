"""The session factory reuses what exists and finds Delta's jars offline."""

from __future__ import annotations

import pytest

from segmentation.config import SparkConfig
from segmentation.errors import ConfigError
from segmentation.spark import delta_jars, get_spark, is_connect


def test_existing_session_is_returned_untouched(spark):
    again = get_spark(SparkConfig(master="local[1]", driver_memory="1g"))
    assert again is spark
    assert spark.conf.get("spark.master") == "local[2]"


def test_a_classic_session_is_not_taken_for_a_spark_connect_one(spark):
    # tests/test_connect.py runs every command against a real server: there is_connect is true.
    assert not is_connect(spark)


def test_local_session_has_delta_and_aqe(spark, tmp_path):
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"
    assert "spark.jars.packages" not in dict(spark.sparkContext.getConf().getAll())
    spark.range(3).write.format("delta").save(str(tmp_path / "t"))
    assert spark.read.format("delta").load(str(tmp_path / "t")).count() == 3


def test_missing_jars_point_to_make_setup(tmp_path):
    with pytest.raises(ConfigError, match=r"Delta Lake jars not found.*make setup"):
        delta_jars(str(tmp_path))
