"""An object's stored form, and the checks every object passes on its way out of a pack or in.

An object is stored as its raw bytes, or zstd-compressed (level 1, flag ``FLAG_ZSTD``) when that
makes it smaller. Reading it back always verifies it: it must decompress to its recorded raw size
and hash to its id; a failure raises :class:`CorruptObject` naming the object and where it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsrepo.objects.errors import CorruptObject, FormatError
from dsrepo.objects.ids import hash_data
from dsrepo.objects.model import ObjectType, decode, hash_object
from dsrepo.objects.pack import FLAG_ZSTD, RECORD_HEADER_SIZE, encode_index, iter_pack_records

if TYPE_CHECKING:
    from dsrepo.objects.ids import ObjectId
    from dsrepo.objects.pack import IndexEntry, PackClass
    from dsrepo.remotes.mapped import MappedFile

SAMPLE_BYTES = 4096
"""How much of a large object is tried first to see whether it compresses at all."""


class ObjectCodec:
    """Compresses objects for storing and unpacks and verifies stored ones (thread-safe)."""

    def __init__(self) -> None:
        import zstandard  # imported with the store, not with the package

        self._zc = zstandard.ZstdCompressor(level=1)
        self._zd = zstandard.ZstdDecompressor()
        self._zstd_error = zstandard.ZstdError

    def compress(
        self, raw: bytes | memoryview, always_try: bool | None
    ) -> tuple[bytes | memoryview, int]:
        """(stored bytes, flags): zstd level 1 only when it shrinks the object. ``None``: sample
        4 KiB first (random bytes, JPEG, parquet do not compress, and trying costs as much as
        hashing); ``False``: store as is (the caller already knows the data does not compress)."""
        if len(raw) < 64 or always_try is False:
            return raw, 0
        if always_try is None and len(raw) > 2 * SAMPLE_BYTES:
            sample = raw[:SAMPLE_BYTES]
            if len(self._zc.compress(sample)) > 0.9 * len(sample):
                return raw, 0
        packed = self._zc.compress(raw)
        if len(packed) < len(raw):
            return packed, FLAG_ZSTD
        return raw, 0

    def unpack(
        self, oid: ObjectId, type_: ObjectType, stored: bytes, flags: int, raw_size: int, where: str
    ) -> bytes:
        """The raw bytes of a stored object, checked against its size and id."""

        def corrupt(why: str) -> CorruptObject:
            return CorruptObject(f"corrupt {type_.label} {oid.hex()} in {where}: {why}")

        if flags & FLAG_ZSTD:
            try:
                raw = self._zd.decompress(stored, max_output_size=raw_size)
            except self._zstd_error:
                raise corrupt("does not decompress") from None
        else:
            raw = stored
        if len(raw) != raw_size:
            raise corrupt(f"{len(raw)} bytes instead of {raw_size}")
        if hash_object(type_, raw) != oid:
            raise corrupt("content does not match its id")
        return raw

    def verify(
        self, oid: ObjectId, type_: ObjectType, stored: bytes, flags: int, raw_size: int, where: str
    ) -> None:
        """Check an object in its stored form: it decompresses to ``raw_size`` bytes that hash to
        ``oid`` and, if structured, decode canonically. Raises CorruptObject naming ``where``."""
        raw = self.unpack(oid, type_, stored, flags, raw_size, where)
        if type_ != ObjectType.CHUNK:
            try:
                decode(type_, raw)
            except FormatError as exc:
                raise CorruptObject(
                    f"corrupt {type_.label} {oid.hex()} in {where}: {exc}"
                ) from None

    def verify_pack(
        self,
        name: str,
        pack_class: PackClass,
        entries: list[IndexEntry],
        data: bytes | MappedFile,
        where: str,
    ) -> bytes:
        """Check a whole pack: every object against its id, every record header against
        ``entries`` (a damaged one is named by its offset), and ``entries`` against ``name``.
        Returns the pack's index bytes."""
        chunk = ObjectType.CHUNK
        # records are sliced from a view (no copy of a 32 MiB pack); a chunk stored as is, most
        # data, is checked right here with one hash call, the others (and any failure, to say
        # what is wrong) by verify
        for rec, stored in iter_pack_records(memoryview(data), name, entries, pack_class):
            if (
                rec.flags == 0
                and rec.type is chunk
                and rec.stored_size == rec.raw_size
                and hash_data(stored) == rec.id
            ):
                continue
            at = rec.offset - RECORD_HEADER_SIZE
            self.verify(
                rec.id, rec.type, bytes(stored), rec.flags, rec.raw_size, f"{where} at offset {at}"
            )
        index_name, index_bytes = encode_index(pack_class, entries)
        if index_name != name:
            raise CorruptObject(f"{where}: index of pack {name} describes another pack")
        return index_bytes
