"""The layout rules, checked on the source with the standard library: no import cycles, no
private Spark handles, column names only from the table contract, lint clean."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from segmentation import tables

PROJECT = Path(__file__).resolve().parent.parent
LIBRARY_AND_JOBS = sorted([*(PROJECT / "segmentation").rglob("*.py"), *(PROJECT / "jobs").glob("*.py")])
PRIVATE_SPARK = {"_jvm", "_jsc", "_jdf", "_jsparkSession", "_jconf", "_gateway", "_jwrite", "_jreader"}
# Calls whose string arguments name columns (pyspark.sql.functions, DataFrame and Column methods).
COLUMN_CALLS = {
    "col", "column", "alias", "select", "groupBy", "groupby", "agg", "withColumn", "withColumnRenamed",
    "drop", "dropDuplicates", "orderBy", "sort", "partitionBy", "join", "sum", "avg", "mean", "max", "min",
    "count", "countDistinct", "collect_list", "collect_set", "to_date", "datediff", "approxQuantile",
    "percentile_approx", "desc", "asc", "isin", "getField", "element_at",
}  # fmt: skip


def module_name(path: Path) -> str:
    relative = path.relative_to(PROJECT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Project modules imported by a file, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in LIBRARY_AND_JOBS}
    return {
        name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the graph as a path that returns to its start, or [] (iterative DFS)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            following = next(stack[-1], None)
            if following is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(following) == 1:
                return [*path[path.index(following) :], following]
            elif not state.get(following):
                state[following] = 1
                path.append(following)
                stack.append(iter(sorted(graph[following])))
    return []


def test_the_import_graph_of_the_library_and_jobs_has_no_cycle():
    graph = import_graph()
    assert "segmentation.cli" in graph and "segmentation.stages.assign" in graph
    assert find_cycle(graph) == [], f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_lower_layers_never_import_the_stages_or_the_cli():
    """Transforms, storage and tracking sit below the stages; only the stages themselves, the
    CLI, the reference-page generator (which documents the CLI) and the jobs look upward."""
    graph = import_graph()
    top = ("segmentation.stages", "segmentation.cli", "segmentation.reference", "jobs")
    for module, imported in graph.items():
        if module.startswith(top):
            continue
        upward = sorted(m for m in imported if m.startswith(("segmentation.stages", "segmentation.cli")))
        assert not upward, f"{module} imports {upward}"


@pytest.mark.parametrize("path", LIBRARY_AND_JOBS, ids=lambda path: str(path.relative_to(PROJECT)))
def test_no_private_spark_handles(path):
    private = [
        (node.lineno, node.attr)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_SPARK
    ]
    assert private == [], f"{path.name}: private Spark internals (not there under Spark Connect)"


# What a Spark Connect client does not have: a SparkContext, RDDs, and Delta's Python API
# (Maven Central has no Delta Connect server plugin for the pinned Delta). The one SparkContext in the library
# is the local session's, which is never built when a remote is configured.
NOT_OVER_CONNECT = {"sparkContext", "rdd", "SparkContext"}
CLASSIC_ONLY = {("segmentation/spark.py", "sparkContext")}


@pytest.mark.parametrize("path", LIBRARY_AND_JOBS, ids=lambda path: str(path.relative_to(PROJECT)))
def test_nothing_a_spark_connect_client_lacks(path):
    tree = ast.parse(path.read_text())
    relative = str(path.relative_to(PROJECT))
    used = sorted(
        (node.lineno, name)
        for node in ast.walk(tree)
        for name in [getattr(node, "attr", None) or getattr(node, "id", None)]
        if name in NOT_OVER_CONNECT and (relative, name) not in CLASSIC_ONLY
    )
    assert used == [], f"{relative}: not available over Spark Connect"
    delta_python_api = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in ("delta.tables", "delta")
    ]
    assert delta_python_api == [], f"{relative}: Delta's Python API (use Delta's SQL through spark.sql)"


def column_literals(source: str) -> list[tuple[int, str]]:
    """(line, name) of every column name written as a string literal where Spark reads a
    column: an argument of a column-taking call, or a subscript (`row["customer_id"]`)."""
    columns = {value for name, value in vars(tables).items() if name.isupper() and isinstance(value, str)}
    found = []
    for node in ast.walk(ast.parse(source)):
        candidates: list[ast.AST] = []
        if isinstance(node, ast.Call):
            function = (
                node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            )
            if function in COLUMN_CALLS:
                candidates = [*node.args, *(keyword.value for keyword in node.keywords)]
                candidates += [item for arg in node.args if isinstance(arg, ast.List) for item in arg.elts]
        elif isinstance(node, ast.Subscript):
            candidates = [node.slice]
        found += [
            (c.lineno, c.value)
            for c in candidates
            if isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value in columns
        ]
    return sorted(found)


def test_the_column_scanner_sees_the_usual_ways_of_naming_a_column():
    source = 'F.col("customer_id"); df.select("segment_id", x); row["monetary"]; F.lit("k"); d = {"k": 1}'
    assert column_literals(source) == [(1, "customer_id"), (1, "monetary"), (1, "segment_id")]


@pytest.mark.parametrize(
    "path",
    [path for path in LIBRARY_AND_JOBS if path.name != "tables.py"],
    ids=lambda path: str(path.relative_to(PROJECT)),
)
def test_columns_are_named_only_through_the_table_contract(path):
    assert column_literals(path.read_text()) == [], f"{path.name}: use the constants of segmentation.tables"


def test_ruff_lint_and_format_are_clean():
    ruff = Path(sys.executable).with_name("ruff")
    for command in (["check", "."], ["format", "--check", "."]):
        completed = subprocess.run(
            [str(ruff), *command], cwd=PROJECT, capture_output=True, text=True, timeout=120
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


def declared_requirements() -> set[str]:
    """Distribution names in setup.py's install_requires and its `spark` extra, normalised."""
    tree = ast.parse((PROJECT / "setup.py").read_text())
    keywords = {k.arg: k.value for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords}
    requirements = [ast.literal_eval(item) for item in keywords["install_requires"].elts]
    extras = {
        ast.literal_eval(k): v
        for k, v in zip(keywords["extras_require"].keys, keywords["extras_require"].values, strict=False)
    }
    requirements += [
        value.value if isinstance(value, ast.Constant) else f"{value.values[0].value}"
        for value in extras["spark"].elts
    ]
    return {re.split(r"[=<>\[ ]", req)[0].lower().replace("_", "-") for req in requirements}


# Import names more than one installed distribution provides, and the one the project declares.
PROVIDED_BY = {"mlflow": "mlflow"}  # mlflow-skinny installs the same package


def test_every_third_party_import_of_the_library_is_a_declared_requirement():
    distributions = packages_distributions()
    imported = set()
    for path in LIBRARY_AND_JOBS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    own = {"segmentation", "jobs"}
    third_party = {n for n in imported - own if n in distributions and n not in sys.stdlib_module_names}
    assert {"pyspark", "mlflow", "pydantic", "yaml"} <= third_party
    needed = {PROVIDED_BY.get(name, distributions[name][0]).lower().replace("_", "-") for name in third_party}
    assert needed - declared_requirements() == set()
