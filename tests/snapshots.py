"""The one snapshot helper: a directory's files as ``{relative POSIX path: bytes}``."""

from __future__ import annotations

import os
from pathlib import Path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative POSIX path → bytes), skipping ``.dsrepo``."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".dsrepo"]
        for f in files:
            full = Path(dirpath, f)
            out[full.relative_to(root).as_posix()] = full.read_bytes()
    return out
