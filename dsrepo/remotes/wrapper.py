"""The one forwarding base for backend wrappers (retry, counting, fault injection, ...).

A wrapper holds an ``inner`` backend and passes every verb of the :class:`Backend` contract to it;
a subclass overrides only the verbs whose behaviour it changes. A wrapper that changes how values
are written must override ``put_parts_if_absent`` as well as ``put_if_absent``: the forwarded
``put_parts_if_absent`` goes straight to ``inner`` (so a backend that writes piece by piece still
does), bypassing the subclass's ``put_if_absent``.

:func:`find_backend` looks through a stack of wrappers for a backend of a given type (like
restic's ``AsBackend``), so callers never reach for ``.inner.inner``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, TypeVar

from dsrepo.remotes.base import Backend, KeyInfo
from dsrepo.remotes.mapped import MappedFile

B = TypeVar("B", bound=Backend)


class BackendWrapper(Backend):
    """Passes every call to ``inner``; subclasses override what they change.

    ``iter_keys`` is deliberately not forwarded: it is built on :meth:`list`, so it pages through
    this wrapper's ``list`` and gets the wrapper's policy (retries, counting, injected faults).
    """

    NOT_FORWARDED: ClassVar[frozenset[str]] = frozenset({"iter_keys"})
    """Public :class:`Backend` methods derived from other verbs, and so inherited, not forwarded."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities

    def unwrap(self) -> Backend:
        """The backend this one wraps."""
        return self.inner

    def stat(self, key: str) -> KeyInfo:
        return self.inner.stat(key)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.get(key, offset, length)

    def get_mapped(self, key: str) -> bytes | MappedFile:
        return self.inner.get_mapped(key)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.inner.put_if_absent(key, data)

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        return self.inner.put_parts_if_absent(key, parts)

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        return self.inner.list(prefix, start_after, limit)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        self.inner.compare_and_swap(key, expected, new)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()


def find_backend(backend: Backend, kind: type[B]) -> B | None:
    """The first backend in ``backend``'s wrapper chain (``backend`` itself, then each
    :meth:`BackendWrapper.unwrap` in turn) that is an instance of ``kind``; None if none is."""
    current: Backend | None = backend
    while current is not None:
        if isinstance(current, kind):
            return current
        current = current.unwrap() if isinstance(current, BackendWrapper) else None
    return None


def parts_size(parts: Sequence[bytes | memoryview]) -> int:
    """Total bytes in ``parts`` (a memoryview counts its bytes, not its items)."""
    return sum(p.nbytes if isinstance(p, memoryview) else len(p) for p in parts)
