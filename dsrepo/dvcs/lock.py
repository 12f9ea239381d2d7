"""Locks between dsrepo processes on one machine: an exclusive ``flock(2)`` on a lock file.

``.dsrepo/index.lock`` guards the working-copy state (the staging index, the files, HEAD as the
working-copy verbs move it, MERGE_HEAD, the operation record, the sparse patterns): every verb
that changes it holds the lock for its whole run and reads that state only once it holds it.
``<config file>.lock`` guards one read-modify-write of a config file. Refs take no lock here:
they move by compare-and-swap. ``.dsrepo/gc.lock`` (:class:`SharedLock`) is held shared by every
command that writes objects, from its first object write until its refs moved, and exclusively
by ``gc`` for its whole run (docs/gc.md). The order, when several are held: gc lock, then index
lock, then config lock.

A writer polls for a busy lock up to a timeout (:data:`DEFAULT_TIMEOUT`), then fails with
:class:`~dsrepo.dvcs.errors.Locked` (exit 11). The kernel drops a flock lock when its holder
exits, however it exits (SIGKILL included), so no stale lock is ever left: the lock file stays,
and its presence alone means nothing.

One :class:`FileLock` per path per process (:func:`file_lock`), re-entrant in the thread holding
it: the API's verbs nest (``pull`` merges, ``clone`` checks out), and two open descriptors of one
process would block each other. Other threads of the process wait as other processes do.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from dsrepo.dvcs.errors import Locked, RepositoryError
from dsrepo.objects.errors import storage_error

DEFAULT_TIMEOUT = 10.0
"""Seconds a writer waits for a lock another process holds before failing with ``Locked``."""
INDEX_LOCK = "index.lock"
GC_LOCK = "gc.lock"

_POLL_FIRST, _POLL_MAX = 0.005, 0.05


class FileLock:
    """An exclusive ``flock`` on ``path`` (created if missing), re-entrant in its holder thread."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        """Named in the error: ``the index (.dsrepo/index.lock)``."""
        self._guard = threading.Lock()
        self._fd: int | None = None
        self._owner: int | None = None  # the holder thread's ident
        self._depth = 0
        self._pid = os.getpid()
        self._holds = 0  # outermost holds so far, numbering them

    def acquire(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds for its holder to finish. True when
        this call took it, False when the calling thread already held it (each call is matched
        by one :meth:`release`). Raises ``Locked`` on timeout, ``StorageUnavailable`` when the
        lock file cannot be created."""
        deadline = time.monotonic() + timeout
        delay = _POLL_FIRST
        while True:
            try:
                taken = self._try()
            except OSError as exc:  # a read-only or full filesystem: exit 12, as for any write
                raise storage_error(exc, self.path) or RepositoryError(
                    f"cannot lock {self.path}: {exc.strerror or exc}"
                ) from None
            if taken is not None:
                return taken
            left = deadline - time.monotonic()
            if left <= 0:
                raise Locked(
                    f"another dsrepo process is writing {self.what}; try again when it is done"
                )
            time.sleep(min(delay, left))
            delay = min(delay * 2, _POLL_MAX)

    def try_acquire(self) -> bool:
        """Take the lock only if that needs no wait; False when it is busy or cannot be created
        (a read-only repository). On True the caller releases it."""
        try:
            return self._try() is not None
        except OSError:
            return False

    def release(self) -> None:
        with self._guard:
            if self._owner != threading.get_ident() or self._fd is None:
                raise RepositoryError(f"{self.path} is released by a thread not holding it")
            self._depth -= 1
            if self._depth == 0:
                fd, self._fd, self._owner = self._fd, None, None
                os.close(fd)  # drops the flock

    def held_here(self) -> bool:
        """Whether the calling thread holds the lock."""
        with self._guard:
            self._forget_if_forked()
            return self._owner == threading.get_ident()

    def hold_number(self) -> int | None:
        """Which outermost hold of this lock the calling thread is in, None when it holds none:
        state read under another number (or none) may have changed since."""
        with self._guard:
            self._forget_if_forked()
            return self._holds if self._owner == threading.get_ident() else None

    @contextlib.contextmanager
    def held(self, timeout: float = DEFAULT_TIMEOUT) -> Iterator[bool]:
        """:meth:`acquire` … :meth:`release`; yields whether this is the outermost hold."""
        first = self.acquire(timeout)
        try:
            yield first
        finally:
            self.release()

    def _try(self) -> bool | None:
        """True: taken now; False: re-entered; None: held by another process or thread."""
        me = threading.get_ident()
        with self._guard:
            self._forget_if_forked()
            if self._owner == me:
                self._depth += 1
                return False
            if self._owner is not None:
                return None
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BaseException as exc:
                os.close(fd)
                if isinstance(exc, BlockingIOError):
                    return None
                raise
            self._fd, self._owner, self._depth = fd, me, 1
            self._holds += 1
            return True

    def _forget_if_forked(self) -> None:
        """A forked child does not hold its parent's lock (it shares the descriptor: close it)."""
        if self._pid != os.getpid():
            if self._fd is not None:
                os.close(self._fd)
            self._fd, self._owner, self._depth, self._pid = None, None, 0, os.getpid()


_locks: dict[str, FileLock] = {}
_locks_guard = threading.Lock()


def file_lock(path: Path, what: str) -> FileLock:
    """The process's one lock object for ``path``."""
    key = os.path.realpath(path)
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = FileLock(Path(key), what)
        return lock


def index_lock(dsdir: Path) -> FileLock:
    """The lock on a repository's working-copy state: ``.dsrepo/index.lock``."""
    return file_lock(dsdir / INDEX_LOCK, f"the index ({dsdir.name}/{INDEX_LOCK})")


class SharedLock:
    """A ``flock`` on ``path``, held shared (any number of holders) or exclusively (one).

    Each thread holding it has its own descriptor, so threads of one process exclude each other as
    processes do (a gc in one thread waits for an ``add`` in another). Re-entrant in a thread: a
    shared request inside an exclusive hold is granted (gc may call writers); an exclusive request
    inside a shared hold is refused (that thread would wait for itself). ``timeout=None`` waits
    as long as it takes (a writer waits for a running gc, gc for the running writers)."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        """Named in the error: ``.dsrepo/gc.lock``."""
        self._local = threading.local()

    def _hold(self) -> _Hold:
        hold: _Hold | None = getattr(self._local, "hold", None)
        if hold is None or hold.pid != os.getpid():
            if hold is not None and hold.fd is not None:  # a forked child does not hold it
                with contextlib.suppress(OSError):
                    os.close(hold.fd)
            hold = self._local.hold = _Hold(os.getpid())
        return hold

    def held_here(self) -> str | None:
        """``"shared"`` or ``"exclusive"`` when the calling thread holds the lock, else None."""
        hold = self._hold()
        if not hold.depth:
            return None
        return "exclusive" if hold.exclusive else "shared"

    @contextlib.contextmanager
    def shared(self, timeout: float | None = None) -> Iterator[None]:
        self._acquire(False, timeout)
        try:
            yield
        finally:
            self._release()

    @contextlib.contextmanager
    def exclusive(self, timeout: float | None = None) -> Iterator[None]:
        self._acquire(True, timeout)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, exclusive: bool, timeout: float | None) -> None:
        hold = self._hold()
        if hold.depth:
            if exclusive and not hold.exclusive:
                raise RepositoryError(
                    f"cannot take {self.path} exclusively while this thread holds it shared"
                )
            hold.depth += 1
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise storage_error(exc, self.path) or RepositoryError(
                f"cannot lock {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            self._wait(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, timeout)
        except BaseException:
            os.close(fd)
            raise
        hold.fd, hold.exclusive, hold.depth = fd, exclusive, 1

    def _wait(self, fd: int, op: int, timeout: float | None) -> None:
        if timeout is None:
            fcntl.flock(fd, op)  # in the kernel; Ctrl-C still interrupts it
            return
        deadline = time.monotonic() + timeout
        delay = _POLL_FIRST
        while True:
            try:
                fcntl.flock(fd, op | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                busy = "writing objects" if op & fcntl.LOCK_EX else "running gc"
                raise Locked(
                    f"another dsrepo process is {busy} ({self.what}); try again when it is done"
                )
            time.sleep(min(delay, left))
            delay = min(delay * 2, _POLL_MAX)

    def _release(self) -> None:
        hold = self._hold()
        if not hold.depth or hold.fd is None:
            raise RepositoryError(f"{self.path} is released by a thread not holding it")
        hold.depth -= 1
        if hold.depth == 0:
            fd, hold.fd = hold.fd, None
            os.close(fd)  # drops the flock


class _Hold:
    """One thread's hold of a :class:`SharedLock`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd: int | None = None
        self.exclusive = False
        self.depth = 0


_shared: dict[str, SharedLock] = {}


def gc_lock(dsdir: Path) -> SharedLock:
    """The lock between gc and the commands that write objects: ``.dsrepo/gc.lock``."""
    key = os.path.realpath(dsdir / GC_LOCK)
    with _locks_guard:
        lock = _shared.get(key)
        if lock is None:
            lock = _shared[key] = SharedLock(Path(key), f"{dsdir.name}/{GC_LOCK}")
        return lock


class Locking(Protocol):
    dsdir: Path
    lock_timeout: float
    gc_lock_timeout: float | None


L = TypeVar("L", bound=Locking)
P = ParamSpec("P")
T = TypeVar("T")


def holds_index_lock(method: Callable[Concatenate[L, P], T]) -> Callable[Concatenate[L, P], T]:
    """A verb that changes the working-copy state: it runs holding the index lock (waiting up to
    ``self.lock_timeout`` seconds for it), so the state it reads is read under the lock; and,
    before it, the gc lock shared (these verbs write objects, or fetch them on demand, and make
    the index or a ref name them; ``self.gc_lock_timeout``: None waits for a running gc)."""

    @functools.wraps(method)
    def locked(self: L, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with (
            gc_lock(self.dsdir).shared(self.gc_lock_timeout),
            index_lock(self.dsdir).held(self.lock_timeout),
        ):
            return method(self, *args, **kwargs)

    return locked


def holds_gc_lock(method: Callable[Concatenate[L, P], T]) -> Callable[Concatenate[L, P], T]:
    """A verb that writes objects and then moves refs to them without touching the working copy
    (``fetch``, ``tag -m``): it runs holding the gc lock shared, so no gc runs meanwhile."""

    @functools.wraps(method)
    def locked(self: L, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with gc_lock(self.dsdir).shared(self.gc_lock_timeout):
            return method(self, *args, **kwargs)

    return locked
