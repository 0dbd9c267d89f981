"""The documentation's tables against what they describe (no Envoy).

The attack table in tests/README.md is a readable copy of the catalogue (`src/attacks.rs`,
exported as tests/attack_catalogue.json); the code layout in README.md must name every source
file. Both drift silently when someone adds a case or a module, so they are checked here.
"""
from __future__ import annotations

import difflib
import json
import re
import subprocess

import pytest

from envoy_config import REPO_ROOT

README = REPO_ROOT / "README.md"
TESTS_README = REPO_ROOT / "tests" / "README.md"
CATALOGUE = REPO_ROOT / "tests" / "attack_catalogue.json"


def section(path, heading: str) -> str:
    """The text under `## heading`, up to the next heading of the same level."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"{path.name} has no section `## {heading}`"
    return match.group(1)


def table(text: str) -> tuple[list[str], list[list[str]]]:
    """The first markdown table in `text`: its header cells and rows of cells (no cell in
    these tables holds a `|`)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(lines) >= 2, "no table found"
    cells = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    return cells[0], [row for row in cells[1:] if not set("".join(row)) <= set("-:")]


def render(rows) -> list[str]:
    return [f"| {name} | {status} | `{reason}` |" for name, status, reason in rows]


def test_attack_table_matches_the_catalogue():
    catalogue = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    # Token cases first, then the session cases (which need a session bound first).
    expected = [(c["name"], str(c["status"]), c["reason"])
                for c in catalogue["cases"] + catalogue["sessions"]]
    header, rows = table(section(TESTS_README, "Attack catalogue"))
    assert header == ["case", "status", "reason"], header
    assert all(len(row) == 3 for row in rows), [row for row in rows if len(row) != 3]
    documented = [(name, status, reason.strip("`")) for name, status, reason in rows]
    if documented != expected:
        diff = difflib.unified_diff(render(documented), render(expected),
                                    "tests/README.md", "tests/attack_catalogue.json", lineterm="")
        pytest.fail("the attack table in tests/README.md differs from the catalogue "
                    "(src/attacks.rs, exported as tests/attack_catalogue.json); make the table "
                    "match:\n" + "\n".join(diff))


def layout_paths() -> set[str]:
    """Every path in backquotes in the first column of README's code-layout table."""
    _, rows = table(section(README, "Code layout"))
    return {path for row in rows for path in re.findall(r"`([^`]+)`", row[0])}


def test_code_layout_names_every_source_file_and_folder():
    src = REPO_ROOT / "src"
    wanted = {f"src/{p.name}" for p in src.glob("*.rs")}
    wanted |= {f"src/{p.name}/" for p in src.iterdir() if p.is_dir()}
    missing = sorted(wanted - layout_paths())
    assert not missing, f"README.md's code layout does not name: {', '.join(missing)}"


def test_code_layout_names_every_top_level_folder():
    # Tracked folders only: build output, .venv and node_modules are not the code's layout.
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell tracked folders from local ones")
    folders = {line.split("/")[0] + "/" for line in listed.stdout.splitlines() if "/" in line}
    # `src/` is named file by file (the test above).
    paths = layout_paths()
    missing = sorted(f for f in folders if not any(p.startswith(f) for p in paths))
    assert not missing, f"README.md's code layout does not name: {', '.join(missing)}"


def test_code_layout_names_only_what_exists():
    stale = sorted(p for p in layout_paths() if not (REPO_ROOT / p).exists())
    assert not stale, f"README.md's code layout names what does not exist: {', '.join(stale)}"
