"""A policy wrapper that counts requests and bytes per operation (for reports and benchmarks)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

from dsrepo.remotes.base import Backend, KeyInfo
from dsrepo.remotes.mapped import MappedFile
from dsrepo.remotes.wrapper import BackendWrapper, parts_size


class CountingBackend(BackendWrapper):
    """Counts ``inner``'s requests per operation in ``requests`` (``put_if_absent`` and
    ``put_parts_if_absent`` count as ``"put"``, ``compare_and_swap`` as ``"cas"``), and the
    value bytes sent and received."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.bytes_received = 0
        self._lock = threading.Lock()

    def _count(self, op: str, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self.requests[op] += 1
            self.bytes_sent += sent
            self.bytes_received += received

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def stat(self, key: str) -> KeyInfo:
        self._count("stat")
        return self.inner.stat(key)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(key, offset, length)
        self._count("get", received=len(data))
        return data

    def get_mapped(self, key: str) -> bytes | MappedFile:
        data = self.inner.get_mapped(key)
        self._count("get", received=len(data))
        return data

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        self._count("put", sent=len(data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        created = self.inner.put_if_absent(key, data)
        self._count("put", sent=len(data))
        return created

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        created = self.inner.put_parts_if_absent(key, parts)
        self._count("put", sent=parts_size(parts))
        return created

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        self._count("list")
        return self.inner.list(prefix, start_after, limit)

    def delete(self, key: str) -> None:
        self._count("delete")
        self.inner.delete(key)

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        self._count("cas", sent=len(new or b""))
        self.inner.compare_and_swap(key, expected, new)
