"""The docs stay true to the code: the generated reference pages are what the code generates
now, every relative link resolves, and the README stays the short path. No Spark session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from segmentation.cli import COMMANDS
from segmentation.config import Config
from segmentation.reference import PAGES, write_reference, yaml_value
from segmentation.tables import ALL_TABLES, SEGMENT_ASSIGNMENTS

PROJECT = Path(__file__).resolve().parent.parent
DOCS = PROJECT / "docs"
README = PROJECT / "README.md"
README_MAX_LINES = 250
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("reference")
    return {path.name: path.read_bytes() for path in write_reference(folder)}


@pytest.mark.parametrize("name", list(PAGES))
def test_generated_pages_match_the_code(generated, name):
    committed = DOCS / name
    assert committed.is_file(), f"docs/{name} is missing: run `make docs`"
    assert committed.read_bytes() == generated[name], (
        f"docs/{name} differs from what the code generates (edited by hand, or the code changed): "
        "run `make docs` and commit the result"
    )


def test_generation_is_deterministic(generated, tmp_path):
    again = {path.name: path.read_bytes() for path in write_reference(tmp_path)}
    assert again == generated
    assert all(str(PROJECT) not in text.decode() for text in again.values()), "an absolute path leaked"


def test_readme_is_the_short_path():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move reference material to docs/"
    )


def relative_links(markdown: str) -> list[str]:
    """Link targets outside code, without their #fragment; web links and in-page anchors aside."""
    prose = CODE_SPAN.sub("", FENCE.sub("", markdown))
    targets = [match.group(1) for match in LINK.finditer(prose)]
    return [
        target.split("#")[0]
        for target in targets
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


def test_the_link_finder_skips_code_web_links_and_anchors():
    text = "[a](docs/a.md#x) [b](https://example.org) [c](#top) `[d](no.md)`\n```\n[e](no.md)\n```\n"
    assert relative_links(text) == ["docs/a.md"]


@pytest.mark.parametrize(
    "page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda path: str(path.relative_to(PROJECT))
)
def test_relative_links_resolve(page):
    broken = [target for target in relative_links(page.read_text()) if not (page.parent / target).exists()]
    assert broken == [], f"{page.relative_to(PROJECT)} links to missing files: {broken}"


def key_row(page: str, key: str) -> list[str]:
    """The cells of the config page's row for a dotted key in the keys' tables (key, type,
    default, constraints, description), not in the tables of what the YAML files set."""
    rows = [
        [cell.strip() for cell in line.strip("|").split(" | ")]
        for line in page.splitlines()
        if line.startswith(f"| `{key}` |")
    ]
    rows = [cells for cells in rows if len(cells) == 5]
    assert len(rows) == 1, f"config.md lists `{key}` {len(rows)} times"
    return rows[0]


@pytest.mark.parametrize(
    ("section", "name"),
    [
        ("sweep", "restarts"),
        ("sweep", "max_rows"),
        ("selection", "min_segment_share"),
        ("generate", "customers"),
        ("assign", "min_match_jaccard"),
        ("mlflow", "tracking_uri"),
        ("features", "windows_days"),
    ],
)
def test_config_page_shows_real_defaults(generated, section, name):
    field = Config.model_fields[section].annotation.model_fields[name]
    cells = key_row(generated["config.md"].decode(), f"{section}.{name}")
    assert cells[2] == f"`{yaml_value(field.get_default(call_default_factory=True))}`"
    assert cells[4].replace("&lt;", "<") == field.description  # `<` outside code is escaped


def test_config_page_marks_required_keys_and_constraints(generated):
    page = generated["config.md"].decode()
    assert Config.model_fields["features"].annotation.model_fields["as_of_date"].is_required()
    assert key_row(page, "features.as_of_date")[2] == "required"
    assert key_row(page, "sweep.stability_sample")[3] == "> 0, <= 1"
    assert "### `conf/base.yaml`" in page and "### `conf/local.yaml`" in page


def test_tables_page_lists_every_table_and_the_assignment_columns(generated):
    page = generated["tables.md"].decode()
    for table in ALL_TABLES:
        assert f"### `{table.name}`" in page
    section = page.split(f"### `{SEGMENT_ASSIGNMENTS.name}`")[1].split("\n### ")[0]
    for field in SEGMENT_ASSIGNMENTS.schema.fields:
        null = "nullable" if field.nullable else "NOT NULL"
        assert f"| `{field.name}` | `{field.dataType.simpleString()}` | {null} |" in section


def test_cli_page_lists_every_command_and_option(generated):
    page = generated["cli.md"].decode()
    for name, command in COMMANDS.items():
        assert f"## `segment {name}`" in page
        section = page.split(f"## `segment {name}`")[1].split("\n## ")[0]
        assert command.help in section
        for option in ("--conf", "--set", "--verbose", *(o.flag for o in command.options)):
            assert f"| `{option}` |" in section
