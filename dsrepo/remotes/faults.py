"""Fault-injecting backend wrappers for tests: flaky calls, corrupted reads, read-only stores."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from dsrepo.remotes.base import Backend, KeyInfo
from dsrepo.remotes.errors import PermanentBackendError, TransientBackendError
from dsrepo.remotes.mapped import MappedFile
from dsrepo.remotes.wrapper import BackendWrapper

OPERATIONS = ("stat", "get", "put", "put_if_absent", "list", "delete", "compare_and_swap")
"""Operation names for :class:`FlakyBackend`. ``put_parts_if_absent`` is the same operation as
``put_if_absent`` (one value, created unless present) and is counted and failed as it."""
WRITES = ("put", "put_if_absent", "delete", "compare_and_swap")

T = TypeVar("T")


class FlakyBackend(BackendWrapper):
    """Fails the first ``failures`` calls of each operation in ``operations`` as transient.

    With ``after=True`` the failing call reaches ``inner`` first and only the answer is lost
    (a write that landed but timed out). ``calls`` counts every call per operation;
    ``put_parts_if_absent`` counts and fails as ``put_if_absent``.
    """

    def __init__(
        self,
        inner: Backend,
        failures: int = 1,
        operations: Iterable[str] = OPERATIONS,
        *,
        after: bool = False,
    ) -> None:
        super().__init__(inner)
        self.operations = frozenset(operations)
        unknown = self.operations - set(OPERATIONS)
        if unknown:
            raise ValueError(f"unknown operations: {sorted(unknown)}")
        self.failures = failures
        self.after = after
        self.calls: dict[str, int] = dict.fromkeys(OPERATIONS, 0)
        self._lock = threading.Lock()

    def _run(self, op: str, key: str, call: Callable[[], T]) -> T:
        with self._lock:
            self.calls[op] += 1
            fail = op in self.operations and self.calls[op] <= self.failures
        if not fail:
            return call()
        if self.after:
            call()
        raise TransientBackendError(f"injected transient failure: {op} {key!r}")

    def stat(self, key: str) -> KeyInfo:
        return self._run("stat", key, lambda: self.inner.stat(key))

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._run("get", key, lambda: self.inner.get(key, offset, length))

    def get_mapped(self, key: str) -> bytes | MappedFile:
        return self._run("get", key, lambda: self.inner.get_mapped(key))

    def put(self, key: str, data: bytes) -> None:
        self._run("put", key, lambda: self.inner.put(key, data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._run("put_if_absent", key, lambda: self.inner.put_if_absent(key, data))

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        return self._run("put_if_absent", key, lambda: self.inner.put_parts_if_absent(key, parts))

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        return self._run("list", prefix, lambda: self.inner.list(prefix, start_after, limit))

    def delete(self, key: str) -> None:
        self._run("delete", key, lambda: self.inner.delete(key))

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        self._run("compare_and_swap", key, lambda: self.inner.compare_and_swap(key, expected, new))


class BitFlipBackend(BackendWrapper):
    """Flips bit ``bit`` (modulo the length in bits) of every non-empty value ``get`` (or
    ``get_mapped``) returns for keys where ``predicate(key)`` is true."""

    def __init__(
        self, inner: Backend, predicate: Callable[[str], bool] = lambda key: True, bit: int = 0
    ) -> None:
        super().__init__(inner)
        self.predicate = predicate
        self.bit = bit

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._flip(key, self.inner.get(key, offset, length))

    def get_mapped(self, key: str) -> bytes | MappedFile:
        data = self.inner.get_mapped(key)
        return self._flip(key, data if isinstance(data, bytes) else data[:])  # read out of the mapping

    def _flip(self, key: str, data: bytes) -> bytes:
        if not data or not self.predicate(key):
            return data
        bit = self.bit % (len(data) * 8)
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        return bytes(flipped)


class ReadOnlyBackend(BackendWrapper):
    """Reads pass through; every write raises PermanentBackendError."""

    def _refuse(self, op: str, key: str) -> PermanentBackendError:
        return PermanentBackendError(f"{self.describe()} is read-only: cannot {op} {key!r}")

    def put(self, key: str, data: bytes) -> None:
        raise self._refuse("put", key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        raise self._refuse("put_if_absent", key)

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        raise self._refuse("put_if_absent", key)

    def delete(self, key: str) -> None:
        raise self._refuse("delete", key)

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        raise self._refuse("compare_and_swap", key)
