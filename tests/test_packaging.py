"""How nestviz is installed: the wheel carries the default model, and an editable install of a
clone named ``nestviz`` imports the package, not the clone, from the folder that holds it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from nestviz.model.checkpoints import DEFAULT_WEIGHTS_NAME

REPO = Path(__file__).resolve().parents[1]
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    "nestviz-out")


def clean_copy(tmp_path: Path) -> Path:
    """The source tree as a fresh clone has it (no build leftovers), to build from."""
    return Path(shutil.copytree(REPO, tmp_path / "src", ignore=NOT_SOURCE, symlinks=True))


@pytest.mark.slow
def test_the_wheel_ships_the_default_model(tmp_path: Path) -> None:
    source = clean_copy(tmp_path)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("nestviz-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert f"nestviz/resources/{DEFAULT_WEIGHTS_NAME}" in names
    assert "nestviz/resources/imagenet1k_classes.tsv" in names
    size = zipfile.ZipFile(wheel).getinfo(f"nestviz/resources/{DEFAULT_WEIGHTS_NAME}").file_size
    assert size == (REPO / "nestviz" / "resources" / DEFAULT_WEIGHTS_NAME).stat().st_size


def test_import_beside_a_clone_named_nestviz(tmp_path: Path) -> None:
    """``pip install -e nestviz/`` then ``python`` in the folder holding the clone: ``import nestviz`` must
    find the package inside the clone, not the clone itself as a namespace package."""
    wheel_dir, site_dir, holder = tmp_path / "wheel", tmp_path / "site", tmp_path / "work"
    holder.mkdir()
    (holder / "nestviz").symlink_to(REPO, target_is_directory=True)
    build = ("import sys; from setuptools import build_meta; "
             f"print(build_meta.build_editable({str(wheel_dir)!r}))")
    name = subprocess.run([sys.executable, "-c", build], cwd=holder / "nestviz", check=True, capture_output=True,
                          text=True).stdout.split()[-1]
    zipfile.ZipFile(wheel_dir / name).extractall(site_dir)  # what pip install -e puts in site-packages
    probe = f"""
import site, sys
sys.path.append({sysconfig.get_paths()["purelib"]!r})  # torch & co., without this venv's own nestviz install
site.addsitedir({str(site_dir)!r})                      # the editable install of the clone
import nestviz
from nestviz.model.checkpoints import default_weights_path
print(nestviz.__file__)
print(nestviz.__version__, callable(nestviz.load), default_weights_path().is_file())
"""
    out = subprocess.run([sys.executable, "-S", "-c", probe], cwd=holder, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    file, checks = out.stdout.split("\n")[:2]
    assert Path(file).resolve() == REPO / "nestviz" / "__init__.py"
    assert checks == "0.1.0 True True"
