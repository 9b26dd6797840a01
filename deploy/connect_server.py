"""`make connect-demo`: the pipeline as a Spark Connect client, the way Databricks serverless
jobs and standard access mode clusters run it.

A Spark Connect server starts on 127.0.0.1 at a free port with the installed pyspark's own
launcher (`spark-submit --class org.apache.spark.sql.connect.service.SparkConnectServer`), with
Delta's jars and SQL extension and the settings a local session of the project would have
(`segmentation.spark.local_session_conf`). Every `segment` command then runs with
`SPARK_REMOTE=sc://127.0.0.1:<port>`: no JVM in the client, everything through the server. The
server is stopped again by process id, whatever happens.

    python -m deploy.connect_server --customers 2000 --root connect-demo
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from deploy.standalone_cluster import (
    HOST,
    PROJECT,
    SPARK_HOME,
    free_port,
    remove_outputs,
    run_echoed,
    stop_process_groups,
)
from segmentation.config import SparkConfig, overrides_under
from segmentation.spark import local_session_conf
from segmentation.tracking import user_environment

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
STARTED = "Spark Connect server started at"
COMMAND_TIMEOUT_SECONDS = 3600  # one `segment` command; a hung one fails the demo instead of stalling it
# A client's JAVA_HOME: a client that tried to start a JVM of its own (a classic session) would
# fail on it, so a command that succeeds ran on the server.
NO_JVM = "/nonexistent/no-jvm-in-a-spark-connect-client"


@dataclass
class ConnectServer:
    """One Spark Connect server on loopback, started and stopped by this object."""

    root: Path
    spark: SparkConfig
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"sc://{HOST}:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "connect-server.log"

    def command(self) -> list[str]:
        settings = {
            **local_session_conf(self.spark),
            "spark.connect.grpc.binding.address": HOST,
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.driver.host": HOST,
        }
        driver_memory = settings.pop("spark.driver.memory")  # a JVM option: spark-submit's own flag
        return [
            str(SPARK_HOME / "bin" / "spark-submit"),
            *("--class", SERVER_CLASS),
            *("--driver-memory", driver_memory),
            *(arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")),
            "spark-internal",  # no application jar: the server's class is on pyspark's own classpath
        ]

    def start(self, timeout: float = 180.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # The server's Python workers (pandas UDFs) run this interpreter, whose packages they need.
        env = {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_LOCAL_IP": HOST,
            "PYSPARK_PYTHON": sys.executable,
        }
        env.pop("SPARK_REMOTE", None)
        with self.log.open("w") as log:  # the server keeps its own descriptor
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"the Spark Connect server exited with {code}; see {self.log}")
            if STARTED in self.log.read_text(errors="replace"):
                return
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the Spark Connect server did not start in {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process_groups([self.process])

    @contextlib.contextmanager
    def running(self) -> Iterator[ConnectServer]:
        try:
            self.start()
            yield self
        finally:
            self.stop()


def run_segment(url: str, root: Path, args: list[str], *, through: str = "environment") -> str:
    """One `segment` command as a Spark Connect client of `url`, named in SPARK_REMOTE
    (`through="environment"`) or by `--set spark.remote` (`"config"`); its output, echoed."""
    command = [str(Path(sys.executable).parent / "segment"), *args]
    env = {**user_environment(), "JAVA_HOME": NO_JVM}
    env.pop("SPARK_REMOTE", None)
    shown = ""  # the command itself
    if through == "environment":
        env["SPARK_REMOTE"] = url
        shown = f"SPARK_REMOTE={url} {shlex.join(command)}"
    else:
        command.append(f"--set=spark.remote={url}")
    return run_echoed(command, cwd=root, env=env, timeout=COMMAND_TIMEOUT_SECONDS, shown=shown)


def run_demo(root: Path, customers: int, *, spark: SparkConfig, extra_overrides: list[str]) -> dict[str, str]:
    """Generate, run the whole pipeline, then list, show, compare and report the assignments,
    every command as a client of a fresh Spark Connect server; what each printed, by command.

    A second assignment (features and assign a month earlier, scored by the same model) gives
    `diff` two assignments to compare. `history`, `show` and `diff` name the server by the config
    key `spark.remote`, the others by SPARK_REMOTE; no client has a Java to start a JVM with."""
    root = root.resolve()
    remove_outputs(root, ("lake", "raw", "mlflow.db", "mlruns", "reports"))
    root.mkdir(parents=True, exist_ok=True)
    sets = [f"--set={override}" for override in [*overrides_under(root), *extra_overrides]]
    earlier = "--set=features.as_of_date=2025-11-30"
    steps = {
        "generate": ["generate", *sets, f"--set=generate.customers={customers}"],
        "pipeline": ["pipeline", *sets],
        "features": ["features", *sets, earlier],
        "assign": ["assign", *sets, earlier],
        "history": ["history", *sets],
        "show": ["show", *sets],
        "diff": ["diff", *sets],
        "report": ["report", *sets],
    }
    server = ConnectServer(root / "server", spark)
    with server.running():
        print(f"Spark Connect server: {server.url} (pid {server.process.pid}), log {server.log}", flush=True)
        return {
            name: run_segment(
                server.url,
                root,
                args,
                through="config" if name in ("history", "show", "diff") else "environment",
            )
            for name, args in steps.items()
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=PROJECT / "connect-demo", help="everything goes here")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--maven-repo", default=os.environ.get("MAVEN_REPO", "~/.m2/repository"))
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args()
    try:
        run_demo(
            args.root,
            args.customers,
            spark=SparkConfig(maven_repo=args.maven_repo),
            extra_overrides=args.overrides,
        )
    except subprocess.CalledProcessError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
