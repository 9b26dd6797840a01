"""The Databricks Asset Bundle, validated offline for each target: the job definition is a
valid JobSettings, its tasks run entry points the wheel really has, with parameters the CLI
really accepts, in the pipeline's order, on a job cluster (dev, prod) or serverless."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from databricks.sdk.service.jobs import JobSettings

from deploy.standalone_cluster import build_wheel
from segmentation.cli import COMMANDS, build_parser
from segmentation.config import load_config
from segmentation.stages.pipeline import STAGES

PROJECT = Path(__file__).resolve().parent.parent
VARIABLE = re.compile(r"\$\{var\.(\w+)\}")
JOB_PARAMETER = re.compile(r"\{\{job\.parameters\.(\w+)\}\}")
TARGETS = ("dev", "prod", "serverless")
WHEEL = "./dist/*.whl"  # the artifact's wheel, relative to databricks.yml, where the targets name it
# How the bundle merges a target's sequences into the top-level ones: item by item, by key.
MERGE_KEYS = {"tasks": "task_key", "job_clusters": "job_cluster_key", "environments": "environment_key"}


def load_bundle(target: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """databricks.yml and the jobs of the files it includes, with the target's resources merged
    in and `${var.*}` at their defaults."""
    bundle = yaml.safe_load((PROJECT / "databricks.yml").read_text())
    defaults = {name: spec["default"] for name, spec in bundle["variables"].items()}
    jobs: dict[str, dict[str, Any]] = {}
    for pattern in bundle["include"]:
        for path in sorted(PROJECT.glob(pattern)):
            jobs.update(yaml.safe_load(path.read_text())["resources"]["jobs"])
    overrides = bundle["targets"][target].get("resources", {}).get("jobs", {})
    assert set(overrides) <= set(jobs), "a target may only add to the jobs the bundle defines"
    return bundle, _substitute(_merge(jobs, overrides), defaults)


def _merge(base: Any, override: Any, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, value in override.items():
            merged[k] = _merge(base[k], value, k) if k in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list) and key in MERGE_KEYS:
        by = MERGE_KEYS[key]
        merged = {item[by]: item for item in base}
        for item in override:
            merged[item[by]] = _merge(merged[item[by]], item) if item[by] in merged else item
        return list(merged.values())
    return override


def _substitute(node: Any, defaults: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: _substitute(value, defaults) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(value, defaults) for value in node]
    if isinstance(node, str):
        whole = VARIABLE.fullmatch(node)
        if whole:  # keeps the default's type (num_workers is a number)
            return defaults[whole.group(1)]
        return VARIABLE.sub(lambda match: str(defaults[match.group(1)]), node)
    return node


@pytest.fixture(scope="module", params=TARGETS)
def bundle_job(request) -> dict[str, Any]:
    bundle, jobs = load_bundle(request.param)
    assert bundle["bundle"]["name"] == "customer-segmentation"
    assert set(bundle["targets"]) == set(TARGETS)
    assert list(jobs) == ["segmentation"]
    return jobs["segmentation"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def wheel_entry_points(wheel: Path) -> tuple[str, dict[str, str]]:
    """(distribution name, console scripts) of the wheel the bundle's artifact builds."""
    with zipfile.ZipFile(wheel) as archive:
        (entry_points_file,) = [name for name in archive.namelist() if name.endswith("entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(entry_points_file).decode())
    return wheel.name.split("-")[0], dict(parser["console_scripts"])


def test_job_definition_round_trips_through_job_settings(bundle_job):
    settings = JobSettings.from_dict(bundle_job)
    # as_dict drops what JobSettings does not know, so equality also catches a misspelt key.
    assert settings.as_dict() == bundle_job
    assert JobSettings.from_dict(settings.as_dict()) == settings
    parameters = {parameter.name for parameter in settings.parameters}
    assert parameters == {"as_of_date", "conf", "catalog", "schema"}


def test_tasks_run_wheel_entry_points_with_parameters_the_cli_accepts(bundle_job, wheel_entry_points):
    settings = JobSettings.from_dict(bundle_job)
    package, console_scripts = wheel_entry_points
    job_defaults = {parameter.name: parameter.default for parameter in settings.parameters}
    used_parameters = set()
    for task in settings.tasks:
        wheel_task = task.python_wheel_task
        assert wheel_task.package_name == package
        assert wheel_task.entry_point in console_scripts, f"task {task.task_key}: no such entry point"
        assert console_scripts[wheel_task.entry_point] == "segmentation.cli:main"
        # The first parameter, {{task.name}}, resolves to the task's key: the subcommand.
        used_parameters |= {name for arg in wheel_task.parameters for name in JOB_PARAMETER.findall(arg)}
        args = [
            JOB_PARAMETER.sub(lambda m: job_defaults[m.group(1)], arg).replace("{{task.name}}", task.task_key)
            for arg in wheel_task.parameters
        ]
        assert args[0] == task.task_key and args[0] in COMMANDS
        assert "{{" not in " ".join(args), f"task {task.task_key}: a reference that nothing resolves"
        parsed = build_parser().parse_args(args)  # argparse exits on an unknown option
        cfg = load_config(parsed.conf, parsed.overrides)  # raises on an unknown key or overlay
        assert (cfg.lake.catalog, cfg.lake.schema) == (job_defaults["catalog"], job_defaults["schema"])
        assert str(cfg.features.as_of_date) == job_defaults["as_of_date"]
        assert cfg.mlflow.tracking_uri == "databricks"
    assert used_parameters == set(job_defaults), "every job parameter reaches the tasks"


def test_classic_targets_run_every_task_on_the_job_cluster_with_the_wheel():
    for target in ("dev", "prod"):
        settings = JobSettings.from_dict(load_bundle(target)[1]["segmentation"])
        (cluster,) = settings.job_clusters
        assert cluster.new_cluster.spark_version == "18.x-scala2.13"
        assert cluster.new_cluster.data_security_mode.value == "SINGLE_USER"
        assert not settings.environments
        for task in settings.tasks:
            assert task.job_cluster_key == cluster.job_cluster_key, (target, task.task_key)
            assert [library.whl for library in task.libraries] == [WHEEL]
            assert task.environment_key is None and task.new_cluster is None


def test_serverless_target_runs_every_task_in_an_environment_with_the_wheel():
    settings = JobSettings.from_dict(load_bundle("serverless")[1]["segmentation"])
    # Serverless jobs compute: no cluster of any kind, no task libraries (serverless takes
    # none); each task names the environment that installs the wheel.
    assert not settings.job_clusters
    (environment,) = settings.environments
    assert environment.spec.environment_version == "5"
    assert environment.spec.dependencies == [WHEEL]
    for task in settings.tasks:
        assert task.environment_key == environment.environment_key, task.task_key
        assert task.job_cluster_key is None and task.new_cluster is None and task.existing_cluster_id is None
        assert not task.libraries


def test_task_graph_is_acyclic_and_in_pipeline_order(bundle_job):
    settings = JobSettings.from_dict(bundle_job)
    upstream = {task.task_key: {dep.task_key for dep in task.depends_on or []} for task in settings.tasks}
    assert all(deps <= set(upstream) for deps in upstream.values())
    order = []
    while len(order) < len(upstream):  # Kahn's algorithm; exactly one task is ready at a time
        ready = [key for key, deps in upstream.items() if key not in order and deps <= set(order)]
        assert len(ready) == 1, f"after {order}: ready {ready} (a cycle, or stages in no fixed order)"
        order.append(ready[0])
    stage_commands = {command.run: name for name, command in COMMANDS.items()}
    assert order == [stage_commands[stage] for stage in STAGES]
    assert order == ["ingest", "features", "clv", "train", "assign", "report"]


def test_the_wheel_alone_carries_the_configs(wheel, tmp_path):
    """A Databricks task or a spark-submit driver imports the package from the wheel, zipped,
    with no conf/ folder beside it; `--conf databricks` must still resolve."""
    probe = (
        "import segmentation.config as config; "
        "print(config.__file__); print(config.load_config(['databricks']).lake.catalog)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(wheel)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    module_file, catalog = result.stdout.split()
    assert module_file == str(wheel / "segmentation" / "config.py")
    assert catalog == "main"


def test_the_wheel_installs_one_package_and_one_command(wheel, wheel_entry_points):
    """No top-level `jobs` package lands in site-packages: the spark-submit scripts stay files."""
    with zipfile.ZipFile(wheel) as archive:
        top_level = {
            name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith("-info")
        }
    assert top_level == {"segmentation"}
    assert wheel_entry_points[1] == {"segment": "segmentation.cli:main"}
