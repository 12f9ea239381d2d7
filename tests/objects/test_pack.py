"""Packs and pack indexes: PackBuilder, encode_index, decode_index, iter_pack_records."""

from __future__ import annotations

import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsrepo.objects import layout, locindex
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.errors import CorruptObject, FormatError
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.locindex import Location, LocationIndex
from dsrepo.objects.model import ObjectType
from dsrepo.objects.pack import (
    FLAG_ZSTD,
    INDEX_MAGIC,
    MAX_OBJECT_SIZE,
    PACK_HEADER_SIZE,
    PACK_MAGIC,
    PACK_VERSION,
    RECORD_HEADER_SIZE,
    IndexEntry,
    PackBuilder,
    PackClass,
    decode_index,
    decode_index_table,
    encode_index,
    iter_pack_records,
)
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.memory import MemoryBackend

INDEX_HEADER_SIZE = 56
INDEX_ENTRY_SIZE = 52


def build(chunks: list[bytes], pack_class: PackClass = PackClass.DATA) -> PackBuilder:
    b = PackBuilder(pack_class)
    for c in chunks:
        b.add(hash_data(c), ObjectType.CHUNK, c, len(c), 0)
    return b


def reindex(body: bytes) -> bytes:
    """An index body with a freshly computed (valid) checksum."""
    return body + hash_data(body)


def reseal(body: bytes) -> tuple[str, bytes]:
    """An index body with its header digest and checksum recomputed: (name, index)."""
    digest = hash_data(body[INDEX_HEADER_SIZE:])
    return digest.hex(), reindex(body[:24] + digest + body[INDEX_HEADER_SIZE:])


# ---------------------------------------------------------------- round trips


def test_struct_sizes() -> None:
    assert PACK_HEADER_SIZE == 16
    assert RECORD_HEADER_SIZE == 44
    assert MAX_OBJECT_SIZE == 2**32 - 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.binary(max_size=300), max_size=20),
    st.sampled_from(PackClass),
    st.lists(st.sampled_from([0, FLAG_ZSTD]), min_size=20, max_size=20),
)
def test_round_trip(chunks: list[bytes], pack_class: PackClass, flags: list[int]) -> None:
    builder = PackBuilder(pack_class)
    added: dict[ObjectId, tuple[bytes, int]] = {}
    for c, f in zip(chunks, flags, strict=False):
        oid = hash_data(c)
        raw_size = len(c) * 3 if f else len(c)  # the index carries raw size as given
        builder.add(oid, ObjectType.CHUNK, c, raw_size, f)
        added.setdefault(oid, (c, f))
    assert len(builder) == len(added)
    name, pack, index, entries = builder.finish()

    assert name == hash_data(index[INDEX_HEADER_SIZE:-32]).hex()  # BLAKE3 of the entry table
    assert len(pack) == builder.size
    assert len(index) == INDEX_HEADER_SIZE + INDEX_ENTRY_SIZE * len(added) + 32
    assert [e.id for e in entries] == sorted(added)

    got_class, decoded = decode_index(index, name)
    assert got_class == pack_class
    assert decoded == entries

    records = list(iter_pack_records(pack, name))
    assert [r.id for r, _ in records] == list(added)  # insertion order, duplicates dropped
    by_id = {e.id: e for e in decoded}
    for rec, payload in records:
        c, f = added[rec.id]
        assert payload == c == builder.stored_bytes(rec)
        assert rec == by_id[rec.id]
        assert rec.flags == f
        assert pack[rec.offset : rec.offset + rec.stored_size] == c


def test_empty_pack() -> None:
    name, pack, index, entries = PackBuilder(PackClass.META).finish()
    assert entries == []
    assert name == hash_data(b"").hex()  # the same for both classes (the store never writes one)
    assert pack == PACK_MAGIC + struct.pack("<HB", PACK_VERSION, 1) + bytes(5)
    assert decode_index(index, name) == (PackClass.META, [])
    assert list(iter_pack_records(pack, name)) == []


def test_duplicate_add_is_ignored() -> None:
    b = build([b"a", b"a", b"b"])
    assert len(b) == 2
    assert b.size == PACK_HEADER_SIZE + 2 * (RECORD_HEADER_SIZE + 1)


def test_every_type_and_flag_survives() -> None:
    b = PackBuilder(PackClass.META)
    for i, t in enumerate(ObjectType):
        b.add(ObjectId(bytes([i]) * 32), t, b"x" * i, 1000 + i, i % 2)
    name, _, index, entries = b.finish()
    _, decoded = decode_index(index, name)
    assert [(e.type, e.flags, e.raw_size) for e in decoded] == [
        (t, i % 2, 1000 + i) for i, t in enumerate(ObjectType)
    ]
    assert decoded == entries


def test_pack_class_for_type() -> None:
    assert PackClass.for_type(ObjectType.CHUNK) == PackClass.DATA
    for t in (ObjectType.MANIFEST, ObjectType.TREE, ObjectType.COMMIT, ObjectType.TAG):
        assert PackClass.for_type(t) == PackClass.META


def test_objects_over_4_gib_are_refused() -> None:
    b = PackBuilder(PackClass.DATA)
    with pytest.raises(FormatError, match="larger than 4 GiB"):
        b.add(ObjectId(bytes(32)), ObjectType.CHUNK, b"x", MAX_OBJECT_SIZE + 1, FLAG_ZSTD)
    b.add(ObjectId(bytes(32)), ObjectType.CHUNK, b"x", MAX_OBJECT_SIZE, FLAG_ZSTD)
    name, _, index, _ = b.finish()
    assert decode_index(index, name)[1][0].raw_size == MAX_OBJECT_SIZE


# ---------------------------------------------------------------- damaged indexes


def good() -> tuple[str, bytes, bytes]:
    name, pack, index, _ = build([b"one", b"two", b"three"]).finish()
    return name, pack, index


def test_an_index_table_reads_as_the_decoded_entries() -> None:
    """A collection keeps pack indexes packed: the table must read exactly as decode_index."""
    name, _, index = good()
    pack_class, entries = decode_index(index, name)
    cls, table = decode_index_table(index, name)
    assert cls == pack_class and list(table) == entries and len(table) == 3
    assert table[0] == entries[0] and table[-1] == entries[-1] and table[1:] == entries[1:]
    assert list(table.ids()) == sorted(e.id for e in entries)
    with pytest.raises(IndexError):
        table[3]


def test_index_checksum_mismatch() -> None:
    name, _, index = good()
    for pos in (0, 20, INDEX_HEADER_SIZE + 5, INDEX_HEADER_SIZE + 40, len(index) - 1):
        bad = bytearray(index)
        bad[pos] ^= 0x01
        with pytest.raises(CorruptObject, match=f"^index of pack {name} fails its checksum$"):
            decode_index(bytes(bad), name)


def test_truncated_index() -> None:
    name, _, index = good()
    with pytest.raises(CorruptObject, match="fails its checksum"):
        decode_index(index[:-1], name)
    for n in (0, 10, INDEX_HEADER_SIZE + 31):
        with pytest.raises(CorruptObject, match=f"^index of pack {name} is truncated$"):
            decode_index(index[:n], name)


def test_index_of_another_pack() -> None:
    name, _, index = good()
    other, _, _, _ = build([b"other"]).finish()
    with pytest.raises(CorruptObject, match=f"describes another pack \\({name[:12]}\\)"):
        decode_index(index, other)


def test_index_with_wrong_length() -> None:
    name, _, index = good()
    body = bytearray(index[:-32])
    body[16:24] = struct.pack("<Q", 4)  # claims 4 entries, holds 3
    with pytest.raises(CorruptObject, match="has a wrong length"):
        decode_index(reindex(bytes(body)), name)
    body = bytearray(index[:-32])
    with pytest.raises(CorruptObject, match="has a wrong length"):
        decode_index(reindex(bytes(body[:-1])), name)


def test_index_whose_digest_does_not_match_its_entries() -> None:
    """A well-formed index (valid checksum) whose header digest is not BLAKE3 of its table."""
    name, _, index = good()
    body = bytearray(index[:-32])
    body[INDEX_HEADER_SIZE + 32] ^= 0x01  # move one payload offset, keep the header digest
    with pytest.raises(CorruptObject, match=f"describes another pack \\({name[:12]}\\)"):
        decode_index(reindex(bytes(body)), name)
    new_name, resealed = reseal(bytes(body))
    assert new_name != name
    assert (
        decode_index(resealed, new_name)[1][0].offset == decode_index(index, name)[1][0].offset ^ 1
    )


def test_unsorted_or_duplicated_index_entries() -> None:
    name, _, _, entries = build([b"one", b"two", b"three"]).finish()
    for bad in ([entries[1], entries[0], entries[2]], [entries[0], entries[0], entries[1]]):
        bad_name, bad_index = encode_index(PackClass.DATA, bad)  # encode_index does not sort
        with pytest.raises(CorruptObject, match="entries not sorted or duplicated"):
            decode_index(bad_index, bad_name)
    # the same entries in order are accepted, under the builder's name
    good_name, good_index = encode_index(PackClass.DATA, entries)
    assert good_name == name
    assert decode_index(good_index, name)[1] == entries


def test_unknown_magic_version_class_or_type() -> None:
    _, _, index = good()
    body = index[:-32]
    cases = {
        "unknown magic or version": b"DSRIDX\0\1" + body[8:],
        "unknown magic or version ": body[:8] + struct.pack("<H", 2) + body[10:],
        "unknown pack class 2": body[:10] + b"\x02" + body[11:],
        "unknown object type 9": body[: INDEX_HEADER_SIZE + 48]
        + b"\x09"
        + body[INDEX_HEADER_SIZE + 49 :],
    }
    for why, bad in cases.items():
        bad_name, bad_index = reseal(bad)  # a valid digest too: only the tested field is wrong
        with pytest.raises(FormatError, match=why.strip()):
            decode_index(bad_index, bad_name)
    assert body[:8] == INDEX_MAGIC


# ---------------------------------------------------------------- damaged packs


def test_truncated_pack() -> None:
    name, pack, _ = good()
    for n in range(PACK_HEADER_SIZE):
        with pytest.raises(CorruptObject, match=f"^pack {name} is truncated$"):
            list(iter_pack_records(pack[:n], name))
    first_record_end = PACK_HEADER_SIZE + RECORD_HEADER_SIZE + 3
    for n in range(PACK_HEADER_SIZE + 1, len(pack)):
        if n == first_record_end or n == first_record_end + RECORD_HEADER_SIZE + 3:
            assert len(list(iter_pack_records(pack[:n], name))) >= 1  # a record boundary
            continue
        with pytest.raises(CorruptObject, match=f"^pack {name}: truncated record at offset "):
            list(iter_pack_records(pack[:n], name))


def test_pack_with_unknown_magic_or_type() -> None:
    name, pack, _ = good()
    with pytest.raises(FormatError, match="unknown magic or version"):
        list(iter_pack_records(b"DSRPACK\x01" + pack[8:], name))
    with pytest.raises(FormatError, match="unknown magic or version"):
        list(iter_pack_records(pack[:8] + b"\x02\x00" + pack[10:], name))
    type_at = PACK_HEADER_SIZE + 32
    bad = pack[:type_at] + b"\x07" + pack[type_at + 1 :]
    with pytest.raises(CorruptObject, match=f"unknown object type at offset {type_at + 12}"):
        list(iter_pack_records(bad, name))


def test_iter_pack_records_checks_framing_not_hashes() -> None:
    """A flipped payload byte still frames; readers catch it by re-hashing (the store does)."""
    name, pack, _ = good()
    bad = bytearray(pack)
    bad[PACK_HEADER_SIZE + RECORD_HEADER_SIZE] ^= 0xFF
    (rec, payload), *_ = iter_pack_records(bytes(bad), name)
    assert hash_data(payload) != rec.id


# ---------------------------------------------------------------- the location index cache


def test_location_index_mirrors_pack_indexes() -> None:
    name, _, index = good()
    pack_class, entries = decode_index(index, name)
    li = LocationIndex()
    li.add_pack(name, pack_class, entries)
    li.add_pack(name, pack_class, entries)  # idempotent
    assert li.pack_names() == {name} and li.count() == 3
    for e in entries:
        loc = li.lookup(e.id)
        assert loc is not None
        assert (loc.pack, loc.offset, loc.stored_size, loc.raw_size, loc.type, loc.flags) == (
            name,
            e.offset,
            e.stored_size,
            e.raw_size,
            e.type,
            e.flags,
        )
    li.remove_packs([name])
    assert li.pack_names() == set() and li.lookup(entries[0].id) is None


def _packs_of(count: int) -> list[tuple[str, PackClass, list[IndexEntry]]]:
    out = []
    for i in range(count):
        name, _, index, _ = build([f"pack {i} chunk {j}".encode() for j in range(3)]).finish()
        out.append((name, *decode_index(index, name)))
    return out


def test_packs_recorded_by_many_threads_at_once_are_all_there(tmp_path: Path) -> None:
    """Packs queued while another thread records share its next transaction (group commit):
    every caller returns once its own pack is in, and none is lost or recorded twice."""
    li = LocationIndex(tmp_path / "objects.sqlite")
    packs = _packs_of(24)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: li.add_pack(*p), packs))
    assert li.pack_names() == {name for name, _, _ in packs} and li.count() == 72
    for name, _, entries in packs:
        assert all(li.lookup(e.id) == _location(name, e) for e in entries)
    reopened = LocationIndex(tmp_path / "objects.sqlite")
    assert reopened.count() == 72


def test_every_caller_whose_pack_was_in_a_failed_transaction_gets_its_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    li = LocationIndex()
    packs = _packs_of(3)
    errors: list[BaseException] = []

    def add(pack: tuple[str, PackClass, list[IndexEntry]]) -> None:
        try:
            li.add_pack(*pack)
        except RuntimeError as exc:
            errors.append(exc)

    def refuse(db: object, batch: list[object]) -> None:
        raise RuntimeError(f"refused {len(batch)} packs")

    monkeypatch.setattr(locindex, "_record_packs", refuse)
    with li._lock:  # another thread is recording: the three queue up behind it
        threads = [threading.Thread(target=add, args=(p,)) for p in packs]
        for t in threads:
            t.start()
        while len(li._queue) < 3:
            time.sleep(0.01)
    for t in threads:
        t.join(10)
    assert [str(e) for e in errors] == ["refused 3 packs"] * 3  # one transaction for all three
    monkeypatch.undo()
    li.add_pack(*packs[0])  # nothing half-recorded, and the index still works
    assert li.pack_names() == {packs[0][0]} and li.count() == 3


def _location(name: str, e: IndexEntry) -> Location:
    return Location(name, e.offset, e.stored_size, e.raw_size, e.type, e.flags)


def _store_with(packs: list[list[bytes]]) -> tuple[MemoryBackend, list[str]]:
    backend = MemoryBackend()
    ObjectStore.initialize(backend, RepoFormat(ChunkerParams()))
    names = []
    for chunks in packs:
        name, pack, index, _ = build(chunks).finish()
        backend.put(layout.pack_key(name), pack)
        backend.put(layout.index_key(name), index)
        names.append(name)
    return backend, names


def test_packs_removed_together_keep_what_a_remaining_pack_holds() -> None:
    """A sync after a repack removes many packs at once (one pass over the objects): what
    only they held is gone, what a remaining pack also holds is found there."""
    backend, (a, b, c, d) = _store_with([[b"x", b"p"], [b"q"], [b"y", b"x"], [b"z"]])
    store = ObjectStore(backend, LocationIndex(), RepoFormat(ChunkerParams()))
    store.sync_index()
    assert store.index.count() == 6
    for gone in (a, b, d):
        backend.delete(layout.index_key(gone))
        backend.delete(layout.pack_key(gone))
    store.sync_index()
    assert store.index.pack_names() == {c} and store.index.count() == 2
    assert [o for o in (b"x", b"y") if store.locate(hash_data(o)) is None] == []
    assert store.missing(hash_data(o) for o in (b"p", b"q", b"z")) == {
        hash_data(o) for o in (b"p", b"q", b"z")
    }


def test_removing_a_pack_keeps_objects_another_pack_holds() -> None:
    """Regression: an object in packs A and B was indexed under A only (the first added); when
    A went away (gc, or another process's repack) the object vanished from the cache."""
    backend, (a, b) = _store_with([[b"x"], [b"y", b"x"]])
    store = ObjectStore(backend, LocationIndex(), RepoFormat(ChunkerParams()))
    store.sync_index()
    x = hash_data(b"x")
    loc = store.locate(x)
    assert loc is not None and loc.pack == a
    backend.delete(layout.index_key(a))
    backend.delete(layout.pack_key(a))
    store.sync_index()
    loc = store.locate(x)
    assert loc is not None and loc.pack == b
    assert store.get_raw(x) == (ObjectType.CHUNK, b"x")
    assert store.index.count() == 2


def test_index_entry_is_a_value() -> None:
    e = IndexEntry(ObjectId(bytes(32)), 60, 3, 3, ObjectType.CHUNK, 0)
    assert e == IndexEntry(ObjectId(bytes(32)), 60, 3, 3, ObjectType.CHUNK, 0)
