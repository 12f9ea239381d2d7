"""The transfer commands fix glibc's mmap threshold (their 32 MiB pack buffers then never stay
resident in fragmented heaps)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from dsrepo.cli import heap


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_the_threshold_is_set_on_glibc() -> None:
    code = "from dsrepo.cli.heap import fix_mmap_threshold; print(fix_mmap_threshold())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "True"


def test_elsewhere_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap.fix_mmap_threshold() is False
