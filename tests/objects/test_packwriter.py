"""The write buffer (dsrepo.objects.packwriter): objects readable while buffered, sealed and
flushed; the durability order pack → index → location index; abort; concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import pytest

from dsrepo.objects import layout, packwriter
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import ObjectType, Signature, Tag, encode, hash_object
from dsrepo.objects.pack import IndexEntry, PackClass, decode_index
from dsrepo.objects.packwriter import PackWriter
from dsrepo.objects.store import ObjectStore, WriteStats
from dsrepo.remotes.memory import MemoryBackend

BIG = 1 << 30
"""A pack target no test reaches: everything stays in the open packs."""


class RecordingBackend(MemoryBackend):
    """Appends ``("pack" | "idx", name)`` to ``log`` once a pack or index write is complete.
    ``gate``, when set up, holds every pack write until it opens; ``in_flight`` / ``max_in_flight``
    count pack writes under way."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self.log = log
        self.gate: threading.Event | None = None
        self.fail: Exception | None = None
        """If set, every pack write raises it."""
        self.rendezvous: threading.Barrier | None = None
        """If set, the first two pack writes wait here for each other."""
        self.in_flight = 0
        self.max_in_flight = 0
        self._count_lock = threading.Lock()
        self._pack_writes = 0

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        with self._count_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._pack_writes += 1
            meet = self.rendezvous is not None and self._pack_writes <= 2
        try:
            if self.fail is not None:
                raise self.fail
            if self.gate is not None:
                assert self.gate.wait(10), "the gate never opened"
            if meet:
                assert self.rendezvous is not None
                self.rendezvous.wait()
            created = MemoryBackend.put_if_absent(self, key, b"".join(parts))
        finally:
            with self._count_lock:
                self.in_flight -= 1
        self._record(key)
        return created

    def put_if_absent(self, key: str, data: bytes) -> bool:
        created = super().put_if_absent(key, data)
        self._record(key)
        return created

    def _record(self, key: str) -> None:
        pack = layout.pack_name_from_pack_key(key)
        index = layout.pack_name_from_index_key(key)
        if pack is not None:
            self.log.append(("pack", pack))
        elif index is not None:
            self.log.append(("idx", index))


class RecordingIndex(LocationIndex):
    """Appends ``("locindex", name)`` to ``log`` once a pack is recorded."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self.log = log

    def add_pack(self, name: str, pack_class: PackClass, entries: Iterable[IndexEntry]) -> None:
        super().add_pack(name, pack_class, entries)
        self.log.append(("locindex", name))


def chunk(i: int, size: int = 600) -> tuple[ObjectId, bytes]:
    data = (b"chunk %d " % i) * (size // 8)
    return hash_data(data), data


def add_chunk(w: PackWriter, i: int) -> tuple[ObjectId, bytes]:
    oid, data = chunk(i)
    w.add(oid, ObjectType.CHUNK, data, len(data), 0)
    return oid, data


def add_tag(w: PackWriter) -> ObjectId:
    tag = Tag(
        target=hash_data(b"x"),
        target_type=ObjectType.CHUNK,
        name="v1",
        tagger=Signature("Ada", "ada@example.com", 1_800_000_000, 60),
        message="m",
    )
    raw = encode(tag)
    oid = hash_object(ObjectType.TAG, raw)
    w.add(oid, ObjectType.TAG, raw, len(raw), 0)
    return oid


def writer(
    pack_target: int = BIG, writers: int = 1
) -> tuple[PackWriter, RecordingBackend, RecordingIndex, list[tuple[str, str]]]:
    log: list[tuple[str, str]] = []
    backend, index = RecordingBackend(log), RecordingIndex(log)
    return PackWriter(backend, index, pack_target=pack_target, writers=writers), backend, index, log


def test_objects_are_readable_while_buffered_and_after_flush() -> None:
    w, backend, index, log = writer()
    oid, data = add_chunk(w, 1)
    assert w.contains(oid) and not index.contains(oid)
    found = w.pending(oid)
    assert found is not None and found[1] == data
    entry = w.entry(oid)
    assert entry is not None and (entry.type, entry.raw_size) == (ObjectType.CHUNK, len(data))
    assert w.matching(oid.hex()[:8]) == {oid}
    assert w.not_buffered([oid, hash_data(b"other")]) == {hash_data(b"other")}
    assert log == []  # nothing written before a flush

    names = w.flush()
    assert len(names) == 1 and w.stats.packs_written == 1
    assert not w.contains(oid) and w.pending(oid) is None and w.matching(oid.hex()) == set()
    loc = index.lookup(oid)
    assert loc is not None and loc.pack == names[0]
    assert backend.get(layout.pack_key(loc.pack), loc.offset, loc.stored_size) == data
    w.close()


def test_a_sealed_pack_is_readable_until_its_writer_is_done() -> None:
    w, backend, index, _ = writer(pack_target=1)  # every object seals its pack
    backend.gate = threading.Event()
    oid, data = add_chunk(w, 1)  # sealed at once; its writer waits at the gate
    found = w.pending(oid)
    assert found is not None and found[1] == data
    assert w.contains(oid) and not index.contains(oid)
    backend.gate.set()
    assert len(w.flush()) == 1
    assert index.contains(oid) and not w.contains(oid)
    w.close()


def test_flush_writes_pack_then_index_then_location_index() -> None:
    w, _, _, log = writer()
    add_chunk(w, 1)
    add_chunk(w, 2)
    add_tag(w)  # a second pack class: a second pack
    names = w.flush()
    assert len(names) == 2
    for name in names:
        steps = [step for step, n in log if n == name]
        assert steps == ["pack", "idx", "locindex"], steps
    w.close()


def test_an_adopted_pack_is_written_in_the_same_order() -> None:
    src, _, _, _ = writer()
    oid, data = add_chunk(src, 1)
    (name,) = src.flush()
    index_bytes = src.backend.get(layout.index_key(name))
    pack_class, entries = decode_index(index_bytes, name)
    pack = src.backend.get(layout.pack_key(name))

    w, backend, index, log = writer()
    backend.gate = threading.Event()  # hold the writer, so "before it is written" is certain
    w.add_pack(name, pack_class, entries, pack, index_bytes)
    found = w.pending(oid)
    assert found is not None and found[1] == data  # readable before it is written
    backend.gate.set()
    assert w.flush() == [name]
    assert log == [("pack", name), ("idx", name), ("locindex", name)]
    assert backend.get(layout.pack_key(name)) == pack and index.contains(oid)
    src.close()
    w.close()


def test_abort_drops_unflushed_objects_but_sealed_packs_land() -> None:
    w, backend, index, _ = writer(pack_target=1)
    sealed, _ = add_chunk(w, 1)  # sealed at once, handed to the writer
    w.pack_target = BIG
    dropped, _ = add_chunk(w, 2)  # stays in the open pack
    w.abort()
    assert not w.contains(dropped) and not index.contains(dropped)
    loc = index.lookup(sealed)
    assert loc is not None
    assert w.flush() == [loc.pack]  # written since the last flush; nothing else to write
    assert not index.contains(dropped)
    packs = [k.key for k in backend.iter_keys(layout.PACKS_PREFIX)]
    assert len(packs) == 2  # the sealed pack and its index, nothing of the dropped object
    w.close()


def test_two_writers_write_packs_concurrently_and_all_land() -> None:
    w, backend, index, log = writer(pack_target=1, writers=2)
    backend.rendezvous = threading.Barrier(2, timeout=10)  # the first two packs meet mid-write
    oids = [add_chunk(w, i)[0] for i in range(8)]  # one pack each
    names = w.flush()
    assert backend.max_in_flight == 2
    assert len(names) == len(set(names)) == 8 and w.stats.packs_written == 8
    assert all(index.contains(o) for o in oids)
    assert set(index.pack_names()) == set(names)
    for name in names:
        assert [step for step, n in log if n == name] == ["pack", "idx", "locindex"]
    w.close()


def test_a_failed_pack_write_surfaces_on_flush() -> None:
    w, backend, index, log = writer()
    backend.fail = OSError("disk full")
    oid, _ = add_chunk(w, 1)
    with pytest.raises(OSError, match="disk full"):
        w.flush()
    assert log == [] and not index.contains(oid)  # no index for a pack that was not written
    assert not w.contains(oid)  # the failed pack left the buffer
    w.close()


def test_the_store_composes_the_writer() -> None:
    store = ObjectStore(MemoryBackend(), LocationIndex(), RepoFormat(ChunkerParams()))
    assert isinstance(store.stats, WriteStats)
    store.pack_target = 1234
    assert store.writer.pack_target == 1234
    ref = store.write_bytes(b"hello")
    assert store.has(ref.content_id) and store.read_all(ref) == b"hello"
    assert store.locate(ref.content_id) is None  # buffered, not yet indexed
    store.flush()
    assert store.locate(ref.content_id) is not None and store.read_all(ref) == b"hello"
    assert store.stats.objects_written == 1 and store.stats.packs_written == 1
    store.close()


def test_packs_waiting_for_many_writers_are_bounded_by_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eight writers may each have a pack under way, but finished packs wait in memory only up
    to ``MAX_SEALED_BYTES`` (one pack always may): the next add waits for a writer."""
    monkeypatch.setattr(packwriter, "MAX_SEALED_BYTES", 1000)  # one ~650-byte pack fits
    w, backend, _, _ = writer(pack_target=1, writers=8)
    backend.gate = threading.Event()
    add_chunk(w, 1)  # one pack waits at the gate: allowed
    adder = threading.Thread(target=add_chunk, args=(w, 2))
    adder.start()
    adder.join(0.5)
    assert adder.is_alive()  # two waiting packs would hold more than the bound
    backend.gate.set()
    adder.join(10)
    assert not adder.is_alive()
    assert len(w.flush()) == 2
    w.close()
