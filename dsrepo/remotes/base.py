"""The storage backend interface: a handful of verbs on opaque keys.

Everything dsrepo stores — packs, pack indexes, refs, the format marker — lives in a backend under
keys spelled by :mod:`dsrepo.objects.layout`. Backends stay small; policy (retries, read-only,
caching, fault injection) lives in wrappers that implement this same interface by subclassing
:class:`dsrepo.remotes.wrapper.BackendWrapper`, which forwards every verb to the wrapped backend.

Contract, checked by :mod:`dsrepo.remotes.testing` for every implementation:

- ``put`` replaces atomically: a reader sees the old value or the new one, never a mix.
- ``put_if_absent``, ``put_parts_if_absent`` and ``compare_and_swap`` are atomic when
  ``capabilities.conditional_writes`` is true; two racing writers cannot both win.
- ``list`` returns keys in ascending byte order, at most ``limit`` per call, after ``start_after``.
- Errors are :mod:`dsrepo.remotes.errors` classes, never the transport's own exceptions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from dsrepo.remotes.mapped import MappedFile


@dataclass(frozen=True)
class Capabilities:
    """What a backend can promise."""

    conditional_writes: bool
    """``put_if_absent`` and ``compare_and_swap`` are atomic (safe for refs)."""
    range_reads: bool = True
    """``get`` with an offset/length transfers only that range."""
    local: bool = False
    """Keys are files on a local filesystem (cheap requests, no need for large batches)."""


@dataclass(frozen=True)
class KeyInfo:
    """A key, the size of its value in bytes and when the backend last wrote it."""

    key: str
    size: int
    mtime: float | None = field(default=None, compare=False)
    """Seconds since the epoch by the backend's own clock (a file's ``st_mtime``, S3's
    ``LastModified``), None when the backend cannot tell. gc ages packs by it
    (docs/gc.md): never compare it with the local clock, only with the same backend's."""


class Backend(ABC):
    """A key/bytes store. See the module docstring for the contract."""

    capabilities: Capabilities

    @abstractmethod
    def stat(self, key: str) -> KeyInfo:
        """Size (and modification time) of ``key``'s value. Raises KeyNotFound."""

    @abstractmethod
    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of ``key`` from ``offset``; ``length`` None means to the end.

        A range past the end returns what exists (possibly ``b""``). Raises KeyNotFound.
        """

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Create or atomically replace ``key``; durable when this returns."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` unless it exists. True if this call created it, False if it existed."""

    @abstractmethod
    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        """Up to ``limit`` keys starting with ``prefix``, sorted, strictly after ``start_after``
        (each with its size and modification time, as :meth:`stat` reports them)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abstractmethod
    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        """Set ``key`` to ``new`` only if its value is ``expected``.

        ``expected=None`` means the key must not exist; ``new=None`` deletes it.
        Raises KeyConflict when the current value differs.
        """

    def get_mapped(self, key: str) -> bytes | MappedFile:
        """All of ``key``'s value, as ``get(key)``; a backend holding it in a local file may map
        the file instead of reading it (:mod:`dsrepo.remotes.mapped`: nothing copied into
        memory, and a local backend given the mapping to write copies the file in the kernel).
        """
        return self.get(key)

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        """``put_if_absent`` of the concatenation of ``parts``. Backends that can write a value
        piece by piece override it to spare the copy (a 32 MiB pack is thousands of chunks)."""
        return self.put_if_absent(key, b"".join(parts))

    def iter_keys(self, prefix: str = "") -> Iterator[KeyInfo]:
        """Every key under ``prefix``, paging through :meth:`list`."""
        after: str | None = None
        while True:
            page = self.list(prefix, start_after=after, limit=1000)
            yield from page
            if len(page) < 1000:
                return
            after = page[-1].key

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections or handles. Idempotent."""

    def describe(self) -> str:
        """A short human-readable location for messages (a path or URL)."""
        return type(self).__name__
