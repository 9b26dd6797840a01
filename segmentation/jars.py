"""The jars a session started on this machine loads for Delta Lake, from the local Maven repository.

From Delta 4.1 on, the delta-spark artifact names the Spark line it was built for
(`delta-spark_4.1_2.13`), and Delta pulls in delta-kernel and Unity Catalog client jars. A local
session has no resolver (`make setup` fetched the jars with Maven, and Spark loads them offline),
so the list below is the runtime closure of delta-spark, `mvn dependency:list
-DincludeScope=runtime` on `io.delta:delta-spark_4.1_2.13:4.4.0`, less what pyspark's own jars
already carry (Spark, Scala, Hadoop, Parquet, Jackson, log4j, RoaringBitmap 1.x). A cluster or a
Databricks runtime brings its own Delta and needs none of this.

Standard library only: the Makefile runs this file with the system Python, before the virtual
environment exists, to learn what to fetch.
"""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

# Delta's own artifacts, all at the Delta version; `{spark}` is the Spark line (major.minor).
DELTA_ARTIFACTS = (
    "delta-spark_{spark}_2.13",
    "delta-storage",
    "delta-kernel-api",
    "delta-kernel-defaults",
    "delta-kernel-unitycatalog",
)

# Delta's runtime dependencies missing from pyspark's jars, per (Spark line, Delta version), at
# the versions Delta declares (jackson-datatype-jdk8 at pyspark's own Jackson, so that one
# Jackson is loaded). A pair not listed is an error, not a guess: re-derive the list.
DELTA_DEPENDENCIES = {
    ("4.1", "4.4.0"): (
        "io.unitycatalog:unitycatalog-client:0.6.0",
        "io.unitycatalog:unitycatalog-hadoop:0.6.0",
        "com.fasterxml.jackson.datatype:jackson-datatype-jdk8:2.21.2",
        "javax.annotation:javax.annotation-api:1.3.2",
    ),
}


def delta_coordinates(pyspark_version: str, delta_version: str) -> list[str]:
    """Maven coordinates (group:artifact:version) of every jar a local Delta session loads.

    >>> delta_coordinates("4.1.4", "4.4.0")[:2]
    ['io.delta:delta-spark_4.1_2.13:4.4.0', 'io.delta:delta-storage:4.4.0']
    """
    spark_line = ".".join(pyspark_version.split(".")[:2])
    dependencies = DELTA_DEPENDENCIES.get((spark_line, delta_version))
    if dependencies is None:
        raise ValueError(
            f"segmentation/jars.py lists no jars for Spark {spark_line} with Delta {delta_version}: "
            f"add them (`mvn dependency:list` of io.delta:delta-spark_{spark_line}_2.13:{delta_version}, "
            "less the jars pyspark ships)"
        )
    own = [f"io.delta:{artifact.format(spark=spark_line)}:{delta_version}" for artifact in DELTA_ARTIFACTS]
    return [*own, *dependencies]


def jar_path(maven_repo: Path, coordinate: str) -> Path:
    """Where Maven keeps a jar in a local repository.

    >>> jar_path(Path("/m2"), "io.delta:delta-storage:4.4.0").as_posix()
    '/m2/io/delta/delta-storage/4.4.0/delta-storage-4.4.0.jar'
    """
    group, artifact, version = coordinate.split(":")
    return maven_repo.joinpath(*group.split("."), artifact, version, f"{artifact}-{version}.jar")


def _installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description="Print the Delta jars' paths, or one jar's coordinate.")
    parser.add_argument("--maven-repo", required=True, type=Path)
    parser.add_argument("--pyspark", default=_installed("pyspark"), help="default: the installed one")
    parser.add_argument("--delta", default=_installed("delta-spark"), help="default: the installed one")
    parser.add_argument("--coordinate-of", metavar="JAR", help="print the coordinate of this jar path")
    parser.add_argument("--separator", default=" ", help="between the paths (spark-submit --jars: ',')")
    args = parser.parse_args()
    if not (args.pyspark and args.delta):
        parser.error("pyspark or delta-spark is not installed here: name their versions")
    try:
        coordinates = delta_coordinates(args.pyspark, args.delta)
    except ValueError as exc:
        parser.error(str(exc))
    by_path = {str(jar_path(args.maven_repo, coordinate)): coordinate for coordinate in coordinates}
    if args.coordinate_of is None:
        print(args.separator.join(by_path))
    elif args.coordinate_of in by_path:
        print(by_path[args.coordinate_of])
    else:
        parser.error(f"{args.coordinate_of} is not one of the Delta jars")


if __name__ == "__main__":
    main()
