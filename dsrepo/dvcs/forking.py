"""Part of a job done by a forked child: ``status``'s walk (:mod:`dsrepo.dvcs.statuswalk`) and
the writing of a version's files (:mod:`dsrepo.dvcs.forkwrite`) split their work this way, since
each spends more time in Python than in the kernel and one process keeps one core busy.

A :class:`Child` computes ``work()`` (a value msgpack can carry) and sends it back through a
pipe while the parent does its own part; :meth:`Child.result` is then that value, or None if the
child failed in any way (an exception, a signal, an answer that does not decode). The caller
then does the child's part itself, so an error surfaces in the parent with its own class and
message. The child exits with ``os._exit``: no atexit handler runs, no buffered output is
written twice, no inherited object is finalized (a SQLite connection stays open, as its
parent's), and it runs without the cyclic collector.

Only where forking is safe (:func:`can_fork`): a process with no other thread (the child gets
only the forking thread, and a lock another thread held would stay held), more than one CPU.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsrepo.objects.locindex import LocationIndex
    from dsrepo.objects.store import ObjectStore


def can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1 and (os.cpu_count() or 1) > 1


def start(main: Callable[[], None]) -> int:
    """Fork a child that runs ``main()`` without the cyclic collector (it lives for one part of
    one job) and exits with ``os._exit``: 0 when ``main`` returns, 1 when it raises. Returns the
    child's pid, in the parent only."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        code = 1
        try:
            gc.disable()
            main()
            code = 0
        finally:
            os._exit(code)
    return pid


def send(fd: int, value: object) -> None:
    """Write ``value``, msgpack-encoded, whole to ``fd`` (raises OSError)."""
    import msgpack

    data = memoryview(msgpack.packb(value))
    while data:
        data = data[os.write(fd, data) :]


_inherited: list[LocationIndex] = []
"""Location indexes a child inherited, kept referenced until it exits: closing their connection
would touch the parent's locks."""


def own_index(store: ObjectStore) -> None:
    """In a child: locate and record objects through a connection of its own (SQLite's locks
    belong to a process), keeping the inherited one open and unused."""
    _inherited.append(store.use_index(store.index.reopened()))


class Child:
    """A forked process computing ``work()``; :meth:`result` waits for it."""

    def __init__(self, work: Callable[[], object]) -> None:
        r, w = os.pipe()

        def main() -> None:  # pragma: no cover - runs in the child
            os.close(r)
            send(w, work())

        self._pid = start(main)
        os.close(w)
        self._fd = r

    def result(self) -> Any:
        """What ``work()`` returned, or None if the child failed (see the module docstring)."""
        import msgpack

        raw = b""
        status = -1
        try:
            with os.fdopen(self._fd, "rb") as f:
                raw = f.read()
        except OSError:
            pass
        finally:
            _, status = os.waitpid(self._pid, 0)
        if status != 0:
            return None
        try:
            return msgpack.unpackb(raw)
        except Exception:
            return None
