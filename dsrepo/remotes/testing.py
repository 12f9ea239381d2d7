"""The backend conformance kit: one pytest class that checks the :class:`Backend` contract.

Subclass it in a test module and say how to build a fresh, empty backend::

    class TestMyBackend(BackendConformance):
        def make_backend(self, tmp_path: Path) -> Backend:
            return MyBackend(tmp_path / "store", create=True)

Every test gets its own backend from the ``backend`` fixture, closed afterwards. A backend that
needs other fixtures can grab them in an autouse fixture of the subclass (autouse fixtures run
first) and keep them on ``self`` for ``make_backend``. Race tests are skipped when
``capabilities.conditional_writes`` is false.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dsrepo.remotes.base import Backend, KeyInfo
from dsrepo.remotes.errors import InvalidKey, KeyConflict, KeyNotFound

BAD_KEYS = ["", "/abs", "a/../b", "../x", "a//b", "a/./b", "a\\b", "a\0b", "x/"]
RACERS = 8


def _race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(0..n-1)`` on ``n`` threads released together; return results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


class BackendConformance:
    """Contract tests for a :class:`Backend`; subclasses implement :meth:`make_backend`."""

    reports_mtime = True
    """Whether ``stat`` and ``list`` report ``KeyInfo.mtime``. A backend that cannot (gc then
    never ages its packs: nothing unreachable is removed before ``--prune=now``) says False."""

    def make_backend(self, tmp_path: Path) -> Backend:
        """A new, empty backend. ``tmp_path`` is this test's private directory."""
        raise NotImplementedError

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        b = self.make_backend(tmp_path)
        try:
            yield b
        finally:
            b.close()

    @staticmethod
    def _put_many(backend: Backend, keys: list[str]) -> None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda k: backend.put(k, k.encode()), keys))

    def _need_conditional_writes(self, backend: Backend) -> None:
        if not backend.capabilities.conditional_writes:
            pytest.skip(f"{backend.describe()} does not promise atomic conditional writes")

    # -- values -----------------------------------------------------------------------------

    def test_round_trip(self, backend: Backend) -> None:
        big = bytes(range(256)) * (5 * 1024 * 1024 // 256)
        for key, value in [("a", b"hello"), ("dir/empty", b""), ("dir/sub/big", big)]:
            backend.put(key, value)
            assert backend.get(key) == value
            assert backend.get_mapped(key)[:] == value  # mapped or read: the same bytes
            assert backend.stat(key) == KeyInfo(key, len(value))

    def test_unicode_and_odd_keys(self, backend: Backend) -> None:
        for key in ["snowman-\u2603", "with space", "x.y-z_w", "deep/a/b/c/d/e"]:
            backend.put(key, key.encode())
            assert backend.get(key) == key.encode()

    def test_ranges(self, backend: Backend) -> None:
        backend.put("r", b"0123456789")
        assert backend.get("r", 3) == b"3456789"
        assert backend.get("r", 3, 4) == b"3456"
        assert backend.get("r", 0, 10) == b"0123456789"
        assert backend.get("r", 8, 100) == b"89"
        assert backend.get("r", 9, 1) == b"9"
        assert backend.get("r", 10) == b""
        assert backend.get("r", 25, 5) == b""
        assert backend.get("r", 2, 0) == b""
        backend.put("empty", b"")
        assert backend.get("empty", 0, 5) == b""
        assert backend.get("empty", 3) == b""

    def test_missing_key(self, backend: Backend) -> None:
        with pytest.raises(KeyNotFound):
            backend.get("nope")
        with pytest.raises(KeyNotFound):
            backend.get("nope", 2, 3)
        with pytest.raises(KeyNotFound):
            backend.stat("nope")
        with pytest.raises(KeyNotFound):
            backend.get("no/such/dir/key")
        with pytest.raises(KeyNotFound):
            backend.get_mapped("nope")

    def test_delete(self, backend: Backend) -> None:
        backend.put("d/k", b"v")
        backend.delete("d/k")
        with pytest.raises(KeyNotFound):
            backend.get("d/k")
        with pytest.raises(KeyNotFound):
            backend.stat("d/k")
        backend.delete("d/k")
        backend.delete("never/existed")
        assert backend.list("d/") == []

    def test_put_replaces(self, backend: Backend) -> None:
        backend.put("k", b"first, longer value")
        backend.put("k", b"second")
        assert backend.get("k") == b"second"
        assert backend.stat("k").size == 6

    def test_put_is_atomic_for_readers(self, backend: Backend) -> None:
        old, new = b"a" * 200_000, b"b" * 100_000
        backend.put("k", old)
        stop = threading.Event()
        seen: list[bytes] = []

        def read() -> None:
            while not stop.is_set():
                seen.append(backend.get("k"))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(20):
                backend.put("k", new if i % 2 == 0 else old)
        finally:
            stop.set()
            reader.join()
        assert seen and all(v in (old, new) for v in seen)

    def test_put_if_absent(self, backend: Backend) -> None:
        assert backend.put_if_absent("p/k", b"first") is True
        assert backend.put_if_absent("p/k", b"second") is False
        assert backend.put_if_absent("p/k", b"first") is False
        assert backend.get("p/k") == b"first"
        assert backend.put_if_absent("p/empty", b"") is True
        assert backend.get("p/empty") == b""

    # -- put_parts_if_absent ----------------------------------------------------------------

    def test_put_parts_if_absent_creates(self, backend: Backend) -> None:
        data = bytes(range(256)) * 400
        mutable = bytearray(data[60_000:])
        parts: list[bytes | memoryview] = [
            data[:100],
            memoryview(data)[100:50_000],
            b"",
            memoryview(data)[50_000:60_000],
            memoryview(mutable),
        ]
        assert backend.put_parts_if_absent("parts/k", parts) is True
        mutable[:] = bytes(len(mutable))  # the value was taken when the call returned
        assert backend.get("parts/k") == data
        assert backend.stat("parts/k") == KeyInfo("parts/k", len(data))
        assert backend.get("parts/k", 99, 3) == data[99:102]

    def test_put_parts_if_absent_many_parts(self, backend: Backend) -> None:
        pieces = [i.to_bytes(2, "big") * (i % 7) for i in range(3000)]  # past any writev limit
        parts = [p if i % 2 else memoryview(p) for i, p in enumerate(pieces)]
        assert backend.put_parts_if_absent("parts/many", parts) is True
        assert backend.get("parts/many") == b"".join(pieces)

    def test_put_parts_if_absent_keeps_existing(self, backend: Backend) -> None:
        backend.put("parts/k", b"old")
        assert backend.put_parts_if_absent("parts/k", [b"new", memoryview(b"er")]) is False
        assert backend.get("parts/k") == b"old"
        assert backend.put_parts_if_absent("parts/j", [b"fir", memoryview(b"st")]) is True
        assert backend.put_parts_if_absent("parts/j", [b"second"]) is False
        assert backend.put_parts_if_absent("parts/j", [b"fir", b"st"]) is False
        assert backend.put_if_absent("parts/j", b"third") is False
        assert backend.put_parts_if_absent("parts/empty", []) is True
        assert backend.put_parts_if_absent("parts/empty", [b"now full"]) is False
        assert backend.get("parts/j") == b"first"
        assert backend.get("parts/empty") == b""

    def test_put_parts_if_absent_empty(self, backend: Backend) -> None:
        assert backend.put_parts_if_absent("parts/none", []) is True
        assert backend.get("parts/none") == b""
        assert backend.stat("parts/none") == KeyInfo("parts/none", 0)
        assert backend.put_parts_if_absent("parts/none", []) is False
        assert backend.put_parts_if_absent("parts/blank", [b"", memoryview(b"")]) is True
        assert backend.get("parts/blank") == b""
        assert [i.key for i in backend.list("parts/")] == ["parts/blank", "parts/none"]

    # -- listing ----------------------------------------------------------------------------

    def test_list_prefix_and_order(self, backend: Backend) -> None:
        keys = ["b/2", "b/10", "b/1", "a", "b-x", "b.y", "ba", "c/d/e", "b/sub/z", "b0"]
        for k in keys:
            backend.put(k, k.encode() * 2)
        listed = backend.list()
        assert [i.key for i in listed] == sorted(keys)
        assert all(i.size == 2 * len(i.key) for i in listed)
        assert [i.key for i in backend.list("b/")] == ["b/1", "b/10", "b/2", "b/sub/z"]
        assert [i.key for i in backend.list("b")] == sorted(k for k in keys if k.startswith("b"))
        assert [i.key for i in backend.list("b/1")] == ["b/1", "b/10"]
        assert [i.key for i in backend.list("c/d/")] == ["c/d/e"]
        assert [i.key for i in backend.list("b/", start_after="b/10")] == ["b/2", "b/sub/z"]
        assert [i.key for i in backend.list("b/", start_after="b/0")] == [
            "b/1",
            "b/10",
            "b/2",
            "b/sub/z",
        ]
        assert [i.key for i in backend.list("b/", start_after="a")] == [
            "b/1",
            "b/10",
            "b/2",
            "b/sub/z",
        ]
        assert backend.list("b/", start_after="b/sub/z") == []
        assert backend.list("b/", start_after="c") == []
        assert [i.key for i in backend.list(start_after="b/2")] == ["b/sub/z", "b0", "ba", "c/d/e"]
        assert [i.key for i in backend.list("b/", limit=2)] == ["b/1", "b/10"]

    def test_list_nothing(self, backend: Backend) -> None:
        assert backend.list() == []
        assert backend.list("zzz/") == []
        assert list(backend.iter_keys("zzz")) == []
        backend.put("a/b", b"")
        assert backend.list("zzz/") == []
        assert backend.list("a/b/") == []
        assert backend.list("a/c") == []

    def test_pagination(self, backend: Backend) -> None:
        keys = [f"page/{i:05d}" for i in range(1005)]
        self._put_many(backend, [*keys, "pagd", "pagf/x", "pag"])
        first = backend.list("page/")
        assert [i.key for i in first] == keys[:1000]
        got: list[str] = []
        after: str | None = None
        while True:
            page = backend.list("page/", start_after=after, limit=400)
            assert len(page) <= 400
            got.extend(i.key for i in page)
            if len(page) < 400:
                break
            after = page[-1].key
        assert got == keys
        assert [i.key for i in backend.iter_keys("page/")] == keys
        assert [i.key for i in backend.list("pag", start_after=keys[-1])] == ["pagf/x"]
        assert [i.key for i in backend.list("pag", limit=2)] == ["pag", "pagd"]

    # -- compare-and-swap -------------------------------------------------------------------

    def test_cas_create_update_delete(self, backend: Backend) -> None:
        backend.compare_and_swap("refs/x", None, b"v1")
        assert backend.get("refs/x") == b"v1"
        backend.compare_and_swap("refs/x", b"v1", b"v2")
        assert backend.get("refs/x") == b"v2"
        backend.compare_and_swap("refs/x", b"v2", None)
        with pytest.raises(KeyNotFound):
            backend.get("refs/x")
        backend.compare_and_swap("refs/x", None, None)  # absent stays absent

    def test_cas_conflicts(self, backend: Backend) -> None:
        backend.put("refs/y", b"current")
        with pytest.raises(KeyConflict):
            backend.compare_and_swap("refs/y", b"stale", b"new")
        assert backend.get("refs/y") == b"current"
        with pytest.raises(KeyConflict):
            backend.compare_and_swap("refs/y", None, b"new")
        assert backend.get("refs/y") == b"current"
        with pytest.raises(KeyConflict):
            backend.compare_and_swap("refs/y", b"stale", None)
        assert backend.get("refs/y") == b"current"
        with pytest.raises(KeyConflict):
            backend.compare_and_swap("refs/y", None, None)
        with pytest.raises(KeyConflict):
            backend.compare_and_swap("refs/missing", b"anything", b"new")
        with pytest.raises(KeyNotFound):
            backend.get("refs/missing")

    def test_race_cas_create(self, backend: Backend) -> None:
        self._need_conditional_writes(backend)
        results = _race(
            RACERS, lambda i: backend.compare_and_swap("refs/race", None, f"writer-{i}".encode())
        )
        self._check_one_winner(results)
        winner = results.index(None)
        assert backend.get("refs/race") == f"writer-{winner}".encode()

    def test_race_cas_update(self, backend: Backend) -> None:
        self._need_conditional_writes(backend)
        backend.put("refs/race", b"v0")
        results = _race(
            RACERS, lambda i: backend.compare_and_swap("refs/race", b"v0", f"v-{i}".encode())
        )
        self._check_one_winner(results)
        assert backend.get("refs/race") == f"v-{results.index(None)}".encode()

    def test_race_put_if_absent(self, backend: Backend) -> None:
        self._need_conditional_writes(backend)
        results = _race(RACERS, lambda i: backend.put_if_absent("obj", f"w-{i}".encode()))
        assert sorted(results, key=str) == [False] * (RACERS - 1) + [True], results
        assert backend.get("obj") == f"w-{results.index(True)}".encode()

    def test_race_put_parts_if_absent(self, backend: Backend) -> None:
        self._need_conditional_writes(backend)
        results = _race(
            RACERS,
            lambda i: backend.put_parts_if_absent(
                "obj", [b"w-", memoryview(str(i).encode()), b"-" * 100_000]
            ),
        )
        assert sorted(results, key=str) == [False] * (RACERS - 1) + [True], results
        winner = results.index(True)
        assert backend.get("obj") == f"w-{winner}".encode() + b"-" * 100_000

    @staticmethod
    def _check_one_winner(results: list[Any]) -> None:
        others = [r for r in results if r is not None]
        assert len(others) == RACERS - 1, results
        assert all(isinstance(r, KeyConflict) for r in others), results

    # -- keys -------------------------------------------------------------------------------

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_invalid_keys(self, backend: Backend, key: str) -> None:
        with pytest.raises(InvalidKey):
            backend.put(key, b"x")
        with pytest.raises(InvalidKey):
            backend.get(key)
        with pytest.raises(InvalidKey):
            backend.stat(key)
        with pytest.raises(InvalidKey):
            backend.put_if_absent(key, b"x")
        with pytest.raises(InvalidKey):
            backend.put_parts_if_absent(key, [b"x", memoryview(b"y")])
        with pytest.raises(InvalidKey):
            backend.delete(key)
        with pytest.raises(InvalidKey):
            backend.compare_and_swap(key, None, b"x")

    @pytest.mark.parametrize("prefix", ["/abs", "a/../b", "../", "a//", "a\\b"])
    def test_invalid_prefixes(self, backend: Backend, prefix: str) -> None:
        with pytest.raises(InvalidKey):
            backend.list(prefix)

    # -- modification times ----------------------------------------------------------------

    def _need_mtime(self) -> None:
        if not self.reports_mtime:
            pytest.skip("this backend does not report modification times")

    def test_mtime_reported(self, backend: Backend) -> None:
        """``stat`` and ``list`` report when the backend wrote a key, by its own clock: compared
        with ours only loosely (a day), since the backend's clock is the one that counts."""
        self._need_mtime()
        backend.put("m/a", b"value")
        info = backend.stat("m/a")
        assert info.mtime is not None
        assert abs(info.mtime - time.time()) < 86400
        (listed,) = backend.list("m/")
        assert listed.mtime is not None
        assert abs(listed.mtime - info.mtime) < 2  # listings may round (S3: whole seconds)
        assert backend.put_if_absent("m/b", b"new") is True
        backend.compare_and_swap("m/c", None, b"ref")
        assert backend.put_parts_if_absent("m/d", [b"pa", b"rts"]) is True
        for key in ("m/b", "m/c", "m/d"):
            stamp = backend.stat(key).mtime
            assert stamp is not None and abs(stamp - info.mtime) < 86400
        assert all(i.mtime is not None for i in backend.list("m/"))

    def test_mtime_follows_writes(self, backend: Backend) -> None:
        """A later write has an mtime no earlier than an earlier one's (on one backend)."""
        self._need_mtime()
        backend.put("m/first", b"1")
        backend.put("m/second", b"2")
        first, second = backend.stat("m/first").mtime, backend.stat("m/second").mtime
        assert first is not None and second is not None and second >= first
        backend.put("m/first", b"rewritten")
        again = backend.stat("m/first").mtime
        assert again is not None and again >= second
        assert backend.put_if_absent("m/first", b"not written") is False
        assert backend.stat("m/first").mtime == again  # a refused write changes nothing

    def test_mtime_not_compared(self, backend: Backend) -> None:
        """KeyInfo equality ignores mtime (a key and its size identify a listing entry)."""
        backend.put("m/eq", b"abc")
        assert backend.stat("m/eq") == KeyInfo("m/eq", 3)

    def test_describe_and_close(self, backend: Backend) -> None:
        assert isinstance(backend.describe(), str) and backend.describe()
        assert isinstance(backend.capabilities.conditional_writes, bool)
        backend.close()
        backend.close()  # idempotent; the fixture closes it once more
