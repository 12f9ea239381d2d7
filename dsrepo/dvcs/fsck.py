"""``fsck`` and ``count-objects``: verify every stored byte and every reference.

fsck re-reads each pack whole, checks its name (the BLAKE3 of its bytes), re-hashes and decodes
every object, compares the pack with its index, and walks everything reachable from refs,
reflogs and an in-progress merge to check that it exists. Each problem is one line naming the
object, pack or ref.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsrepo.objects import layout
from dsrepo.objects.errors import CorruptObject, FormatError, ObjectError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.model import ObjectType, decode, hash_object, iter_ids
from dsrepo.objects.pack import FLAG_ZSTD, decode_index, iter_pack_records

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


@dataclass
class FsckReport:
    problems: list[str] = field(default_factory=list)
    packs: int = 0
    objects: int = 0
    reachable: int = 0
    bytes_checked: int = 0
    orphan_packs: list[str] = field(default_factory=list)
    promised: int = 0
    """Data chunks a partial clone leaves on its promisor remote (fetched on demand)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(repo: Repository, progress: Callable[[int, int], None] | None = None) -> FsckReport:
    import zstandard

    report = FsckReport()
    backend = repo.backend
    zd = zstandard.ZstdDecompressor()
    keys = [k.key for k in backend.iter_keys(layout.PACKS_PREFIX)]
    idx_names = {n for k in keys if (n := layout.pack_name_from_index_key(k))}
    pack_names = {k[len(layout.PACKS_PREFIX) : -5] for k in keys if k.endswith(".pack")}
    report.orphan_packs = sorted(pack_names - idx_names)
    present: dict[ObjectId, ObjectType] = {}
    corrupt: set[ObjectId] = set()
    total = len(idx_names)
    for i, name in enumerate(sorted(idx_names)):
        report.packs += 1
        try:
            _cls, entries = decode_index(backend.get(layout.index_key(name)), name)
        except ObjectError as exc:
            report.problems.append(str(exc))
            continue
        if name not in pack_names:
            report.problems.append(f"pack {name} is missing (its index exists)")
            continue
        data = backend.get(layout.pack_key(name))
        report.bytes_checked += len(data)
        by_id = {e.id: e for e in entries}
        seen: set[ObjectId] = set()
        try:
            for rec, stored in iter_pack_records(data, name):
                entry = by_id.get(rec.id)
                if entry is None or (entry.offset, entry.stored_size) != (
                    rec.offset,
                    rec.stored_size,
                ):
                    report.problems.append(
                        f"pack {name}: object {rec.id.hex()} is not indexed where it is"
                    )
                    continue
                seen.add(rec.id)
                report.objects += 1
                problem = _check_object(rec.id, rec.type, stored, rec.flags, rec.raw_size, zd)
                if problem:
                    corrupt.add(rec.id)
                    report.problems.append(
                        f"corrupt {rec.type.label} {rec.id.hex()} in pack {name}: {problem}"
                    )
                else:
                    present[rec.id] = rec.type
        except ObjectError as exc:
            report.problems.append(str(exc))
        for oid in by_id.keys() - seen:
            report.problems.append(f"pack {name}: indexed object {oid.hex()} is not in the pack")
        if progress:
            progress(i + 1, total)
    _check_reachable(repo, present, corrupt, report)
    return report


def _check_object(
    oid: ObjectId, type_: ObjectType, stored: bytes, flags: int, raw_size: int, zd: object
) -> str | None:
    import zstandard

    raw = stored
    if flags & FLAG_ZSTD:
        try:
            assert isinstance(zd, zstandard.ZstdDecompressor)
            raw = zd.decompress(stored, max_output_size=raw_size)
        except zstandard.ZstdError:
            return "does not decompress"
    if len(raw) != raw_size:
        return f"{len(raw)} bytes instead of {raw_size}"
    if hash_object(type_, raw) != oid:
        return "content does not match its id"
    if type_ != ObjectType.CHUNK:
        try:
            decode(type_, raw)
        except FormatError as exc:
            return str(exc)
    return None


def roots(repo: Repository, report: FsckReport | None = None) -> list[tuple[str, ObjectId]]:
    """Everything that keeps objects alive: refs, HEAD, reflog entries, an in-progress merge."""
    from dsrepo.dvcs.merging import merge_heads_in_progress

    out: list[tuple[str, ObjectId]] = []
    try:
        for name, oid in repo.refs.list("refs/").items():
            out.append((name, oid))
    except Exception as exc:
        if report is not None:
            report.problems.append(f"refs: {exc}")
    try:
        head = repo.refs.resolve("HEAD")
        if head is not None:
            out.append(("HEAD", head))
    except Exception as exc:
        if report is not None:
            report.problems.append(f"HEAD: {exc}")
    for name in repo.refs.reflog_names():
        for entry in repo.refs.reflog(name):
            for logged in (entry.old, entry.new):
                if logged is not None:
                    out.append((f"reflog {name}", logged))
    for oid in merge_heads_in_progress(repo):
        out.append(("MERGE_HEAD", oid))
    return out


def _check_reachable(
    repo: Repository,
    present: dict[ObjectId, ObjectType],
    corrupt: set[ObjectId],
    report: FsckReport,
) -> None:
    store = repo.store
    partial = bool(repo.config.get("core.promisor"))
    seen: set[ObjectId] = set()
    stack: list[tuple[ObjectId, str, ObjectType | None]] = [
        (oid, where, None) for where, oid in roots(repo, report)
    ]
    while stack:
        oid, where, expected = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        t = present.get(oid)
        if t is None:
            if oid in corrupt:
                continue  # reported once, as corrupt
            if partial and expected == ObjectType.CHUNK:
                report.promised += 1
                continue
            report.problems.append(f"missing object {oid.hex()} (referenced from {where})")
            continue
        if t == ObjectType.CHUNK:
            continue
        try:
            obj = store.get(oid)
        except (ObjectError, CorruptObject):
            continue  # already reported by the pack pass
        label = f"{t.label} {oid.hex()[:12]}"
        stack.extend((child, label, child_type) for child, child_type in iter_ids(obj))
    report.reachable = len(seen)


@dataclass(frozen=True)
class ObjectCounts:
    packs: int
    objects: int
    data_objects: int
    meta_objects: int
    pack_bytes: int
    orphan_packs: int


def count_objects(repo: Repository) -> ObjectCounts:
    from dsrepo.objects.pack import PackClass

    packs = list(repo.backend.iter_keys(layout.PACKS_PREFIX))
    idx = {n for k in packs if (n := layout.pack_name_from_index_key(k.key))}
    pack_files = {
        k.key[len(layout.PACKS_PREFIX) : -5]: k.size for k in packs if k.key.endswith(".pack")
    }
    data = sum(1 for _ in repo.store.index.iter_objects(PackClass.DATA))
    meta = sum(1 for _ in repo.store.index.iter_objects(PackClass.META))
    return ObjectCounts(
        packs=len(idx),
        objects=data + meta,
        data_objects=data,
        meta_objects=meta,
        pack_bytes=sum(size for name, size in pack_files.items() if name in idx),
        orphan_packs=len(set(pack_files) - idx),
    )
