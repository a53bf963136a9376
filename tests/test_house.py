"""The house: every module of ``rag/`` imports only from its own room or the rooms below it, no two modules import
each other (even through others), and the house stays small enough to read from its folder listing.

Read from the code's own imports (every ``import`` statement, at the top of a module or inside a function), so the
test follows the code rather than a hand-kept list of modules.
"""

import ast
from pathlib import Path

from tests.conftest import REPO

# From the ground up (docs/architecture.md draws it). A room may import its own modules and any room listed before
# it; the package's face, rag/__init__.py, is above all, and nothing in rag/ imports it.
ROOMS = ("ground", "models", "stores", "ingest", "answering", "verification", "assistant", "records", "evaluation",
         "bench", "interfaces")
GROUND = {"rag.config", "rag.types", "rag.words"}


def room_of(module: str) -> str:
    if module in GROUND:
        return "ground"
    if module == "rag.assistant":
        return "assistant"
    return module.split(".")[1]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((REPO / "rag").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project's modules ``path`` imports, wherever the import statement stands."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # "from rag.models import registry"
    return {name for name in names if name in known}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def test_every_import_points_down_the_house_or_stays_in_its_room():
    upward = []
    for importer, imported in graph().items():
        if importer == "rag":
            continue
        for target in imported:
            assert target != "rag", f"{importer} imports the package's face, rag/__init__.py"
            if ROOMS.index(room_of(target)) > ROOMS.index(room_of(importer)):
                upward.append(f"{importer} -> {target}")
    assert not upward, "imports that point up a floor: " + ", ".join(sorted(upward))


def test_no_modules_import_each_other_even_through_others():
    edges = graph()
    cycles = []

    def visit(node: str, path: list[str], on_path: set[str], done: set[str]) -> None:
        for target in sorted(edges[node]):
            if target in on_path:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in done:
                on_path.add(target)
                visit(target, [*path, target], on_path, done)
                on_path.discard(target)
        done.add(node)

    done: set[str] = set()
    for start in sorted(edges):
        if start not in done:
            visit(start, [start], {start}, done)
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_the_house_is_read_from_its_folder_listing():
    top = [p.name for p in (REPO / "rag").glob("*.py")]
    assert len(top) <= 6, f"rag/ holds {len(top)} modules at its top: {sorted(top)}"
    for room in (p for p in (REPO / "rag").rglob("*") if p.is_dir() and (p / "__init__.py").exists()):
        count = len([p for p in room.glob("*.py") if p.name != "__init__.py"])
        assert count <= 12, f"{room.relative_to(REPO)} holds {count} modules"
        assert ast.get_docstring(ast.parse((room / "__init__.py").read_text())), f"{room} does not say what it holds"


def test_the_command_lines_help_loads_neither_torch_nor_transformers():
    import subprocess
    import sys

    code = "import sys, rag.interfaces.cli; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert loaded.stdout.strip() == "[]"


def test_indexing_a_folder_loads_neither_torch_nor_transformers(tmp_path):
    # The embedder runs with onnxruntime and the tokenizers library; torch is needed once, to export it (the cache
    # holds the export by the time the tests run, as after any first start).
    import os
    import subprocess
    import sys

    from rag.config import Settings
    from rag.models.embedding import default_embedding_model_path, exported_model

    exported_model(default_embedding_model_path(), Settings().cache_dir)  # the first start's export, if not yet
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("The lighthouse on the north cape was lit in 1871 and automated in 1998.\n")
    code = ("import sys; from rag.interfaces import cli; "
            f"rc = cli.main(['index', '--docs', {str(docs)!r}, '--index', {str(tmp_path / 'index')!r}]); "
            "print(rc, sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=True)
    assert ran.stdout.strip().splitlines()[-1] == "0 []", ran.stdout + ran.stderr
