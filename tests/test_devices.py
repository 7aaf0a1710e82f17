"""Training precision: bf16 only where the hardware makes it fast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nestviz.devices import fast_bf16, resolve_precision


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse sse2 avx2 {flags}\n")
    return path


@pytest.mark.parametrize("flags, expected", [("", "fp32"), ("avx512f", "fp32"), ("avx512f avx512_bf16", "bf16"),
                                             ("amx_bf16 amx_tile", "bf16")])
def test_auto_is_bf16_only_on_cpus_that_have_it(tmp_path: Path, flags: str, expected: str) -> None:
    assert resolve_precision("auto", torch.device("cpu"), cpuinfo(tmp_path, flags)) == expected


def test_asked_precisions_are_kept_and_others_refused(tmp_path: Path) -> None:
    plain = cpuinfo(tmp_path, "")
    assert resolve_precision("bf16", torch.device("cpu"), plain) == "bf16"
    assert resolve_precision("fp32", torch.device("cpu"), plain) == "fp32"
    with pytest.raises(ValueError, match=r"^--precision must be auto, bf16 or fp32, got 'fp16'$"):
        resolve_precision("fp16", torch.device("cpu"), plain)
    assert fast_bf16(torch.device("cpu"), tmp_path / "missing") is False
