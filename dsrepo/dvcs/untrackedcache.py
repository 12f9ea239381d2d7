"""The untracked cache (``.dsrepo/index-untracked``): what a folder's listing held beyond its
tracked names, per tracked folder, so that ``status`` and ``commit -a`` skip listing a folder
whose entries cannot have changed (git's untracked cache; see docs/format.md §11.2).

A record describes folder ``rel`` as the status walk saw it: the folder's ``st_mtime_ns``,
``st_ctime_ns`` and ``st_ino`` (``fstat`` of the descriptor the walk opens, taken *before* the
listing), a digest of the tracked child names the index had then, whether the listing held a
``.dsrepoignore``, and the *leftover*: every listed name that was not a tracked child found as
one (untracked names, ignored ones included, and tracked names of the wrong kind), each with its
kind (other, file or link, folder). Creating, removing or renaming an entry of a folder changes
its mtime and ctime, so a record whose stat and tracked-name digest both still match tells what
a new listing would tell.

Racy records: a change made within the same timestamp tick as the listing could leave the
folder's stat as recorded. So a record is only written for a folder whose mtime and ctime are
both older than the walk's start minus :data:`RACY_MARGIN_NS` (2 s): any change after the
listing then gets a later timestamp. 2 s covers the coarse kernel clock (a few ms behind
``time.time_ns()``), 1 s and 2 s timestamp granularities (ext3, HFS+, FAT) and small clock
skew on network filesystems; a folder changed in the last 2 s is simply listed, as without the
cache. ctime cannot be set back by a user, so ``touch -d`` tricks on the folder invalidate too.

The file is a cache: damaged, truncated, of another version, or unwritable (a read-only
repository) it is ignored; records of folders the walk did not visit are dropped at each save,
so it holds at most one record per tracked folder.
"""

from __future__ import annotations

import contextlib
import os
import stat as statmod
import struct
import time
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
from blake3 import blake3

from dsrepo.dvcs.fsutil import atomic_write
from dsrepo.objects.errors import StorageUnavailable

MAGIC = b"DSRUNTRK"
VERSION = 1
_HEAD = struct.Struct("<8sI")
_SUM = 32
DIGEST_SIZE = 16
"""Bytes of BLAKE3 kept of a folder's tracked child names."""

RACY_MARGIN_NS = 2 * 10**9
"""A folder whose mtime or ctime is not older than the walk's start minus this is not
recorded (see the module docstring)."""

KIND_OTHER, KIND_FILE, KIND_DIR = 0, 1, 2
"""Kinds of leftover names: not reportable (fifo, socket, device), file or symlink, folder."""

_IGNORE_FILE_FLAG = 1


class Record(NamedTuple):
    """What the walk saw in one tracked folder (see the module docstring)."""

    mtime_ns: int
    ctime_ns: int
    ino: int
    tracked: bytes
    """:func:`tracked_digest` of the folder's tracked child names."""
    ignore_file: bool
    """Whether the listing held a ``.dsrepoignore`` (tracked or not)."""
    leftover: tuple[tuple[str, int], ...]
    """(name, kind) of every listed name not taken by a tracked child, sorted by name."""


def cache_path(index_path: Path) -> Path:
    """``.dsrepo/index-untracked`` beside the staging index ``index_path``."""
    return index_path.with_name(index_path.name + "-untracked")


CONFIG_KEY = "core.untrackedCache"
"""``false`` (or ``no``, ``off``, ``0``) turns the cache off and deletes its file: for
filesystems that do not change a folder's mtime and ctime when an entry is added or removed
(some FUSE and network mounts; git makes its cache opt-in for them). On by default."""
_OFF = frozenset({"false", "no", "off", "0"})


def for_status(index_path: Path, setting: str | None) -> UntrackedCache | None:
    """The cache beside ``index_path``, or None when ``setting`` (the value of
    :data:`CONFIG_KEY`) turns it off."""
    path = cache_path(index_path)
    if setting is not None and setting.strip().lower() in _OFF:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return None
    return UntrackedCache.load(path)


def tracked_digest(joined: str) -> bytes:
    """The digest of a folder's tracked child names: ``joined`` is the names in index order,
    each subfolder's with a trailing ``/``, joined by NUL."""
    return blake3(joined.encode("utf-8", "surrogateescape")).digest(length=DIGEST_SIZE)


def kind_of_mode(mode: int) -> int:
    if statmod.S_ISDIR(mode):
        return KIND_DIR
    if statmod.S_ISREG(mode) or statmod.S_ISLNK(mode):
        return KIND_FILE
    return KIND_OTHER


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def pack_record(rel: str, r: Record) -> list[Any]:
    """One record as a msgpack array (see docs/format.md §11.2)."""
    names = b"\0".join(_b(n) for n, _ in r.leftover)
    kinds = bytes(k for _, k in r.leftover)
    flags = _IGNORE_FILE_FLAG if r.ignore_file else 0
    return [_b(rel), r.mtime_ns, r.ctime_ns, r.ino, r.tracked, flags, names, kinds]


def unpack_record(item: Any) -> tuple[str, Record]:
    """The inverse of :func:`pack_record`; ValueError (or TypeError) when malformed."""
    rel, mtime, ctime, ino, tracked, flags, names, kinds = item
    if not (
        isinstance(rel, bytes)
        and type(mtime) is int
        and type(ctime) is int
        and type(ino) is int
        and isinstance(tracked, bytes)
        and len(tracked) == DIGEST_SIZE
        and type(flags) is int
        and isinstance(names, bytes)
        and isinstance(kinds, bytes)
    ):
        raise ValueError("malformed record")
    split = [_s(n) for n in names.split(b"\0")] if kinds else []
    if len(split) != len(kinds) or any(k > KIND_DIR for k in kinds):
        raise ValueError("malformed record")
    leftover = tuple(zip(split, kinds, strict=True))
    return _s(rel), Record(mtime, ctime, ino, tracked, bool(flags & 1), leftover)


def encode(records: dict[str, Record]) -> bytes:
    body: bytes = msgpack.packb([pack_record(rel, records[rel]) for rel in sorted(records)])
    head = _HEAD.pack(MAGIC, VERSION) + body
    return head + blake3(head).digest()


def decode(raw: bytes) -> dict[str, Record]:
    """The records of a cache file; {} when it is damaged, truncated or of another version."""
    if len(raw) < _HEAD.size + _SUM or not raw.startswith(MAGIC):
        return {}
    _magic, version = _HEAD.unpack_from(raw)
    if version != VERSION or blake3(raw[:-_SUM]).digest() != raw[-_SUM:]:
        return {}
    try:
        items = msgpack.unpackb(raw[_HEAD.size : -_SUM], raw=True)
        return dict(unpack_record(item) for item in items)
    except Exception:
        return {}


class UntrackedCache:
    """The records read from the file (``old``) and those of the current walk (``new``)."""

    def __init__(
        self,
        path: Path | None,
        old: dict[str, Record] | None = None,
        *,
        margin_ns: int = RACY_MARGIN_NS,
    ) -> None:
        self.path = path
        self.old: dict[str, Record] = old or {}
        self.new: dict[str, Record] = {}
        self.margin_ns = margin_ns
        self.added = False
        """Whether a record was written by this walk (not reused from ``old``)."""
        self.safe_before_ns = 0
        """Only folders with mtime and ctime below this are recorded (set by :meth:`start`)."""

    @classmethod
    def load(cls, path: Path, *, margin_ns: int | None = None) -> UntrackedCache:
        """The cache in ``path``; empty when the file is missing, unreadable or damaged.
        ``margin_ns`` defaults to :data:`RACY_MARGIN_NS`."""
        try:
            raw = path.read_bytes()
        except OSError:
            raw = b""
        margin = RACY_MARGIN_NS if margin_ns is None else margin_ns
        return cls(path, decode(raw), margin_ns=margin)

    def start(self) -> None:
        """Begin a walk: forget the previous walk's records, fix the racy limit."""
        self.new = {}
        self.added = False
        self.safe_before_ns = time.time_ns() - self.margin_ns

    def lookup(self, rel: str, st: os.stat_result, tracked: bytes) -> Record | None:
        """The record of ``rel`` when it still describes the folder (then it is kept)."""
        r = self.old.get(rel)
        if (
            r is None
            or r.mtime_ns != st.st_mtime_ns
            or r.ctime_ns != st.st_ctime_ns
            or r.ino != st.st_ino
            or r.tracked != tracked
        ):
            return None
        self.new[rel] = r
        return r

    def is_racy(self, st: os.stat_result) -> bool:
        return max(st.st_mtime_ns, st.st_ctime_ns) >= self.safe_before_ns

    def record(
        self,
        rel: str,
        st: os.stat_result,
        tracked: bytes,
        ignore_file: bool,
        leftover: tuple[tuple[str, int], ...],
    ) -> None:
        """Remember what the listing of ``rel`` held (call only when not :meth:`is_racy`)."""
        self.new[rel] = Record(
            st.st_mtime_ns, st.st_ctime_ns, st.st_ino, tracked, ignore_file, leftover
        )
        self.added = True

    # ---- the forked walk: the child sends what it kept and what it recorded

    def child(self) -> UntrackedCache:
        c = UntrackedCache(None, self.old, margin_ns=self.margin_ns)
        c.safe_before_ns = self.safe_before_ns
        return c

    def export(self) -> list[Any]:
        kept = [_b(rel) for rel, r in self.new.items() if self.old.get(rel) is r]
        added = [pack_record(rel, r) for rel, r in self.new.items() if self.old.get(rel) is not r]
        return [kept, added]

    def merge(self, exported: Any) -> None:
        """Take a child's :meth:`export` (ValueError, KeyError or TypeError when malformed)."""
        kept, added = exported
        records = [(_s(rel), self.old[_s(rel)]) for rel in kept]
        records += [unpack_record(item) for item in added]
        for rel, r in records:
            self.new[rel] = r
        self.added = self.added or bool(added)

    # ---- saving

    @property
    def changed(self) -> bool:
        """Whether the file would change: a record was written, or one was dropped (without a
        new one, the walk's folders are a subset of the old records')."""
        return self.added or len(self.new) != len(self.old)

    def save(self) -> None:
        """Write the walk's records if they differ from the file's; never fails (a read-only
        or full disk leaves the old file, which stays correct)."""
        if self.path is None or not self.changed:
            return
        with contextlib.suppress(OSError, StorageUnavailable):
            atomic_write(self.path, encode(self.new), durable=False)
