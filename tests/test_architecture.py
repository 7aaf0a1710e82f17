"""The package's shape: which room (package or top-level module) may import which (``MAY_IMPORT``), who
imports typer, rich and the CLI, who handles signals, module and function sizes."""

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
    assert {"nestviz.api", "nestviz.cli.app", "nestviz.draw", "nestviz.methods.gradcat", "nestviz.batch.runner",
            "nestviz.model.nest", "nestviz.train.loop", "nestviz._files"} <= set(modules())
    assert "nestviz.methods.gradcat" in imports("nestviz.api")
    assert "nestviz.model.nest" in reachable("nestviz.api")


def test_no_import_cycles() -> None:
    for name in modules():
        assert name not in reachable(name), f"{name} imports itself through {sorted(reachable(name))}"


# The packages ("rooms") and which other rooms each may import, anywhere in its code. A room is a package
# of nestviz (cli, evaluation, ...) or a top-level module (api, defaults, ...); "nestviz" is the package's
# __init__. The README's development section lists the same rooms (test_the_readme_lists_every_room).
MAY_IMPORT: dict[str, set[str]] = {
    "nestviz": set(),  # its entry points load lazily, by name
    "__main__": {"cli"},
    "cli": {"nestviz", "api", "batch", "evaluation", "strategies", "train", "model", "draw", "results", "images",
            "devices", "defaults", "_files", "_text"},  # the thin layer over everything else
    "api": {"methods", "model", "recording", "results", "images", "preprocess", "devices", "defaults"},
    "evaluation": {"api", "methods", "model", "batch", "train", "draw", "preprocess", "defaults", "_files"},
    "batch": {"draw", "results", "images", "defaults", "_files", "_text"},  # handed the API's object, never the model
    "strategies": {"batch", "draw", "results", "images", "defaults", "_files", "_text"},  # reads a run's records: no model
    "train": {"methods", "model", "images", "preprocess", "_files"},
    "recording": {"methods", "results"},
    "methods": {"model", "defaults"},
    "model": {"preprocess", "_files"},
    "draw": {"results", "defaults", "_files", "_text"},  # a figure worker starts light
    "results": {"draw", "images"},
    "images": set(), "preprocess": {"defaults"}, "devices": set(), "defaults": set(), "_files": set(), "_text": set(),
    "resources": set(),  # package data
}
NO_TORCH = ("nestviz.draw", "nestviz.strategies")  # never import torch, at any depth


def room(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "nestviz"


@pytest.mark.parametrize("name", sorted(modules()))
def test_each_room_imports_only_what_the_table_allows(name: str) -> None:
    here = room(name)
    assert here in MAY_IMPORT, f"{name}: a new room; add it to MAY_IMPORT and to the README's development section"
    bad = sorted(m for m in imports(name) if room(m) != here and room(m) not in MAY_IMPORT[here])
    assert not bad, f"{name} imports {bad}, outside what {here} may import"


@pytest.mark.parametrize("room, forbidden", [
    ("nestviz.draw", ("nestviz.model", "nestviz.methods", "nestviz.api", "nestviz.preprocess", "nestviz.devices")),
    ("nestviz.batch", ("nestviz.model", "nestviz.methods", "nestviz.api")),
    ("nestviz.methods", ("nestviz.api", "nestviz.results", "nestviz.draw", "nestviz.batch", "nestviz.cli",
                         "nestviz.evaluation")),
    ("nestviz.model", ("nestviz.api", "nestviz.methods", "nestviz.draw", "nestviz.batch")),
    ("nestviz.strategies", ("nestviz.model", "nestviz.methods", "nestviz.api", "nestviz.preprocess", "nestviz.devices",
                            "nestviz.cli")),
])
def test_each_room_keeps_out_of_the_others(room: str, forbidden: tuple[str, ...]) -> None:
    """What the table implies at any depth, stated for the rooms that must stay light."""
    for name in (m for m in modules() if m == room or m.startswith(room + ".")):
        bad = sorted(m for m in reachable(name) if m.startswith(forbidden))
        assert not bad, f"{name} reaches {bad}"


def test_nothing_imports_the_cli_but_the_entry_point() -> None:
    users = {n for n in modules() if room(n) != "cli" and any(room(m) == "cli" for m in imports(n))}
    assert users == {"nestviz.__main__"}


def third_party(name: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(modules()[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add((node.module or "").split(".")[0])
    return found


def test_only_the_cli_imports_typer_and_rich() -> None:
    users = {n for n in modules() if third_party(n) & {"typer", "rich"}}
    assert users and all(room(n) == "cli" for n in users), sorted(u for u in users if room(u) != "cli")


def test_the_readme_lists_every_room() -> None:
    """The development section's tree names each package and top-level module, and no other."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    tree = readme[readme.index("## Development"):].split("```text\n", 1)[1].split("```", 1)[0]
    listed = {line.split()[0].rstrip("/").removesuffix(".py") for line in tree.splitlines()
              if line.startswith("  ") and not line.startswith("   ") and line.strip()}
    rooms = {room(n) for n in modules()} - {"nestviz"} | {"__init__", "resources"}
    assert listed == rooms


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


@pytest.mark.parametrize("package", NO_TORCH)
def test_drawing_and_strategies_never_import_torch(package: str) -> None:
    """``nestviz strategies`` reads records and draws, figures are drawn in light workers: no module of these
    packages imports torch, at any depth."""
    def imports_torch(name: str) -> bool:
        for node in ast.walk(ast.parse(modules()[name].read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(n == "torch" or n.startswith("torch.") for n in names):
                return True
        return False

    for name in (m for m in modules() if m == package or m.startswith(package + ".")):
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


@pytest.mark.parametrize("name", ["THUMB_SUFFIX", "check_writable", "CMAP", "THRESHOLD", "CAM_BOX_REGION",
                                  "localize", "box_region", "upsample_bilinear"])
def test_each_fact_is_defined_in_one_module(name: str) -> None:
    """Constants and helpers that others import: one definition (a top-level assignment or def) in the package."""
    owners = []
    for module, path in modules().items():
        for node in ast.parse(path.read_text()).body:
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign) else \
                [node.target.id] if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) else \
                [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else []
            owners += [module] * targets.count(name)
    assert len(owners) == 1, owners
