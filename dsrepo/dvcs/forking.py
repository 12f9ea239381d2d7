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
from typing import Any


def can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1 and (os.cpu_count() or 1) > 1


class Child:
    """A forked process computing ``work()``; :meth:`result` waits for it."""

    def __init__(self, work: Callable[[], object]) -> None:
        import msgpack  # (not imported by status when it does not fork)

        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            code = 1
            try:
                os.close(r)
                gc.disable()  # it lives for one part of one job
                data = memoryview(msgpack.packb(work()))
                while data:
                    data = data[os.write(w, data) :]
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        self._pid, self._fd = pid, r

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
