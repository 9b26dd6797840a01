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
from pathlib import Path

# Delta's own artifacts, all at the Delta version; `{spark}` is the Spark line (major.minor).
DELTA_ARTIFACTS = (
    "delta-spark_{spark}_2.13",
    "delta-storage",
    "delta-kernel-api",
    "delta-kernel-defaults",
    "delta-kernel-unitycatalog",
)

# Delta's runtime dependencies missing from pyspark's jars, at the versions Delta 4.4.0 declares
# (jackson-datatype-jdk8 at pyspark 4.1's Jackson, so that one Jackson version is loaded).
DELTA_DEPENDENCIES = (
    "io.unitycatalog:unitycatalog-client:0.6.0",
    "io.unitycatalog:unitycatalog-hadoop:0.6.0",
    "com.fasterxml.jackson.datatype:jackson-datatype-jdk8:2.21.2",
    "javax.annotation:javax.annotation-api:1.3.2",
)


def delta_coordinates(pyspark_version: str, delta_version: str) -> list[str]:
    """Maven coordinates (group:artifact:version) of every jar a local Delta session loads.

    >>> delta_coordinates("4.1.4", "4.4.0")[:2]
    ['io.delta:delta-spark_4.1_2.13:4.4.0', 'io.delta:delta-storage:4.4.0']
    """
    spark_line = ".".join(pyspark_version.split(".")[:2])
    own = [f"io.delta:{artifact.format(spark=spark_line)}:{delta_version}" for artifact in DELTA_ARTIFACTS]
    return [*own, *DELTA_DEPENDENCIES]


def jar_path(maven_repo: Path, coordinate: str) -> Path:
    """Where Maven keeps a jar in a local repository.

    >>> jar_path(Path("/m2"), "io.delta:delta-storage:4.4.0").as_posix()
    '/m2/io/delta/delta-storage/4.4.0/delta-storage-4.4.0.jar'
    """
    group, artifact, version = coordinate.split(":")
    return maven_repo.joinpath(*group.split("."), artifact, version, f"{artifact}-{version}.jar")


def main() -> None:
    parser = argparse.ArgumentParser(description="Print the Delta jars' paths, or one jar's coordinate.")
    parser.add_argument("--pyspark", required=True, help="the pinned pyspark version")
    parser.add_argument("--delta", required=True, help="the pinned delta-spark version")
    parser.add_argument("--maven-repo", required=True, type=Path)
    parser.add_argument("--coordinate-of", metavar="JAR", help="print the coordinate of this jar path")
    args = parser.parse_args()
    by_path = {
        str(jar_path(args.maven_repo, coordinate)): coordinate
        for coordinate in delta_coordinates(args.pyspark, args.delta)
    }
    print(by_path[args.coordinate_of] if args.coordinate_of else " ".join(by_path))


if __name__ == "__main__":
    main()
