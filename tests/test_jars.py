"""The Delta jars: what the Makefile fetches is what a local session loads, Delta's own choice of
artifact, and none of them duplicates a jar pyspark ships."""

import os
import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import pyspark
import pytest
from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession

from segmentation.errors import ConfigError
from segmentation.jars import delta_coordinates, jar_path
from segmentation.spark import delta_jars

PROJECT = Path(__file__).resolve().parents[1]


def installed_coordinates() -> list[str]:
    return delta_coordinates(version("pyspark"), version("delta-spark"))


def test_delta_spark_is_the_artifact_delta_itself_picks_for_the_installed_spark():
    # Delta's pip helper names the artifact a resolver would fetch for this pyspark (builder
    # options are plain Python; nothing starts).
    builder = configure_spark_with_delta_pip(SparkSession.Builder())
    assert installed_coordinates()[0] == builder._options["spark.jars.packages"]


def test_no_listed_jar_duplicates_one_pyspark_ships():
    """A second copy of classes pyspark already has (an older Jackson, say) would shadow or clash."""
    jars = (Path(pyspark.__file__).parent / "jars").glob("*.jar")
    shipped = {re.match(r"(.+?)-\d", jar.name)[1] for jar in jars}
    assert {"jackson-databind", "zstd-jni", "orc-core", "spark-connect_2.13"} <= shipped
    assert [c for c in installed_coordinates() if c.split(":")[1] in shipped] == []


def test_a_spark_and_delta_pair_without_a_list_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match=r"lists no jars for Spark 4\.0 with Delta 4\.0\.1"):
        delta_coordinates("4.0.1", "4.0.1")


def test_make_setup_fetches_every_jar_the_session_loads(tmp_path):
    """`make setup` on an empty Maven repository asks Maven for exactly the jars `delta_jars`
    then looks for (a stand-in `mvn` first on PATH records the requests instead of fetching)."""
    fake_bin, requested, repo = tmp_path / "bin", tmp_path / "requested", tmp_path / "m2"
    fake_bin.mkdir()
    record = f'case "$arg" in -Dartifact=*) echo "${{arg#-Dartifact=}}" >> {requested};; esac'
    (fake_bin / "mvn").write_text(f'#!/bin/sh\nfor arg in "$@"; do {record}; done\n')
    (fake_bin / "mvn").chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MFLAGS")}
    subprocess.run(
        ["make", "--silent", f"MAVEN_REPO={repo}", "setup"],
        cwd=PROJECT,
        env={**env, "PATH": f"{fake_bin}:{env['PATH']}"},
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert sorted(requested.read_text().split()) == sorted(installed_coordinates())
    with pytest.raises(ConfigError) as missing:
        delta_jars(str(repo))
    expected = ", ".join(str(jar_path(repo, c)) for c in installed_coordinates())
    assert f"Delta Lake jars not found: {expected} " in str(missing.value)
