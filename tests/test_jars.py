"""The Delta jars: what the Makefile fetches is what a local session loads, and none of them
duplicates a jar pyspark ships."""

import os
import subprocess
from importlib.metadata import version
from pathlib import Path

import pyspark
import pytest

from segmentation.errors import ConfigError
from segmentation.jars import delta_coordinates, jar_path
from segmentation.spark import delta_jars

PROJECT = Path(__file__).resolve().parents[1]


def installed_coordinates() -> list[str]:
    return delta_coordinates(version("pyspark"), version("delta-spark"))


def test_delta_spark_is_the_build_for_the_installed_spark_line():
    spark_line = ".".join(version("pyspark").split(".")[:2])
    assert installed_coordinates()[0] == f"io.delta:delta-spark_{spark_line}_2.13:{version('delta-spark')}"


def test_no_listed_jar_duplicates_one_pyspark_ships():
    """A second copy of classes pyspark already has (an older Jackson, say) would shadow or clash."""
    shipped = {jar.name.rsplit("-", 1)[0] for jar in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    assert [c for c in installed_coordinates() if c.split(":")[1] in shipped] == []


def test_make_setup_fetches_every_jar_the_session_loads(tmp_path):
    """`make setup` on an empty Maven repository asks Maven for exactly the jars `delta_jars`
    then looks for (a stand-in `mvn` first on PATH records the requests instead of fetching)."""
    fake_bin, requested, repo = tmp_path / "bin", tmp_path / "requested", tmp_path / "m2"
    fake_bin.mkdir()
    record = f'case "$arg" in -Dartifact=*) echo "${{arg#-Dartifact=}}" >> {requested};; esac'
    (fake_bin / "mvn").write_text(f'#!/bin/sh\nfor arg in "$@"; do {record}; done\n')
    (fake_bin / "mvn").chmod(0o755)
    subprocess.run(
        ["make", "--silent", f"MAVEN_REPO={repo}", "setup"],
        cwd=PROJECT,
        env={**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"},
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert requested.read_text().split() == installed_coordinates()
    with pytest.raises(ConfigError) as missing:
        delta_jars(str(repo))
    expected = ", ".join(str(jar_path(repo, c)) for c in installed_coordinates())
    assert f"Delta Lake jars not found: {expected} " in str(missing.value)
