"""The package's shape: which module may import which, module and function sizes, who handles signals."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nestviz"
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def imports(name: str) -> frozenset[str]:
    """The nestviz modules ``name`` imports anywhere in its code (module level or inside functions)."""
    path = modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # "from . import x" may name a module
    return frozenset(m for m in found if m in modules() and m != name)


def reachable(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for m in imports(todo.pop()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def test_the_import_walk_sees_the_package() -> None:
    assert {"nestviz.api", "nestviz.cli.app", "nestviz.draw", "nestviz.explain.gradcat", "nestviz.batch.runner",
            "nestviz.model.nest", "nestviz.train.loop", "nestviz._files"} <= set(modules())
    assert "nestviz.explain.gradcat" in imports("nestviz.api")
    assert "nestviz.model.nest" in reachable("nestviz.api")


def test_no_import_cycles() -> None:
    for name in modules():
        assert name not in reachable(name), f"{name} imports itself through {sorted(reachable(name))}"


@pytest.mark.parametrize("room, forbidden", [
    ("nestviz.draw", ("nestviz.model", "nestviz.explain", "nestviz.api", "nestviz.preprocess", "nestviz.devices")),
    ("nestviz.batch", ("nestviz.model", "nestviz.explain", "nestviz.api")),
    ("nestviz.explain", ("nestviz.api", "nestviz.results", "nestviz.draw", "nestviz.batch")),
    ("nestviz.model", ("nestviz.api", "nestviz.explain", "nestviz.draw", "nestviz.batch")),
    ("nestviz.strategies", ("nestviz.model", "nestviz.explain", "nestviz.api", "nestviz.preprocess", "nestviz.devices",
                            "nestviz.cli")),
])
def test_each_room_keeps_out_of_the_others(room: str, forbidden: tuple[str, ...]) -> None:
    for name in (m for m in modules() if m == room or m.startswith(room + ".")):
        bad = sorted(m for m in reachable(name) if m.startswith(forbidden))
        assert not bad, f"{name} reaches {bad}"


def test_drawing_starts_without_torch(tmp_path: Path) -> None:
    """A figure worker (the runner's render function, both renderers) never imports torch."""
    code = f"""
import sys
from pathlib import Path
from PIL import Image
from nestviz.batch.runner import render_outputs
from nestviz.draw import figure_bytes
import nestviz.draw.raster, nestviz.draw.vector
from tests.helpers import make_result
Image.new("RGB", (64, 48), (90, 120, 30)).save({str(tmp_path / 'in.png')!r})
files = {{"gradcat": {str(tmp_path / 'g.png')!r}, "cam": {str(tmp_path / 'c.png')!r}}}
render_outputs({str(tmp_path / 'in.png')!r}, make_result(), files, "png")
figure_bytes("cam", Image.new("RGB", (64, 48)), make_result(), "pdf")
print("TORCH" if "torch" in sys.modules else "NO-TORCH")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip().endswith("NO-TORCH")
    assert (tmp_path / "g.png").stat().st_size > 0 and (tmp_path / "c.png").stat().st_size > 0


def test_strategies_never_import_torch() -> None:
    """``nestviz strategies`` reads records and draws: no module of it imports torch, at any depth."""
    def imports_torch(name: str) -> bool:
        for node in ast.walk(ast.parse(modules()[name].read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(n == "torch" or n.startswith("torch.") for n in names):
                return True
        return False

    for name in (m for m in modules() if m == "nestviz.strategies" or m.startswith("nestviz.strategies.")):
        assert not [d for d in {name} | reachable(name) if imports_torch(d)], name


def test_only_the_cli_installs_signal_handlers() -> None:
    users = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("signal", "setitimer", "siginterrupt") \
                    and isinstance(node.value, ast.Name) and node.value.id == "signal":
                users.add(name)
    assert users == {"nestviz.cli.signals"}


def test_modules_are_small() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES} == {}


def test_long_functions_say_why_they_are_one_piece() -> None:
    unexplained = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and "one piece" not in (ast.get_docstring(node) or ""):
                    unexplained.append(f"{name}.{node.name} ({length} lines)")
    assert unexplained == []


def test_one_atomic_writer() -> None:
    """Only _files renames temporary files over outputs (figures, thumbnails, maps, the gallery, the manifest)."""
    writers = {name for name, path in modules().items() if "os.replace(" in path.read_text() or "mkstemp(" in
               path.read_text()}
    assert writers == {"nestviz._files"}
