"""Refs: branches, tags, remote-tracking refs and HEAD, over a backend's compare-and-swap.

A ref's value is ``<64 hex>\\n``; HEAD may instead be symbolic, ``ref: refs/heads/main\\n``. Every
update is a compare-and-swap against the value the caller last saw, so a concurrent change is
reported (RefConflict) instead of lost. Each successful update appends a line to the ref's reflog
(``logs/<ref>`` in the repository folder): ``old new name <email> time tz\\tmessage``.
"""

from __future__ import annotations

import builtins
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dsrepo.dvcs.errors import RefConflict, RepositoryError, UnknownRevision
from dsrepo.dvcs.refnames import check_refname
from dsrepo.objects.errors import storage_error, storage_refusals
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.model import Signature
from dsrepo.remotes.base import Backend
from dsrepo.remotes.errors import KeyConflict, KeyNotFound

HEAD = "HEAD"
ZERO = "0" * 64
_SYMREF = "ref: "
MAX_DEPTH = 5


@dataclass(frozen=True, slots=True)
class RefValue:
    """Either a direct id or a symbolic pointer to another ref."""

    target: ObjectId | None = None
    symbolic: str | None = None

    def encode(self) -> bytes:
        if self.symbolic is not None:
            return f"{_SYMREF}{self.symbolic}\n".encode()
        assert self.target is not None
        return f"{self.target.hex()}\n".encode()

    @classmethod
    def decode(cls, name: str, data: bytes) -> RefValue:
        try:
            text = data.decode("ascii").strip()
        except UnicodeDecodeError:
            raise RepositoryError(f"ref {name} is corrupt (not ASCII)") from None
        if text.startswith(_SYMREF):
            return cls(symbolic=check_refname(text[len(_SYMREF) :].strip()))
        try:
            return cls(target=from_hex(text))
        except Exception:
            raise RepositoryError(f"ref {name} is corrupt: {text[:80]!r}") from None


@dataclass(frozen=True, slots=True)
class ReflogEntry:
    old: ObjectId | None
    new: ObjectId | None
    who: str
    time: int
    tz_minutes: int
    message: str


def _check_name(name: str) -> str:
    return name if name == HEAD else check_refname(name)


class RefStore:
    """Refs stored in ``backend``; reflogs in ``logs_dir`` (None: no reflog, e.g. a remote)."""

    def __init__(self, backend: Backend, logs_dir: Path | None = None) -> None:
        self.backend = backend
        self.logs_dir = logs_dir

    # ---- reading

    def read(self, name: str) -> RefValue | None:
        _check_name(name)
        try:
            return RefValue.decode(name, self.backend.get(name))
        except KeyNotFound:
            return None

    def _read_raw(self, name: str) -> bytes | None:
        try:
            return self.backend.get(name)
        except KeyNotFound:
            return None

    def follow(self, name: str) -> tuple[str, ObjectId | None]:
        """The final ref name a chain of symbolic refs leads to, and its id (None if unborn)."""
        for _ in range(MAX_DEPTH):
            value = self.read(name)
            if value is None:
                return name, None
            if value.symbolic is None:
                return name, value.target
            name = value.symbolic
        raise RepositoryError(f"symbolic ref loop at {name}")

    def resolve(self, name: str) -> ObjectId | None:
        return self.follow(name)[1]

    def require(self, name: str) -> ObjectId:
        oid = self.resolve(name)
        if oid is None:
            raise UnknownRevision(f"ref {name} does not exist")
        return oid

    def list(self, prefix: str = "refs/") -> dict[str, ObjectId]:
        """Every direct ref under ``prefix`` (sorted by name)."""
        out: dict[str, ObjectId] = {}
        for info in self.backend.iter_keys(prefix):
            if info.key.endswith(".lock"):
                continue
            value = self.read(info.key)
            if value is not None and value.target is not None:
                out[info.key] = value.target
        return dict(sorted(out.items()))

    # ---- writing

    def update(
        self,
        name: str,
        new: ObjectId | None,
        old: ObjectId | None,
        *,
        who: Signature | None = None,
        message: str = "",
        check_old: bool = True,
    ) -> None:
        """Point ``name`` at ``new`` (None deletes) if it currently holds ``old`` (None: absent).

        With ``check_old=False`` the current value is read and swapped (a forced update that
        still cannot interleave with another writer). Raises RefConflict.
        """
        _check_name(name)
        new_bytes = None if new is None else RefValue(target=new).encode()
        if check_old:
            expected = None if old is None else RefValue(target=old).encode()
        else:
            expected = self._read_raw(name)
            cur = None if expected is None else RefValue.decode(name, expected)
            old = cur.target if cur is not None else None
        try:
            with storage_refusals(f"{self.backend.describe()}/{name}"):
                self.backend.compare_and_swap(name, expected, new_bytes)
        except KeyConflict as exc:
            current = self.read(name)
            now = (
                "absent" if current is None or current.target is None else current.target.hex()[:12]
            )
            raise RefConflict(
                f"ref {name} changed concurrently (now {now}, expected "
                f"{old.hex()[:12] if old else 'absent'}); nothing was changed: {exc}"
            ) from None
        self._log(name, old, new, who, message)

    def set_symbolic(
        self, name: str, target: str, *, who: Signature | None = None, message: str = ""
    ) -> None:
        _check_name(name)
        check_refname(target)
        old_raw = self._read_raw(name)
        old = RefValue.decode(name, old_raw).target if old_raw else None
        try:
            with storage_refusals(f"{self.backend.describe()}/{name}"):
                self.backend.compare_and_swap(name, old_raw, RefValue(symbolic=target).encode())
        except KeyConflict:
            raise RefConflict(f"ref {name} changed concurrently; nothing was changed") from None
        new = self.resolve(target)
        if old != new:
            self._log(name, old, new, who, message)

    def set_detached(
        self, name: str, target: ObjectId, *, who: Signature | None = None, message: str = ""
    ) -> None:
        _check_name(name)
        old_raw = self._read_raw(name)
        old = self.resolve(name) if old_raw else None
        try:
            with storage_refusals(f"{self.backend.describe()}/{name}"):
                self.backend.compare_and_swap(name, old_raw, RefValue(target=target).encode())
        except KeyConflict:
            raise RefConflict(f"ref {name} changed concurrently; nothing was changed") from None
        self._log(name, old, target, who, message)

    # ---- reflog

    def _log_path(self, name: str) -> Path | None:
        return None if self.logs_dir is None else self.logs_dir / name

    def _log(
        self,
        name: str,
        old: ObjectId | None,
        new: ObjectId | None,
        who: Signature | None,
        message: str,
    ) -> None:
        path = self._log_path(name)
        if path is None:
            return
        if who is None:
            who = Signature("dsrepo", "dsrepo@localhost", int(time.time()), 0)
        line = (
            f"{old.hex() if old else ZERO} {new.hex() if new else ZERO} "
            f"{who.name} <{who.email}> {who.time} {who.format_tz()}\t"
            f"{message.splitlines()[0] if message else ''}\n"
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            append_locked(path, line.encode("utf-8"))
        except OSError as exc:  # the ref has moved: a reflog line lost to a full disk is no failure
            if storage_error(exc, path) is None:
                raise

    def log_for_branch_via_head(
        self,
        branch: str,
        old: ObjectId | None,
        new: ObjectId | None,
        who: Signature | None,
        message: str,
    ) -> None:
        """Mirror an update of the branch HEAD points at into HEAD's reflog (as git does)."""
        head = self.read(HEAD)
        if head is not None and head.symbolic == branch:
            self._log(HEAD, old, new, who, message)

    def reflog(self, name: str) -> builtins.list[ReflogEntry]:
        """Entries oldest first. Malformed lines are skipped (fsck reports them)."""
        path = self._log_path(name)
        if path is None or not path.exists():
            return []
        out = []
        for line in path.read_text("utf-8", errors="replace").splitlines():
            entry = parse_reflog_line(line)
            if entry is not None:
                out.append(entry)
        return out

    def reflog_names(self) -> Iterator[str]:
        if self.logs_dir is None or not self.logs_dir.exists():
            return
        for dirpath, _dirs, files in os.walk(self.logs_dir):
            for f in files:
                yield Path(dirpath, f).relative_to(self.logs_dir).as_posix()


def append_locked(path: Path, data: bytes) -> None:
    """Append ``data`` to a reflog under ``flock``: ``reflog expire`` replaces the file holding
    that lock, so an append that finds the file replaced meanwhile goes to the new one."""
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_ino != os.stat(path).st_ino:
                    continue
            except FileNotFoundError:
                continue
            os.write(fd, data)
            os.fsync(fd)
            return
        finally:
            os.close(fd)


def parse_reflog_line(line: str) -> ReflogEntry | None:
    try:
        head, message = line.split("\t", 1) if "\t" in line else (line, "")
        old, new, rest = head.split(" ", 2)
        who, tail = rest.rsplit(">", 1)
        ts, tz = tail.split()
        sign = -1 if tz.startswith("-") else 1
        tzm = sign * (int(tz[1:3]) * 60 + int(tz[3:5]))
        return ReflogEntry(
            None if old == ZERO else from_hex(old),
            None if new == ZERO else from_hex(new),
            who + ">",
            int(ts),
            tzm,
            message,
        )
    except (ValueError, IndexError, Exception):
        return None
