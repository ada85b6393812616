"""The docs say what the project does: tables render, every extra is listed, CONTRIBUTING runs the Makefile."""

import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

ROOT = Path(__file__).resolve().parents[1]


def _pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_no_escaped_pipe_in_a_table_cell():
    """mkdocs' Markdown shows ``\\|`` inside inline code as a backslash and a pipe: write ``{a,b}`` instead."""
    found = [
        f"{page.relative_to(ROOT)}:{n}: {line.strip()}"
        for page in _pages()
        for n, line in enumerate(page.read_text().splitlines(), 1)
        if line.lstrip().startswith("|") and "\\|" in line
    ]
    assert not found, "\n".join(found)


def test_install_page_lists_every_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    install = (ROOT / "docs" / "install.md").read_text()
    rows = {m.group(1) for m in re.finditer(r"^\| `([\w-]+)` \|", install, re.MULTILINE)}
    assert set(extras) <= rows, f"extras missing from docs/install.md's table: {sorted(set(extras) - rows)}"
    makefile = (ROOT / "Makefile").read_text()
    installed = re.search(r'pip install --quiet -e "\.\[([\w,]+)\]"', makefile).group(1)
    assert f'pip install -e ".[{installed}]"' in install  # what `make` installs, as the page says


def _make_target(name: str) -> list[str]:
    """The commands of one Makefile target, without ``$(BIN)/``."""
    lines = (ROOT / "Makefile").read_text().split(f"\n{name}:", 1)[1].splitlines()[1:]
    body = [line.strip() for line in lines[: next(i for i, line in enumerate(lines) if not line.startswith("\t"))]]
    return [line.replace("$(BIN)/", "") for line in body]


def test_contributing_runs_the_makefile_checks():
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    checks = contributing.split("## Checks", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in checks.strip().splitlines()]
    expected = _make_target("lint") + _make_target("docs")
    assert commands[: len(expected)] == expected
    makefile = (ROOT / "Makefile").read_text()
    installed = re.search(r'pip install --quiet -e "\.\[([\w,]+)\]"', makefile).group(1)
    assert f'pip install -e ".[{installed}]"' in contributing
