"""BackendWrapper: every verb of the contract is forwarded, every wrapper passes the conformance
kit stacked over the memory backend, and find_backend looks through a stack of wrappers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from dsrepo.remotes import counting, faults, retry
from dsrepo.remotes.base import Backend, KeyInfo
from dsrepo.remotes.counting import CountingBackend
from dsrepo.remotes.directory import DirectoryBackend
from dsrepo.remotes.errors import PermanentBackendError, TransientBackendError
from dsrepo.remotes.faults import BitFlipBackend, FlakyBackend, ReadOnlyBackend
from dsrepo.remotes.memory import MemoryBackend
from dsrepo.remotes.retry import RetryingBackend
from dsrepo.remotes.testing import BackendConformance
from dsrepo.remotes.wrapper import BackendWrapper, find_backend

# -- the conformance kit through each wrapper -----------------------------------------------


class TestBackendWrapper(BackendConformance):
    def make_backend(self, tmp_path: Path) -> Backend:
        return BackendWrapper(MemoryBackend())


class TestCountingBackend(BackendConformance):
    def make_backend(self, tmp_path: Path) -> Backend:
        return CountingBackend(MemoryBackend())


class TestRetryingBackend(BackendConformance):
    def make_backend(self, tmp_path: Path) -> Backend:
        return RetryingBackend(MemoryBackend(), sleep=lambda s: None)


class TestStackOverDirectory(BackendConformance):
    """A stack as dsrepo builds it for a remote, over a backend that writes piece by piece."""

    def make_backend(self, tmp_path: Path) -> Backend:
        store = DirectoryBackend(tmp_path / "store", create=True)
        return CountingBackend(RetryingBackend(BackendWrapper(store), sleep=lambda s: None))


# -- the contract is forwarded in full ------------------------------------------------------


def backend_methods() -> set[str]:
    """Every public method of the Backend contract (defined on Backend or inherited by it)."""
    return {name for name, _ in inspect.getmembers(Backend, inspect.isfunction) if name[0] != "_"}


def test_wrapper_overrides_every_public_backend_method() -> None:
    methods = backend_methods()
    assert {"stat", "get", "put", "put_if_absent", "put_parts_if_absent", "list"} <= methods
    assert methods >= BackendWrapper.NOT_FORWARDED  # no stale exemptions
    missing = sorted(
        m for m in methods - BackendWrapper.NOT_FORWARDED if m not in vars(BackendWrapper)
    )
    assert not missing, f"BackendWrapper does not forward {missing}"
    for name in BackendWrapper.NOT_FORWARDED:  # inherited, so built on the wrapper's own verbs
        assert name not in vars(BackendWrapper), name
    assert not inspect.isabstract(BackendWrapper)


def _wrapper_classes() -> list[type[BackendWrapper]]:
    found: list[type[BackendWrapper]] = []
    todo = list(BackendWrapper.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("dsrepo."):
            found.append(cls)
    return sorted(found, key=lambda c: c.__qualname__)


def test_every_dsrepo_wrapper_subclasses_backend_wrapper() -> None:
    names = {c.__name__ for c in _wrapper_classes()}
    assert {"CountingBackend", "RetryingBackend", "FlakyBackend", "BitFlipBackend"} <= names
    assert "ReadOnlyBackend" in names
    assert not hasattr(faults, "ForwardingBackend")
    for module in (counting, retry, faults):
        for name, cls in vars(module).items():
            if (
                isinstance(cls, type)
                and issubclass(cls, Backend)
                and cls.__module__ == module.__name__
            ):
                assert issubclass(cls, BackendWrapper), name


@pytest.mark.parametrize("cls", _wrapper_classes(), ids=lambda c: c.__name__)
def test_wrappers_that_change_puts_handle_parts_too(cls: type[BackendWrapper]) -> None:
    """Overriding put_if_absent alone would let put_parts_if_absent bypass the policy."""
    overrides = {m for m in ("put_if_absent", "put_parts_if_absent") if m in vars(cls)}
    assert overrides in (set(), {"put_if_absent", "put_parts_if_absent"}), cls


class Recorder(MemoryBackend):
    """A memory backend that records which verb reached it, with which arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def record(self, verb: str, *args: Any) -> None:
        self.calls.append((verb, args))

    def stat(self, key: str) -> KeyInfo:
        self.record("stat", key)
        return super().stat(key)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self.record("get", key, offset, length)
        return super().get(key, offset, length)

    def get_mapped(self, key: str) -> bytes:
        self.record("get_mapped", key)
        return super().get(key)

    def put(self, key: str, data: bytes) -> None:
        self.record("put", key, data)
        super().put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self.record("put_if_absent", key, data)
        return super().put_if_absent(key, data)

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        self.record("put_parts_if_absent", key, parts)
        return MemoryBackend.put_if_absent(self, key, b"".join(parts))

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        self.record("list", prefix, start_after, limit)
        return super().list(prefix, start_after, limit)

    def delete(self, key: str) -> None:
        self.record("delete", key)
        super().delete(key)

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        self.record("compare_and_swap", key, expected, new)
        super().compare_and_swap(key, expected, new)

    def close(self) -> None:
        self.record("close")

    def describe(self) -> str:
        self.record("describe")
        return "recorder://"


PARTS = [b"pa", memoryview(b"rts")]
CALLS: dict[str, tuple[Any, ...]] = {
    "stat": ("k",),
    "get": ("k", 1, 2),
    "get_mapped": ("k",),
    "put": ("new", b"v"),
    "put_if_absent": ("new", b"v"),
    "put_parts_if_absent": ("new", PARTS),
    "list": ("", "a", 10),
    "delete": ("k",),
    "compare_and_swap": ("k", b"value", b"next"),
    "close": (),
    "describe": (),
}
WRITES = {"put", "put_if_absent", "put_parts_if_absent", "delete", "compare_and_swap"}

WRAPPERS: dict[str, Callable[[Backend], BackendWrapper]] = {
    "BackendWrapper": BackendWrapper,
    "CountingBackend": CountingBackend,
    "RetryingBackend": lambda inner: RetryingBackend(inner, sleep=lambda s: None),
    "FlakyBackend": lambda inner: FlakyBackend(inner, failures=0),
    "BitFlipBackend": lambda inner: BitFlipBackend(inner, lambda key: False),
    "ReadOnlyBackend": ReadOnlyBackend,
}


def test_calls_cover_the_contract() -> None:
    assert set(CALLS) == backend_methods() - BackendWrapper.NOT_FORWARDED
    assert {c.__name__ for c in _wrapper_classes()} | {"BackendWrapper"} == set(WRAPPERS)


@pytest.mark.parametrize("verb", sorted(CALLS))
@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=list(WRAPPERS))
def test_each_verb_reaches_inner_as_itself(
    wrap: Callable[[Backend], BackendWrapper], verb: str
) -> None:
    """Each verb reaches the inner backend as that same verb with the same arguments: in
    particular put_parts_if_absent stays piece by piece instead of being joined on the way."""
    inner = Recorder()
    MemoryBackend.put(inner, "k", b"value")
    wrapper = wrap(inner)
    args = CALLS[verb]
    if isinstance(wrapper, ReadOnlyBackend) and verb in WRITES:
        with pytest.raises(PermanentBackendError, match="read-only"):
            getattr(wrapper, verb)(*args)
        assert [c for c in inner.calls if c[0] != "describe"] == []
        return
    getattr(wrapper, verb)(*args)
    assert inner.calls == [(verb, args)]
    if verb == "put_parts_if_absent":
        assert inner.calls[0][1][1] is PARTS


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=list(WRAPPERS))
def test_iter_keys_pages_through_the_wrappers_list(
    wrap: Callable[[Backend], BackendWrapper],
) -> None:
    inner = Recorder()
    for i in range(1500):
        MemoryBackend.put(inner, f"k/{i:04d}", b"")
    wrapper = wrap(inner)
    assert len(list(wrapper.iter_keys("k/"))) == 1500
    assert [c[0] for c in inner.calls] == ["list", "list"]


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=list(WRAPPERS))
def test_wrapper_keeps_capabilities_and_unwraps(
    wrap: Callable[[Backend], BackendWrapper], tmp_path: Path
) -> None:
    store = DirectoryBackend(tmp_path, create=True)
    wrapper = wrap(store)
    assert wrapper.capabilities == store.capabilities and wrapper.capabilities.local
    assert wrapper.describe() == store.describe()
    assert wrapper.unwrap() is store and wrapper.inner is store


# -- find_backend ---------------------------------------------------------------------------


def test_find_backend_through_a_stack() -> None:
    memory = MemoryBackend()
    flaky = FlakyBackend(memory, failures=0)
    retrying = RetryingBackend(flaky)
    top = CountingBackend(retrying)
    found_memory: MemoryBackend | None = find_backend(top, MemoryBackend)
    assert found_memory is memory
    assert find_backend(top, FlakyBackend) is flaky
    assert find_backend(top, RetryingBackend) is retrying
    assert find_backend(top, CountingBackend) is top
    assert find_backend(top, BackendWrapper) is top  # the outermost match wins
    assert find_backend(top, ReadOnlyBackend) is None
    assert find_backend(top, DirectoryBackend) is None
    assert find_backend(retrying, CountingBackend) is None  # only inward, never outward
    assert find_backend(memory, MemoryBackend) is memory
    assert find_backend(memory, BackendWrapper) is None


def test_find_backend_directory_under_wrappers(tmp_path: Path) -> None:
    store = DirectoryBackend(tmp_path, create=True)
    top = ReadOnlyBackend(BackendWrapper(store))
    assert find_backend(top, DirectoryBackend) is store
    assert find_backend(top, MemoryBackend) is None


# -- what each wrapper does with put_parts_if_absent ----------------------------------------


def test_counting_counts_parts_bytes() -> None:
    backend = CountingBackend(MemoryBackend())
    wide = memoryview(bytes(8)).cast("I")  # 2 items, 8 bytes
    assert backend.put_parts_if_absent("p", [b"abc", memoryview(b"de"), wide]) is True
    assert backend.put_parts_if_absent("p", [b"xyz"]) is False
    assert backend.requests == {"put": 2}
    assert backend.bytes_sent == 3 + 2 + 8 + 3
    assert backend.get("p") == b"abcde" + bytes(8)
    assert backend.bytes_received == 13
    assert backend.total_requests == 3


def test_counting_counts_iter_keys_pages() -> None:
    backend = CountingBackend(MemoryBackend())
    for i in range(1001):
        backend.put(f"k/{i:04d}", b"")
    assert len(list(backend.iter_keys("k/"))) == 1001
    assert backend.requests["list"] == 2


def test_retry_retries_put_parts_if_absent() -> None:
    inner = Recorder()
    flaky = FlakyBackend(inner, 2, ["put_if_absent"])
    retries: list[str] = []
    backend = RetryingBackend(
        flaky, sleep=lambda s: None, on_retry=lambda op, n, exc, wait: retries.append(op)
    )
    assert backend.put_parts_if_absent("p", [b"a", memoryview(b"b")]) is True
    assert flaky.calls["put_if_absent"] == 3
    assert retries == ["put_if_absent", "put_if_absent"]
    assert [c[0] for c in inner.calls] == ["put_parts_if_absent"]
    assert inner.get("p") == b"ab"


def test_flaky_injects_put_parts_if_absent_failures() -> None:
    inner = MemoryBackend()
    flaky = FlakyBackend(inner, 1, ["put_if_absent"])
    with pytest.raises(TransientBackendError, match="put_if_absent 'p'"):
        flaky.put_parts_if_absent("p", [b"a"])
    assert inner.list() == []
    assert flaky.put_parts_if_absent("p", [b"a"]) is True
    landed = FlakyBackend(MemoryBackend(), 1, ["put_if_absent"], after=True)
    with pytest.raises(TransientBackendError):
        landed.put_parts_if_absent("q", [b"b", memoryview(b"c")])
    assert landed.get("q") == b"bc"
    untouched = FlakyBackend(MemoryBackend(), 1, ["put"])
    assert untouched.put_parts_if_absent("r", [b"x"]) is True


def test_read_only_refuses_put_parts_if_absent() -> None:
    inner = MemoryBackend()
    backend = ReadOnlyBackend(inner)
    with pytest.raises(PermanentBackendError, match="read-only: cannot put_if_absent 'p'"):
        backend.put_parts_if_absent("p", [b"a"])
    assert inner.list() == []
