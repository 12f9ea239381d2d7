"""Operations in progress, recorded so that a killed run is visible and is finished by running the
same command again (git's MERGE_HEAD idea, for every command that rewrites the working copy).

- ``.dsrepo/OPERATION`` holds one line, the command to run again (``checkout main``,
  ``merge feature``). ``checkout``/``switch``/``merge`` write it once their checks passed, before
  the first file changes, and remove it after HEAD moved. A re-run completes the operation: files
  the killed run already wrote equal the target and are not local changes
  (:func:`dsrepo.dvcs.checkout.settled_paths`).
- ``.dsrepo/CLONING`` holds ``{"url", "branch", "only"}`` (JSON). ``clone`` writes it before
  anything else in the new repository and removes it at the very end; the same ``clone`` into that
  directory resumes (what was fetched is kept), any other is refused.

``status`` reports either through :func:`interrupted`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

from dsrepo.dvcs.fsutil import atomic_write

DSDIR = ".dsrepo"
"""The repository folder's name (as in :mod:`dsrepo.dvcs.repository`, which dvcs may not import)."""
OPERATION = "OPERATION"
CLONING = "CLONING"


def begin(dsdir: Path, command: str) -> None:
    """Record ``command`` (as the user would type it again, without ``dsrepo``) as in progress."""
    atomic_write(dsdir / OPERATION, f"{command}\n".encode())


def finish(dsdir: Path, command: str | None = None) -> None:
    """The operation completed: remove the record (only if it names ``command``, when given)."""
    if command is not None and current(dsdir) != command:
        return
    (dsdir / OPERATION).unlink(missing_ok=True)


def current(dsdir: Path) -> str | None:
    try:
        text = (dsdir / OPERATION).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return text or None


def interrupted(dsdir: Path) -> str | None:
    """The command a killed run left unfinished (``checkout main``, ``clone URL``), or None."""
    marker = read_clone_marker(dsdir)
    if marker is not None:
        return f"clone {marker.get('url', '?')}"
    return current(dsdir)


def clone_marker(url: str, branch: str | None, only: Sequence[str] | None) -> dict[str, object]:
    return {"url": url, "branch": branch, "only": sorted(only) if only else None}


def write_clone_marker(dsdir: Path, marker: dict[str, object]) -> None:
    dsdir.mkdir(parents=True, exist_ok=True)
    atomic_write(dsdir / CLONING, json.dumps(marker, sort_keys=True).encode())


def read_clone_marker(dsdir: Path) -> dict[str, object] | None:
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads((dsdir / CLONING).read_bytes())
        if isinstance(doc, dict):
            return doc
    return None


def clear_clone_marker(dsdir: Path) -> None:
    (dsdir / CLONING).unlink(missing_ok=True)
