"""Reflogs as the user sees them (``dsrepo reflog [REF]``), as gc sees them (roots: every id a
reflog names keeps its objects alive) and ``reflog expire``, which drops old entries so that what
only they named becomes collectable.

The files are written by :class:`~dsrepo.dvcs.refs.RefStore` (``logs/<ref>``, one line per ref
update, appended under ``flock``). ``expire`` rewrites a file while holding that same lock, by
atomic replace, so an update racing with it is never lost (:func:`~dsrepo.dvcs.refs.append_locked`
re-opens a file replaced while it waited). Ages (``--expire=90.days``, ``gc --prune=2.weeks``)
are parsed by :func:`parse_age`.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dsrepo.dvcs.errors import UnknownRevision
from dsrepo.dvcs.fsutil import fsync_dir
from dsrepo.dvcs.refnames import HEADS, REMOTES, TAGS
from dsrepo.dvcs.refs import HEAD, ReflogEntry, RefStore, parse_reflog_line
from dsrepo.objects.errors import storage_refusals
from dsrepo.objects.ids import ObjectId, from_hex

DEFAULT_EXPIRE = "90.days"
"""How old a reflog entry must be for ``reflog expire`` to drop it (git's ``gc.reflogExpire``)."""

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "y": 365 * 86400,
    "year": 365 * 86400,
}
_AGE = re.compile(r"(\d+(?:\.\d+)?)[ ._]*([a-z]+?)s?(?:[ ._]+ago)?")
_HEX_ID = re.compile(r"\b[0-9a-f]{64}\b")
_TMP = ".tmp-"


def parse_age(text: str | float) -> float:
    """Seconds in an age: ``2.weeks``, ``14d``, ``1h``, ``90 days``, ``3.months.ago``; ``now``
    is 0 and ``never`` infinity. A number is taken as seconds. ValueError for anything else."""
    if isinstance(text, int | float):
        if text < 0 or math.isnan(text):
            raise ValueError(f"invalid age {text!r}")
        return float(text)
    word = text.strip().lower()
    if word == "now":
        return 0.0
    if word == "never":
        return math.inf
    m = _AGE.fullmatch(word)
    unit = _UNITS.get(m.group(2)) if m else None
    if m is None or unit is None:
        raise ValueError(f"invalid age {text!r} (examples: now, 1h, 14d, 2.weeks, 3.months, never)")
    return float(m.group(1)) * unit


# ---------------------------------------------------------------- reading


def log_name(refs: RefStore, name: str) -> str:
    """The ref whose reflog ``name`` means: ``HEAD``, a full ``refs/...`` name, or a short name
    looked up as a tag, branch or remote-tracking branch (as revisions are) that has a reflog
    or exists. UnknownRevision if none does."""
    if name in (HEAD, "@"):
        return HEAD
    candidates = [name] if name.startswith("refs/") else [TAGS + name, HEADS + name, REMOTES + name]
    for full in candidates:
        if _log_path(refs, full).is_file() or refs.read(full) is not None:
            return full
    raise UnknownRevision(f"no reflog for {name!r}")


def entries(refs: RefStore, name: str) -> list[ReflogEntry]:
    """``name``'s reflog, newest first (``name@{0}`` is the first)."""
    return list(reversed(refs.reflog(log_name(refs, name))))


def log_names(refs: RefStore) -> list[str]:
    """Every ref with a reflog file, sorted (temporary files of a rewrite left out)."""
    return sorted(n for n in refs.reflog_names() if not n.rsplit("/", 1)[-1].startswith(_TMP))


def roots(refs: RefStore) -> Iterator[tuple[str, ObjectId]]:
    """Every object id a reflog names, as (``reflog REF``, id): old and new ids of each entry.
    A line that does not parse still keeps every full id in it alive (gc deletes nothing a
    damaged reflog may mean; fsck reports the line)."""
    for name in log_names(refs):
        where = f"reflog {name}"
        try:
            text = _log_path(refs, name).read_text("utf-8", errors="replace")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            entry = parse_reflog_line(line)
            if entry is not None:
                yield from ((where, oid) for oid in (entry.old, entry.new) if oid is not None)
            else:
                yield from ((where, from_hex(h)) for h in _HEX_ID.findall(line.lower()))


# ---------------------------------------------------------------- expiring


@dataclass
class ExpireResult:
    logs: int = 0
    """Reflog files examined."""
    removed: int = 0
    """Entries dropped."""
    kept: int = 0
    """Entries kept (newer than the cutoff, or lines that do not parse: never dropped)."""


def expire(
    refs: RefStore,
    names: Iterable[str] | None,
    age: str | float = DEFAULT_EXPIRE,
    *,
    now: float | None = None,
    dry_run: bool = False,
) -> ExpireResult:
    """Drop the entries older than ``age`` from the reflogs of ``names`` (short or full ref
    names; None: every reflog). Each file is rewritten atomically under its lock; a file
    left without entries stays, empty. ``now``: the reference time (default: the clock, the one
    the entries were stamped with)."""
    cutoff = (time.time() if now is None else now) - parse_age(age)
    chosen = log_names(refs) if names is None else [log_name(refs, n) for n in names]
    result = ExpireResult()
    for name in dict.fromkeys(chosen):
        path = _log_path(refs, name)
        if path.is_file():
            result.logs += 1
            removed, kept = _expire_file(path, cutoff, dry_run)
            result.removed += removed
            result.kept += kept
    return result


def _expire_file(path: Path, cutoff: float, dry_run: bool) -> tuple[int, int]:
    """(entries removed, lines kept) of one reflog; rewritten holding its lock."""
    with storage_refusals(path):
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(fd, "rb", closefd=False) as f:
                lines = f.read().decode("utf-8", errors="surrogateescape").splitlines(True)
            kept = []
            for line in lines:
                entry = parse_reflog_line(line.rstrip("\n"))
                if entry is None or entry.time >= cutoff:
                    kept.append(line)
            removed = len(lines) - len(kept)
            if removed and not dry_run:
                _replace(path, "".join(kept).encode("utf-8", errors="surrogateescape"))
            return removed, len(kept)
        finally:
            os.close(fd)  # drops the lock: a waiting append re-opens the new file


def _replace(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=_TMP, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _log_path(refs: RefStore, name: str) -> Path:
    if refs.logs_dir is None:
        raise UnknownRevision("this repository keeps no reflogs")
    return refs.logs_dir / name
