"""``cache ls`` and ``cache prune``: what the user-level get cache holds, and keeping it bounded.

Each version ``get`` placed is an entry (``entries/<url hash>-<commit>.json`` in the cache, its
mtime the time of last use; :mod:`dsrepo.dvcs.getcache`). Pruning evicts entries — those unused
for longer than ``older_than``, then the least recently used until the data of the rest (each
file counted once) fits ``max_size`` — by deleting their cache ref (and its reflog), their entry
and their copy in ``copies/``; then the files of the file area no remaining entry lists, and the
objects nothing reaches any more (``gc --prune=now`` of the cache repository).

All of it runs holding the cache's gc lock exclusively, taken before the cache is opened: a
``get`` holds it shared for its whole run, from before it opens the cache (and so reads its
location index) until it closes it (:func:`~dsrepo.dvcs.getcache.open_locked`). So pruning waits
for running gets (and a get started meanwhile waits for the prune), and nothing a get is
placing, about to name, or has seen listed is deleted. Files already linked into a job's folder
are never touched: a hard link outlives the cache's name for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs.getcache import CACHE_REFS, cache_dir, open_locked
from dsrepo.dvcs.reflog import parse_age
from dsrepo.objects.ids import ObjectId, from_hex

if TYPE_CHECKING:
    from dsrepo.dvcs.gc import GcReport
    from dsrepo.dvcs.repository import Repository

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)", re.IGNORECASE)


@dataclass(frozen=True)
class CacheEntry:
    """One version held: got from ``url`` as ``rev``; ``files``/``bytes``: the files placed
    from it (every ``--only`` selection so far); ``last_used``: a Unix time."""

    key: str
    url: str
    rev: str
    commit: ObjectId
    files: int
    bytes: int
    last_used: float
    area: tuple[str, ...] = field(default=(), repr=False)
    sizes: tuple[tuple[str, int], ...] = field(default=(), repr=False)


@dataclass
class PruneReport:
    removed: list[CacheEntry] = field(default_factory=list)
    kept: list[CacheEntry] = field(default_factory=list)
    files_removed: int = 0
    """Files of the file area deleted."""
    bytes_before: int = 0
    bytes_after: int = 0
    """The cache's size on disk (:func:`disk_usage`)."""
    gc: GcReport | None = None


def parse_size(text: str | int) -> int:
    """Bytes in ``10G``, ``500MB``, ``1.5GiB``, ``4096`` (powers of 1024). ValueError else."""
    if isinstance(text, int):
        return text
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"invalid size {text!r} (examples: 500M, 10G, 1.5T, 4096)")
    return int(float(m.group(1)) * 1024 ** " kmgtp".index(m.group(2).lower() or " "))


def entries(root: Path | None = None) -> list[CacheEntry]:
    """The versions the cache holds, most recently used first."""
    root = cache_dir() if root is None else root
    out = []
    with contextlib.suppress(FileNotFoundError), os.scandir(root / "entries") as it:
        for d in it:
            if not d.name.endswith(".json"):
                continue
            try:
                data = json.loads(Path(d.path).read_text("utf-8"))
                out.append(
                    CacheEntry(
                        d.name.removesuffix(".json"),
                        str(data["url"]),
                        str(data["rev"]),
                        from_hex(str(data["commit"])),
                        int(data["files"]),
                        int(data["bytes"]),
                        d.stat().st_mtime,
                        tuple(data.get("area", ())),
                        tuple((str(k), int(v)) for k, v in data.get("sizes", {}).items()),
                    )
                )
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue  # being replaced, or not ours
    out.sort(key=lambda e: (-e.last_used, e.key))
    return out


def disk_usage(root: Path | None = None) -> int:
    """Bytes of the cache's packs, file area and copies (each inode once; its SQLite indexes,
    refs and records are not counted)."""
    root = cache_dir() if root is None else root
    seen: set[tuple[int, int]] = set()
    total = 0
    for top in (root / ".dsrepo" / "packs", root / "files", root / "copies"):
        total += _usage(top, seen)
    return total


def _usage(top: Path, seen: set[tuple[int, int]]) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def _unique_bytes(kept: list[CacheEntry]) -> int:
    sizes: dict[str, int] = {}
    for e in kept:
        sizes.update(e.sizes)
    return sum(sizes.values())


def prune(
    open_cache: Callable[[Path], Repository],
    *,
    max_size: int | str | None = None,
    older_than: str | float | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneReport:
    """Evict entries (module docstring); ``dry_run`` says what would go and deletes nothing."""
    root = cache_dir()
    limit = None if max_size is None else parse_size(max_size)
    age = None if older_than is None else parse_age(older_than)
    report = PruneReport()
    if not (root / ".dsrepo").is_dir():
        return report
    with open_locked(open_cache, root, exclusive=True) as cache:
        report.bytes_before = disk_usage(root)
        held = entries(root)  # read under the lock: no get is running
        clock = time.time() if now is None else now
        kept = [e for e in held if age is None or clock - e.last_used <= age]
        if limit is not None:
            while kept and _unique_bytes(kept) > limit:
                kept.pop()  # the least recently used
        report.kept = kept
        report.removed = [e for e in held if e not in kept]
        if dry_run:
            report.bytes_after = report.bytes_before
            return report
        for e in report.removed:
            _evict(cache, root, e)
        report.files_removed = _sweep_area(root, {a for e in kept for a in e.area})
        report.gc = cache.gc(prune="now")
        report.bytes_after = disk_usage(root)
    return report


def _evict(cache: Repository, root: Path, e: CacheEntry) -> None:
    url_hash = e.key.split("-", 1)[0]
    ref = f"{CACHE_REFS}{url_hash}/{e.commit.hex()}"
    if cache.refs.resolve(ref) is not None:
        cache.refs.update(ref, None, None, check_old=False, message="cache prune")
    log = cache.refs._log_path(ref)
    if log is not None:
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
    copy = root / "copies" / e.key
    if copy.is_dir():
        shutil.rmtree(copy, onerror=_writable_and_retry)
    with contextlib.suppress(FileNotFoundError):
        (root / "entries" / f"{e.key}.json").unlink()


def _writable_and_retry(func: Callable[..., object], path: str, _exc: object) -> None:
    parent = os.path.dirname(path)
    os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | 0o700)
    func(path)


def _sweep_area(root: Path, keep: set[str]) -> int:
    removed = 0
    area = root / "files"
    with contextlib.suppress(FileNotFoundError), os.scandir(area) as top:
        for d in top:
            if not d.is_dir(follow_symlinks=False):
                continue
            with os.scandir(d.path) as it:
                for f in it:
                    if f"{d.name}/{f.name}" not in keep:
                        with contextlib.suppress(OSError):
                            os.unlink(f.path)
                            removed += 1
            with contextlib.suppress(OSError):
                os.rmdir(d.path)
    return removed
