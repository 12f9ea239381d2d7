"""The retry wrapper and the fault-injecting wrappers, over the in-memory backend."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dsrepo.remotes.base import Backend
from dsrepo.remotes.directory import DirectoryBackend
from dsrepo.remotes.errors import (
    BackendError,
    KeyConflict,
    KeyNotFound,
    PermanentBackendError,
    TransientBackendError,
)
from dsrepo.remotes.faults import BitFlipBackend, FlakyBackend, ReadOnlyBackend
from dsrepo.remotes.mapped import MAP_MIN
from dsrepo.remotes.memory import MemoryBackend
from dsrepo.remotes.retry import RetryingBackend
from dsrepo.remotes.testing import BackendConformance


class TestRetryingOverFlaky(BackendConformance):
    """Every operation fails twice before it works; the wrapper must hide that completely."""

    def make_backend(self, tmp_path: Path) -> Backend:
        return RetryingBackend(FlakyBackend(MemoryBackend(), failures=2), sleep=lambda s: None)


def make(
    failures: int, ops: tuple[str, ...] = ("get",), attempts: int = 5
) -> tuple[RetryingBackend, FlakyBackend, list[float]]:
    sleeps: list[float] = []
    flaky = FlakyBackend(MemoryBackend(), failures, ops)
    retrying = RetryingBackend(flaky, attempts=attempts, sleep=sleeps.append, rng=random.Random(1))
    return retrying, flaky, sleeps


def test_transient_errors_are_retried() -> None:
    backend, flaky, sleeps = make(failures=3)
    backend.put("k", b"v")
    assert backend.get("k") == b"v"
    assert flaky.calls["get"] == 4
    assert len(sleeps) == 3
    for n, s in enumerate(sleeps, 1):  # exponential backoff, jittered within [d/2, d]
        d = 0.1 * 2 ** (n - 1)
        assert d / 2 <= s <= d


def test_backoff_is_capped() -> None:
    backend = RetryingBackend(MemoryBackend(), base_delay=1, max_delay=5)
    assert all(2.5 <= backend.delay(n) <= 5 for n in range(4, 20))


def test_attempts_exhausted_reraises() -> None:
    backend, flaky, sleeps = make(failures=10, attempts=3)
    backend.put("k", b"v")
    with pytest.raises(TransientBackendError, match="injected"):
        backend.get("k")
    assert flaky.calls["get"] == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("error", [KeyNotFound, KeyConflict, PermanentBackendError, BackendError])
def test_non_transient_errors_are_not_retried(error: type[BackendError]) -> None:
    calls = 0

    class Failing(MemoryBackend):
        def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
            nonlocal calls
            calls += 1
            raise error("no")

    sleeps: list[float] = []
    with pytest.raises(error):
        RetryingBackend(Failing(), sleep=sleeps.append).get("k")
    assert calls == 1 and sleeps == []


def test_missing_key_is_not_retried() -> None:
    backend, flaky, sleeps = make(failures=0)
    with pytest.raises(KeyNotFound):
        backend.get("missing")
    assert flaky.calls["get"] == 1 and sleeps == []


def test_landed_put_if_absent_reports_false() -> None:
    flaky = FlakyBackend(MemoryBackend(), 1, ["put_if_absent"], after=True)
    backend = RetryingBackend(flaky, sleep=lambda s: None)
    assert backend.put_if_absent("obj", b"data") is False  # documented: the write landed
    assert backend.get("obj") == b"data"


@pytest.mark.parametrize("new", [b"v2", None])
def test_landed_compare_and_swap_succeeds(new: bytes | None) -> None:
    inner = MemoryBackend()
    inner.put("ref", b"v1")
    flaky = FlakyBackend(inner, 1, ["compare_and_swap"], after=True)
    backend = RetryingBackend(flaky, sleep=lambda s: None)
    backend.compare_and_swap("ref", b"v1", new)
    assert flaky.calls["compare_and_swap"] == 2
    assert inner.list() == ([] if new is None else [inner.stat("ref")])


def test_real_conflict_is_still_reported() -> None:
    backend, _, _ = make(failures=1, ops=("compare_and_swap",))
    backend.put("ref", b"theirs")
    with pytest.raises(KeyConflict):
        backend.compare_and_swap("ref", b"mine", b"new")
    assert backend.get("ref") == b"theirs"


def test_wrapper_keeps_capabilities_and_description() -> None:
    inner = MemoryBackend()
    backend = RetryingBackend(inner)
    assert backend.capabilities == inner.capabilities
    assert backend.describe() == inner.describe()
    with pytest.raises(ValueError):
        RetryingBackend(inner, attempts=0)


def test_bit_flip_corrupts_matching_keys_only() -> None:
    inner = MemoryBackend()
    inner.put("packs/p1", b"\x00\x00\x00")
    inner.put("refs/main", b"\x00")
    inner.put("packs/empty", b"")
    backend = BitFlipBackend(inner, lambda key: key.startswith("packs/"), bit=9)
    assert backend.get("packs/p1") == b"\x00\x02\x00"
    assert backend.get("packs/p1", 1, 1) == b"\x02"  # bit 9 of one byte wraps to bit 1
    assert backend.get("refs/main") == b"\x00"
    assert backend.get("packs/empty") == b""
    assert inner.get("packs/p1") == b"\x00\x00\x00"


def test_bit_flip_corrupts_mapped_reads_too(tmp_path: Path) -> None:
    """A pack read whole (get_mapped: a mapping of the file) is flipped like any read, the file
    left as it was."""
    inner = DirectoryBackend(tmp_path)
    value = bytes(MAP_MIN + 1)
    inner.put("packs/p1", value)
    inner.put("refs/main", value)
    backend = BitFlipBackend(inner, lambda key: key.startswith("packs/"), bit=9)
    got = backend.get_mapped("packs/p1")
    assert type(got) is bytes and got[:3] == b"\x00\x02\x00" and got[3:] == value[3:]
    assert backend.get_mapped("refs/main")[:] == value
    assert inner.get("packs/p1") == value


def test_read_only_refuses_writes() -> None:
    inner = MemoryBackend()
    inner.put("k", b"v")
    backend = ReadOnlyBackend(inner)
    assert backend.get("k") == b"v"
    assert [i.key for i in backend.list()] == ["k"]
    for write in (
        lambda: backend.put("k", b"w"),
        lambda: backend.put_if_absent("n", b"w"),
        lambda: backend.put_parts_if_absent("n", [b"w", memoryview(b"x")]),
        lambda: backend.delete("k"),
        lambda: backend.compare_and_swap("k", b"v", b"w"),
    ):
        with pytest.raises(PermanentBackendError, match="read-only"):
            write()
    assert inner.get("k") == b"v"
    assert RetryingBackend(backend, sleep=lambda s: None).list() == inner.list()


def test_flaky_rejects_unknown_operations() -> None:
    with pytest.raises(ValueError, match="gett"):
        FlakyBackend(MemoryBackend(), 1, ["gett"])
