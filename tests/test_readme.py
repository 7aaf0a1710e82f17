"""The README as a user reads it: its stated defaults are nestviz.defaults, and every code block runs.

Python blocks run as written (in a folder holding ``examples/``). Bash blocks run command by
command (``&&``-separated, ``#`` comments dropped) through the CLI, except the commands listed in
``NOT_RUN`` with the reason: installing packages (network, and it would change this environment),
this very test suite, files users have but the repository does not ship (timm / Hub checkpoints,
``cat.jpg``), the Hub (network), the shared Imagenette photos. A new block or command fails until
it runs or is listed here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nestviz.cli.app import app
from nestviz.defaults import SETTLE_MARGIN, THRESHOLD, TOP_K
from .helpers import REPO


README = (REPO / "README.md").read_text(encoding="utf-8")

NOT_RUN = {  # command prefix -> why the test does not run it
    "pip install": "installs packages: needs the network and would change this environment",
    "python -m pytest": "the test suite itself (it is running)",
    "nestviz explain cat.jpg --weights hf-hub:": "downloads from the Hugging Face Hub: needs the network",
    "nestviz explain cat.jpg --weights ~/models/": "a Hub snapshot a user downloaded (330 MB): not shipped",
    "nestviz explain cat.jpg --weights nest_base_jx.safetensors": "timm's nest_base weights (270 MB): not shipped",
    "nestviz predict photos/ --weights jx_nest_small": "timm's nest_small weights (150 MB): not shipped",
    "nestviz metrics imagenette/val": "the Imagenette photos and boxes: shared data, not in the repository",
    "nestviz metrics patched/ --evidence": "a user's patched photos and evidence boxes (benchmarks/planted_shortcut.py "
                                           "makes them from the shared data): tests/test_evidence.py runs the command",
}


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [c.strip() for ln in lines for c in ln.split("&&")]


def reason_not_run(command: str) -> str | None:
    return next((why for prefix, why in NOT_RUN.items() if command.startswith(prefix)), None)


@pytest.fixture
def in_a_user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the repository's examples, as after a clone."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_states_the_defaults_of_nestviz_defaults() -> None:
    """Issue 22: the command table and the method section said 0.4 while the default was 0.35."""
    stated = {  # each pattern must occur, and every occurrence must say the default
        r"\[--threshold ([\d.]+)\]": THRESHOLD,
        r"thresholded at `--threshold` \(default ([\d.]+)": THRESHOLD,
        r"flow CAM, ([\d.]+) box threshold": THRESHOLD,
        r"\(flow map, threshold ([\d.]+)\)": THRESHOLD,
        r"`nestviz predict INPUTS\.\.\. \[--top-k (\d+)\]": TOP_K["predict"],
        r"`nestviz explain INPUTS\.\.\. \[--top-k (\d+)\]": TOP_K["explain"],
        r"`nestviz cam INPUTS\.\.\. \[--top-k (\d+)\]": TOP_K["cam"],
        r"within ([\d.]+) of the class's total of the best one's \(a\s+\*\*close call\*\*, `nestviz\.defaults\.SETTLE_MARGIN`":
            SETTLE_MARGIN,
    }
    for pattern, default in stated.items():
        found = [float(v) for v in re.findall(pattern, README)]
        assert found and all(v == default for v in found), (pattern, found, default)


def test_the_readme_states_every_strategies_flag_and_the_single_spot_threshold() -> None:
    """Each flag of ``nestviz strategies`` has its row in the README's flag table, and the share it reads is the code's."""
    from nestviz.strategies.flags import FLAGS, THRESHOLDS

    assert all(re.search(rf"^\| `{flag}` \| ", README, flags=re.M) for flag in FLAGS)
    row = re.search(r"^\| `single_spot` \| .*?holds at least ([\d.]+) of the class score", README, flags=re.M)
    assert row and float(row.group(1)) == THRESHOLDS["spot_share"]


def test_every_python_block_of_the_readme_runs(in_a_user_folder: Path) -> None:
    """Issue 22: the API snippet named ``wide.jpg``, which does not exist."""
    code = blocks("python")
    assert code
    for block in code:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102
    assert (in_a_user_folder / "mosaic.pdf").stat().st_size > 0  # what the blocks say they write
    assert (in_a_user_folder / "mosaic.gradcat.png").stat().st_size > 0


def test_every_bash_command_of_the_readme_runs_or_says_why_not(in_a_user_folder: Path) -> None:
    ran, skipped = [], []
    for block in blocks("bash"):
        for command in commands(block):
            if reason_not_run(command):
                skipped.append(command)
                continue
            argv = shlex.split(command)
            assert argv[0] == "nestviz", f"README command not run by this test and not in NOT_RUN: {command}"
            result = CliRunner().invoke(app, argv[1:])
            assert result.exit_code == 0, (command, result.output)
            ran.append(command)
    assert ran == ["nestviz explain examples/mosaic.jpg --top-k 4",  # the quick start
                   "nestviz annotate examples/chelsea.jpg examples/coffee.jpg examples/rocket.jpg --out audit",
                   "nestviz strategies audit"]  # the strategies example
    assert (in_a_user_folder / "audit" / "strategies.html").stat().st_size > 0
    assert {next(p for p in NOT_RUN if c.startswith(p)) for c in skipped} == set(NOT_RUN)  # no stale reason
    out = in_a_user_folder / "nestviz-out"  # the files the quick start says it writes
    for name in ("mosaic.gradcat.jpg", "mosaic.thumb.jpg", "manifest.jsonl", "index.html"):
        assert (out / name).stat().st_size > 0, name


def test_only_known_languages_in_code_blocks() -> None:
    """``text`` blocks are formats and layouts, not code; any other language needs a runner above."""
    languages = re.findall(r"^```(\w*)\n.*?^```", README, flags=re.S | re.M)
    assert set(languages) <= {"bash", "python", "text"}, languages
