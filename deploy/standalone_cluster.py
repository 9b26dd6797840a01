"""`make cluster-demo`: the pipeline under spark-submit on a real Spark standalone cluster.

A master and two workers start on 127.0.0.1 with the installed pyspark's own `spark-class`
launcher; the project's wheel (the `segmentation` package) goes to the driver and executors in
`--py-files` and Delta's jars in `--jars`, exactly as on a real cluster, and spark-submit runs
the thin scripts `jobs/generate_data.py` and `jobs/pipeline.py` as files (they are not in the
wheel: each only calls `segmentation.cli.main`). Every path handed to the jobs is absolute:
the executors run in the workers' own folders, not in the driver's working directory.
The cluster this starts is stopped again by process id, whatever happens.

    python deploy/standalone_cluster.py --customers 20000 --root cluster-demo
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

from segmentation.config import overrides_under
from segmentation.spark import SESSION_CONF, delta_jars
from segmentation.tracking import user_environment

PROJECT = Path(__file__).resolve().parent.parent
SPARK_HOME = Path(pyspark.__file__).resolve().parent
HOST = "127.0.0.1"
# What the wheel is built from; copied first, so nothing else in the checkout (a stale build/
# folder, say) can end up in it.
WHEEL_SOURCES = ("setup.py", "pyproject.toml", "conf", "segmentation")
JOB_SCRIPTS = ("jobs/generate_data.py", "jobs/pipeline.py")
JOB_TIMEOUT_SECONDS = 3600  # one spark-submit job; a hung one fails the demo instead of stalling it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class StandaloneCluster:
    """One master and `workers` workers on loopback, started and stopped by this object."""

    root: Path
    workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "2g"
    master_port: int = field(default_factory=free_port)
    webui_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    def worker_dir(self, index: int) -> Path:
        return self.root / f"worker-{index}"

    def start(self, timeout: float = 120.0) -> None:
        self._launch(
            "master",
            "org.apache.spark.deploy.master.Master",
            ["--host", HOST, "--port", str(self.master_port), "--webui-port", str(self.webui_port)],
        )
        for index in range(self.workers):
            self.worker_dir(index).mkdir(parents=True, exist_ok=True)
            self._launch(
                f"worker-{index}",
                "org.apache.spark.deploy.worker.Worker",
                [
                    "--host",
                    HOST,
                    "--cores",
                    str(self.worker_cores),
                    "--memory",
                    self.worker_memory,
                    "--work-dir",
                    str(self.worker_dir(index)),
                    "--webui-port",
                    str(free_port()),
                    self.master_url,
                ],
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[1]} exited with {process.returncode}; see {self.root}")
            with contextlib.suppress(OSError, ValueError):
                if self.state().get("aliveworkers", 0) == self.workers:
                    return
            time.sleep(1)
        raise RuntimeError(
            f"{self.workers} workers did not register with {self.master_url} in {timeout:.0f} s; "
            f"their logs are in {self.root}"
        )

    def _launch(self, name: str, main_class: str, args: list[str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": HOST, "SPARK_NO_DAEMONIZE": "1"}
        with (self.root / f"{name}.log").open("w") as log:  # the daemon keeps its own descriptor
            # spark-class execs the JVM, so this pid is the daemon's own.
            process = subprocess.Popen(
                [str(SPARK_HOME / "bin" / "spark-class"), main_class, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.processes.append(process)

    def state(self) -> dict:
        """The master's own view: workers, running and completed applications."""
        with urllib.request.urlopen(f"http://{HOST}:{self.webui_port}/json/", timeout=5) as response:
            return json.load(response)

    def stop(self) -> None:
        stop_process_groups(list(reversed(self.processes)))  # the workers before the master
        self.processes.clear()

    def executor_tasks(self) -> dict[str, int]:
        """Tasks each executor finished, from the executors' own logs in the workers' folders:
        `<worker dir>/<app id>/<executor id>/stderr`."""
        return {
            f"{log.parent.parent.name}/{log.parent.parent.parent.name}/executor-{log.parent.name}": sum(
                "Finished task" in line for line in log.read_text(errors="replace").splitlines()
            )
            for index in range(self.workers)
            for log in sorted(self.worker_dir(index).glob("app-*/*/stderr"))
        }

    @contextlib.contextmanager
    def running(self) -> Iterator[StandaloneCluster]:
        try:
            self.start()
            yield self
        finally:
            self.stop()


def stop_process_groups(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each process's group (each was started in a session of its own), in order;
    SIGKILL to a group whose leader has not exited 30 s later."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def remove_outputs(root: Path, names: tuple[str, ...]) -> None:
    """Remove what an earlier demo left under `root`: each name a folder or a file."""
    for name in names:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def build_wheel(dest: Path) -> Path:
    """The project's wheel, as a user ships it to a cluster, built from a clean copy of its
    sources (setuptools would otherwise pack whatever a stale build/ folder still holds)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="wheel-sources-") as folder:
        sources = Path(folder)
        for name in WHEEL_SOURCES:
            source = PROJECT / name
            if source.is_dir():
                shutil.copytree(source, sources / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, sources / name)
        subprocess.run(
            [
                sys.executable,
                *("-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
                *("-w", str(dest.resolve()), "."),
            ],
            cwd=sources,
            check=True,
            timeout=600,
        )
    (wheel,) = dest.glob("customer_segmentation-*.whl")
    return wheel


def submit_command(
    master_url: str, wheel: Path, jars: list[Path], *, script: str, job_args: list[str]
) -> list[str]:
    """spark-submit in client mode: the driver here, the executors on the workers."""
    settings = {
        **SESSION_CONF,
        "spark.executor.memory": "1g",
        "spark.executor.cores": "1",
        "spark.sql.shuffle.partitions": "8",
        "spark.driver.host": HOST,
        "spark.pyspark.python": sys.executable,
        "spark.ui.showConsoleProgress": "false",
        "spark.log.level": "WARN",  # the driver's; executors keep INFO, their logs count tasks below
    }
    return [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--master",
        master_url,
        "--deploy-mode",
        "client",
        "--name",
        f"customer-segmentation {Path(script).stem}",
        "--driver-memory",
        "2g",
        "--jars",
        ",".join(str(jar) for jar in jars),
        "--py-files",
        str(wheel),
        *(arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")),
        str(PROJECT / script),
        *job_args,
    ]


def run_echoed(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float, shown: str = "") -> str:
    """Run `command` (raising when it fails or outlives `timeout`), printing it (as `shown` when
    given) and then what it printed to stdout; returns that output."""
    print("$ " + (shown or shlex.join(command)), flush=True)
    done = subprocess.run(
        command, check=True, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True, timeout=timeout
    )
    print(done.stdout, flush=True)
    return done.stdout


@dataclass(frozen=True)
class DemoResult:
    applications: list[dict]  # the master's completed applications
    executor_tasks: dict[str, int]  # "<app id>/<worker>/executor-<id>": tasks finished
    job_output: dict[str, str]  # what each submitted script printed to stdout


def run_demo(root: Path, customers: int, *, extra_overrides: list[str], maven_repo: str) -> DemoResult:
    """Generate and run the whole pipeline on a fresh standalone cluster. Raises when a job fails."""
    root = root.resolve()
    remove_outputs(root, ("lake", "raw", "mlflow.db", "mlruns", "reports", "cluster"))
    overrides = [*overrides_under(root), f"generate.customers={customers}", *extra_overrides]
    jars = delta_jars(maven_repo)
    wheel = build_wheel(root / "dist")
    cluster = StandaloneCluster(root / "cluster")
    job_output: dict[str, str] = {}
    with cluster.running():
        print(f"standalone cluster: master {cluster.master_url}, {cluster.workers} workers", flush=True)
        args = ["--conf", "local", *(f"--set={override}" for override in overrides)]
        env = {**user_environment(), "PYSPARK_PYTHON": sys.executable}
        for script in JOB_SCRIPTS:
            command = submit_command(cluster.master_url, wheel, jars, script=script, job_args=args)
            job_output[script] = run_echoed(command, cwd=root, env=env, timeout=JOB_TIMEOUT_SECONDS)
        apps = sorted(cluster.state()["completedapps"], key=lambda app: app["starttime"])
        tasks = cluster.executor_tasks()
    print("applications the master ran:")
    for app in apps:
        print(f"  {app['id']}  {app['name']:<40} {app['state']:<9} {app['duration'] / 1000:.1f} s")
    print("tasks finished per executor:")
    for executor, finished in tasks.items():
        print(f"  {executor:<56} {finished:>6,}")
    return DemoResult(apps, tasks, job_output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=PROJECT / "cluster-demo", help="everything goes here")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--maven-repo", default=os.environ.get("MAVEN_REPO", "~/.m2/repository"))
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = parser.parse_args()
    try:
        run_demo(args.root, args.customers, extra_overrides=args.overrides, maven_repo=args.maven_repo)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
