"""The documentation stays true to the code and data it describes: generated pages match their sources, the
README stays short with its two commands first, and the architecture guide names every module."""

import re
import subprocess
import sys

from tests.conftest import REPO


def test_the_experiment_log_page_is_generated_from_its_data():
    result = subprocess.run([sys.executable, "eval/log.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_readme_is_short_and_gives_the_two_commands_first():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(re.findall(r"\S+", text)) <= 1500
    first = "\n".join(text.splitlines()[:40])
    assert "make chat" in first and "make test" in first


def test_the_architecture_guide_names_every_module():
    guide = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "rag").rglob("*.py") if p.name != "__init__.py")
    missing = [m for m in modules if f"`{m.removeprefix('rag/')}`" not in guide and f"`{m}`" not in guide]
    assert not missing, f"docs/architecture.md does not say what these hold: {missing}"
