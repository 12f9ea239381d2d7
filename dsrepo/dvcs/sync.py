"""Moving history between repositories: push, fetch, pull, clone, get.

One layout on every backend (``dsrepo.objects.layout``): a format marker, packs with their
indexes, refs. What the other side lacks is a set difference against pack indexes — the remote's
are downloaded once into a local cache (they are immutable) — never one request per object.

Push: objects reachable from the pushed refs and not reachable from the remote's refs, minus what
the remote's indexes list, are packed and uploaded (pack, then its index), in parallel; then each
ref is compare-and-swapped. Fetch: the remote's metadata packs that hold anything missing locally
are downloaded whole, then only the data chunks the new commits need, by coalesced range reads.
Every received object is re-hashed before it is stored, and refs move only after everything they
reach is durable. An interrupted transfer leaves both sides valid; completed packs (those with an
index) are not sent again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from blake3 import blake3

from dsrepo.dvcs.errors import RefConflict, RepositoryError, StateError, UnknownRevision
from dsrepo.dvcs.graph import ancestors, is_ancestor
from dsrepo.dvcs.refnames import HEADS, REMOTES, TAGS, check_refname
from dsrepo.dvcs.refs import RefStore
from dsrepo.dvcs.upstream import set_upstream, upstream_of
from dsrepo.objects import layout
from dsrepo.objects.errors import FormatError, ObjectNotFound
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.locindex import Location, LocationIndex
from dsrepo.objects.model import ObjectType
from dsrepo.objects.pack import (
    IndexEntry,
    PackBuilder,
    PackClass,
    decode_index,
    iter_pack_records,
)
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.base import Backend
from dsrepo.remotes.counting import CountingBackend
from dsrepo.remotes.errors import BackendError, KeyConflict
from dsrepo.remotes.urls import S3Options, open_backend

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

Progress = Callable[[int, int], None]
RANGE_GAP = 1 << 20
RANGE_SPAN = 16 << 20
REUSE_MIN = 4 << 20
"""A local pack this large whose objects all go to the remote is sent as is (small ones, one per
commit, are merged into new packs so the remote does not fill with tiny packs)."""
MAX_IN_FLIGHT_BYTES = 128 << 20
"""Downloads requested but not yet stored, at most (bounds a clone's memory)."""
WHOLE_PACK_SHARE = 0.5
"""Download a remote pack whole (and keep it as is) when at least this share of it is wanted."""
DEFAULT_JOBS = 8


class RemoteError(RepositoryError):
    exit_code = 8


class PushRejected(RepositoryError):
    exit_code = 5


# ---------------------------------------------------------------- remotes in config


def _section(name: str) -> str:
    return f'remote "{name}"'


def remote_names(repo: Repository) -> list[str]:
    assert repo.config.local is not None
    out = []
    for s in repo.config.local.sections():
        if s.startswith('remote "') and s.endswith('"'):
            out.append(s[len('remote "') : -1])
    return sorted(out)


def _check_remote_name(name: str) -> None:
    check_refname(f"{REMOTES}{name}/x")
    if "/" in name:
        raise RepositoryError(f"invalid remote name {name!r}: must not contain '/'")


def add_remote(
    repo: Repository,
    name: str,
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> None:

    _check_remote_name(name)
    url = normalize_url(url)
    if name in remote_names(repo):
        raise RepositoryError(f"remote {name!r} already exists")
    cfg = repo.config.local
    assert cfg is not None
    cfg.set(f"remote.{name}.url", url)
    for key, value in (("endpoint-url", endpoint_url), ("region", region), ("profile", profile)):
        if value:
            cfg.set(f"remote.{name}.{key}", value)


def remove_remote(repo: Repository, name: str) -> None:
    cfg = repo.config.local
    assert cfg is not None
    if not cfg.remove_section(_section(name)):
        raise RepositoryError(f"no such remote {name!r}")
    _retarget_remote(repo, name, None)
    for ref, oid in repo.refs.list(f"{REMOTES}{name}/").items():
        repo.refs.update(ref, None, oid, who=repo.reflog_identity(), message="remote remove")


def _retarget_remote(repo: Repository, old: str, new: str | None) -> None:
    """Branch upstreams and a partial clone's promisor follow a renamed remote; upstreams of a
    removed remote are dropped (as git does)."""
    cfg = repo.config.local
    assert cfg is not None
    for key, value in cfg.items():
        if value != old:
            continue
        if key.startswith("branch.") and key.endswith(".remote"):
            cfg.set(key, new)
            if new is None:
                cfg.set(key[: -len(".remote")] + ".merge", None)
        elif key == "core.promisor" and new is not None:
            cfg.set(key, new)


def rename_remote(repo: Repository, old: str, new: str) -> None:
    _check_remote_name(new)
    cfg = repo.config.local
    assert cfg is not None
    if old not in remote_names(repo):
        raise RepositoryError(f"no such remote {old!r}")
    if new in remote_names(repo):
        raise RepositoryError(f"remote {new!r} already exists")
    cfg.rename_section(_section(old), _section(new))
    _retarget_remote(repo, old, new)
    who = repo.reflog_identity()
    for ref, oid in repo.refs.list(f"{REMOTES}{old}/").items():
        repo.refs.update(
            f"{REMOTES}{new}/{ref[len(REMOTES) + len(old) + 1 :]}",
            oid,
            None,
            who=who,
            message="remote rename",
        )
        repo.refs.update(ref, None, oid, who=who, message="remote rename")


def set_url(repo: Repository, name: str, url: str) -> None:

    if name not in remote_names(repo):
        raise RepositoryError(f"no such remote {name!r}")
    assert repo.config.local is not None
    repo.config.local.set(f"remote.{name}.url", normalize_url(url))


def normalize_url(url: str) -> str:
    """Local paths become absolute, so the remote does not depend on the current directory."""
    from dsrepo.remotes.urls import parse_url

    scheme, location, _prefix = parse_url(url)
    return location if scheme == "file" else url


def remote_url(repo: Repository, name: str) -> tuple[str, S3Options]:
    url = repo.config.get(f"remote.{name}.url")
    if url is None:
        raise RepositoryError(
            f"no such remote {name!r} (add it with 'dsrepo remote add {name} URL')"
        )
    return url, S3Options(
        endpoint_url=repo.config.get(f"remote.{name}.endpoint-url"),
        region=repo.config.get(f"remote.{name}.region"),
        profile=repo.config.get(f"remote.{name}.profile"),
    )


# ---------------------------------------------------------------- the remote side


class Remote:
    """A remote location opened for transfer: its object store (with a locally cached copy of its
    pack indexes) and its refs."""

    def __init__(
        self,
        repo: Repository,
        name: str,
        url: str,
        s3: S3Options | None = None,
        *,
        create: bool = False,
    ) -> None:
        self.name = name
        self.url = url
        self.counter = CountingBackend(open_backend(url, s3=s3, create=create))
        self.backend: Backend = self.counter
        try:
            fmt = ObjectStore.read_format(self.backend)
        except FormatError as exc:
            if "no format marker" not in str(exc):
                raise RemoteError(f"remote {url}: {exc}") from None
            if not create:
                raise RemoteError(
                    f"{url} is not a dsrepo remote (no format marker); push to it first"
                ) from None
            if self.backend.list("", limit=1):
                raise RemoteError(
                    f"refusing to use {url}: it holds other data and no dsrepo format marker"
                ) from None
            fmt = repo.store.format
            ObjectStore.initialize(self.backend, fmt)
        cache = repo.dsdir / "cache" / "remotes"
        cache.mkdir(parents=True, exist_ok=True)
        key = blake3(url.encode()).hexdigest()[:24]
        self.store = ObjectStore(self.backend, LocationIndex(cache / f"{key}.sqlite"), fmt)
        self.store.sync_index()
        self.refs = RefStore(self.backend, None)

    def check_conditional_writes(self) -> None:
        """Refuse ref updates on servers that ignore conditional writes (concurrent pushes could
        then overwrite each other silently)."""
        inner = getattr(self.counter.inner, "inner", None)
        from dsrepo.remotes.s3 import S3Backend, probe_conditional_writes

        if isinstance(inner, S3Backend) and not probe_conditional_writes(inner):
            raise RemoteError(
                f"{self.url}: the server ignores conditional writes (If-None-Match/If-Match), so a "
                "concurrent push could silently overwrite a ref; refusing to update refs there"
            )

    def close(self) -> None:
        self.store.close()
        self.backend.close()


def open_remote(repo: Repository, name_or_url: str, *, create: bool = False) -> Remote:
    if name_or_url in remote_names(repo):
        url, s3 = remote_url(repo, name_or_url)
        return Remote(repo, name_or_url, url, s3, create=create)
    if "://" in name_or_url or name_or_url.startswith(("/", ".", "~")):
        url = normalize_url(name_or_url)
        return Remote(repo, url, url, None, create=create)
    raise RepositoryError(f"no such remote {name_or_url!r} (add it with 'dsrepo remote add')")


# ---------------------------------------------------------------- reachability


def _complete_commits(repo: Repository, tips: Iterable[ObjectId]) -> set[str]:
    """Commits reachable from ``tips`` that exist locally (history below a ref is complete).

    Annotated tags among the tips are peeled to their commits (tags of trees or files add
    nothing)."""
    present = []
    for t in tips:
        for _ in range(16):
            if not repo.store.has(t) or repo.store.object_type(t) != ObjectType.TAG:
                break
            t = repo.store.get_tag(t).target
        if repo.store.has(t) and repo.store.object_type(t) == ObjectType.COMMIT:
            present.append(t.hex())
    return set(ancestors(repo.parents_of, present)) if present else set()


def reachable_objects(
    repo: Repository,
    tips: Iterable[ObjectId],
    stop: set[str],
    *,
    want_data: Callable[[str], bool] | None = None,
    data: bool = True,
) -> tuple[list[tuple[ObjectId, ObjectType]], list[ObjectId]]:
    """(metadata objects, data chunks) reachable from ``tips`` without passing a commit in ``stop``.

    Commits in ``stop`` are complete on the other side, so a commit with such a parent is walked
    as a diff against the parent's tree: identical subtrees are skipped unread and unchanged
    files contribute nothing (a small change to a huge dataset costs its size, not the
    dataset's). ``want_data`` filters which file paths' chunks are wanted (partial fetch)."""
    meta: list[tuple[ObjectId, ObjectType]] = []
    chunks: list[ObjectId] = []
    seen: set[ObjectId] = set()
    store = repo.store
    commits = [t for t in tips if t.hex() not in stop]
    while commits:
        cid = commits.pop()
        if cid in seen or cid.hex() in stop:
            continue
        seen.add(cid)
        meta.append((cid, ObjectType.COMMIT))
        c = store.get_commit(cid)
        commits.extend(p for p in c.parents if p.hex() not in stop)
        base = next((store.get_commit(p).tree for p in c.parents if p.hex() in stop), None)
        stack: list[tuple[ObjectId, str, ObjectId | None]] = [(c.tree, "", base)]
        while stack:
            tid, prefix, base_tid = stack.pop()
            if tid in seen or tid == base_tid:
                continue
            seen.add(tid)
            meta.append((tid, ObjectType.TREE))
            tree = store.get_tree(tid)
            for ref in tree.shards:
                meta.append((ref.id, ObjectType.TREE))
            old = {} if base_tid is None else {b.name: b for b in store.tree_entries(base_tid)}
            for e in store.tree_entries(tid):
                path = prefix + e.name
                b = old.get(e.name)
                if e.kind == EntryKind.TREE:
                    same_kind = b is not None and b.kind == EntryKind.TREE
                    stack.append((e.id, path + "/", b.id if same_kind and b else None))
                    continue
                if b is not None and (b.kind, b.id, b.manifest) == (e.kind, e.id, e.manifest):
                    continue  # unchanged since a complete parent
                if e.manifest is not None and e.manifest not in seen:
                    seen.add(e.manifest)
                    meta.append((e.manifest, ObjectType.MANIFEST))
                if not data or (want_data is not None and not want_data(path)):
                    continue
                if e.manifest is not None:
                    chunks.extend(cid2 for cid2, _ in store.get_manifest(e.manifest).chunks)
                else:
                    chunks.append(e.id)
    return meta, chunks


def _tag_objects(
    repo: Repository, oid: ObjectId
) -> tuple[list[tuple[ObjectId, ObjectType]], ObjectId]:
    """Annotated tag objects in front of a commit, and the commit."""
    out: list[tuple[ObjectId, ObjectType]] = []
    for _ in range(16):
        t = repo.store.object_type(oid)
        if t != ObjectType.TAG:
            return out, oid
        out.append((oid, t))
        oid = repo.store.get_tag(oid).target
    raise FormatError("tag chain too long")


# ---------------------------------------------------------------- push


@dataclass
class RefUpdate:
    ref: str
    old: ObjectId | None
    new: ObjectId | None
    status: str = "pending"  # "ok", "up-to-date", "rejected", "would update" (dry run)
    reason: str = ""


@dataclass
class TransferStats:
    objects: int = 0
    bytes: int = 0
    packs: int = 0
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass
class PushResult:
    remote: str
    updates: list[RefUpdate] = field(default_factory=list)
    stats: TransferStats = field(default_factory=TransferStats)

    @property
    def ok(self) -> bool:
        return all(u.status in ("ok", "up-to-date", "would update") for u in self.updates)


def _would_be_created(repo: Repository, remote_name: str) -> bool:
    """True when a push would create the remote: a directory that does not exist yet, or an
    empty location without a format marker. Anything else a push would refuse."""
    from dsrepo.remotes.urls import parse_url

    if remote_name in remote_names(repo):
        url, s3 = remote_url(repo, remote_name)
    else:
        url, s3 = normalize_url(remote_name), None
    scheme, location, _ = parse_url(url)
    if scheme == "file" and not Path(location).exists():
        return True
    backend = open_backend(url, s3=s3)
    try:
        return not backend.list("", limit=1)
    finally:
        backend.close()


def _push_specs(repo: Repository, refs: Sequence[str], tags: bool) -> list[tuple[str, str]]:
    """(local ref, remote ref) pairs."""
    specs: list[tuple[str, str]] = []
    if not refs:
        branch = repo.head_branch()
        if branch is None:
            raise StateError(
                "HEAD is detached: name the branch to push (dsrepo push REMOTE BRANCH)"
            )
        specs.append((branch, branch))
    for spec in refs:
        src, _, dst = spec.partition(":")
        for candidate in (src, HEADS + src, TAGS + src):
            if candidate.startswith("refs/") and repo.refs.resolve(candidate) is not None:
                full = candidate
                break
        else:
            raise UnknownRevision(f"no local branch or tag {src!r} to push")
        target = dst or full
        if not target.startswith("refs/"):
            target = (TAGS if full.startswith(TAGS) else HEADS) + target
        specs.append((full, check_refname(target)))
    if tags:
        specs.extend((r, r) for r in repo.refs.list(TAGS))
    return list(dict.fromkeys(specs))


class _Uploader:
    """Packs objects as they come and uploads finished packs in parallel (pack, then index)."""

    def __init__(self, remote: Remote, jobs: int, pack_target: int) -> None:
        self.remote = remote
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dsrepo-push")
        self.pending: list[Future[None]] = []
        self.builders: dict[PackClass, PackBuilder] = {}
        self.pack_target = pack_target
        self.stats = TransferStats()
        self.max_in_flight = max(2, jobs)

    def add(self, oid: ObjectId, loc: Location, stored: bytes) -> None:
        pc = PackClass.for_type(loc.type)
        b = self.builders.get(pc)
        if b is None:
            b = self.builders[pc] = PackBuilder(pc)
        b.add(oid, loc.type, stored, loc.raw_size, loc.flags)
        self.stats.objects += 1
        self.stats.bytes += len(stored)
        if b.size >= self.pack_target:
            self._ship(pc)

    def _ship(self, pc: PackClass) -> None:
        b = self.builders.pop(pc, None)
        if b is None or not b.entries:
            return
        name, pack_bytes, index_bytes, entries = b.finish()
        self.ship_pack(name, pc, entries, pack_bytes, index_bytes)

    def ship_pack(
        self,
        name: str,
        pc: PackClass,
        entries: list[IndexEntry],
        pack_bytes: bytes,
        index_bytes: bytes,
    ) -> None:
        """Upload a finished pack, then its index; then remember it in the remote-index cache
        (so the next push does not download an index we wrote)."""
        remote = self.remote

        def upload() -> None:
            remote.backend.put_if_absent(layout.pack_key(name), pack_bytes)
            remote.backend.put_if_absent(layout.index_key(name), index_bytes)
            remote.store.index.add_pack(name, pc, entries)

        while len([f for f in self.pending if not f.done()]) >= self.max_in_flight:
            next(f for f in self.pending if not f.done()).result()
        self.pending.append(self.pool.submit(upload))
        self.stats.packs += 1

    def finish(self) -> None:
        try:
            for pc in list(self.builders):
                self._ship(pc)
            for f in self.pending:
                f.result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def push(
    repo: Repository,
    remote_name: str,
    refs: Sequence[str] = (),
    *,
    tags: bool = False,
    force: bool = False,
    dry_run: bool = False,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
    pack_target: int = 32 << 20,
) -> PushResult:
    try:
        remote = open_remote(repo, remote_name, create=not dry_run)
    except (RemoteError, BackendError):
        if not dry_run:
            raise
        if not _would_be_created(repo, remote_name):
            # fail as the real push would: a non-empty location without a marker is refused
            # before anything is written there
            open_remote(repo, remote_name, create=True).close()
            raise
        # a dry run against a location a real push would create: every ref would be new
        result = PushResult(remote_name)
        for src, dst in _push_specs(repo, refs, tags):
            result.updates.append(RefUpdate(dst, None, repo.refs.resolve(src), "would update"))
        return result
    try:
        return _push(
            repo,
            remote,
            refs,
            tags=tags,
            force=force,
            dry_run=dry_run,
            jobs=jobs,
            progress=progress,
            pack_target=pack_target,
        )
    finally:
        remote.close()


def _push(
    repo: Repository,
    remote: Remote,
    refs: Sequence[str],
    *,
    tags: bool,
    force: bool,
    dry_run: bool,
    jobs: int,
    progress: Progress | None,
    pack_target: int,
) -> PushResult:
    result = PushResult(remote.name)
    specs = _push_specs(repo, refs, tags)
    remote_refs = remote.refs.list("refs/")
    for src, dst in specs:
        new = repo.refs.resolve(src)
        old = remote_refs.get(dst)
        u = RefUpdate(dst, old, new)
        result.updates.append(u)
        if old == new:
            u.status = "up-to-date"
        elif force:
            continue
        elif old is not None and dst.startswith(TAGS):
            u.status, u.reason = "rejected", "tag already exists on the remote (use --force)"
        elif old is not None and new is not None:
            _, new_commit = _tag_objects(repo, new)
            if not repo.store.has(old):
                u.status, u.reason = (
                    "rejected",
                    "the remote has commits you do not have (fetch first)",
                )
            elif not is_ancestor(repo.parents_of, old.hex(), new_commit.hex()):
                u.status, u.reason = (
                    "rejected",
                    "non-fast-forward (fetch and merge first, or --force)",
                )
    todo = [u for u in result.updates if u.status == "pending"]
    if not todo:
        return result
    if dry_run:
        for u in todo:
            u.status = "would update"
        return result
    remote.check_conditional_writes()
    # what the remote may lack: objects reachable from the new tips, not below its ref tips
    stop = _complete_commits(repo, remote_refs.values())
    wanted: list[tuple[ObjectId, ObjectType]] = []
    for u in todo:
        assert u.new is not None
        tag_objs, commit = _tag_objects(repo, u.new)
        wanted.extend(tag_objs)
        meta, chunks = reachable_objects(repo, [commit], stop)
        wanted.extend(meta)
        wanted.extend((c, ObjectType.CHUNK) for c in chunks)
    ids = list(dict.fromkeys(oid for oid, _ in wanted))
    missing = remote.store.index.missing(ids)
    send = [oid for oid in ids if oid in missing]
    # data first in each batch is irrelevant: refs move only after every pack is complete
    uploader = _Uploader(remote, jobs, pack_target)
    total = len(send)
    done = 0
    try:
        # a local pack every object of which is to be sent goes as is (verified, not re-packed)
        by_pack: dict[str, list[ObjectId]] = defaultdict(list)
        for oid in send:
            loc = repo.store.locate(oid)
            if loc is not None:
                by_pack[loc.pack].append(oid)
        sent: set[ObjectId] = set()
        wanted_set = set(send)
        for pack, members in by_pack.items():
            objects = repo.store.index.pack_objects(pack)
            if (
                len(members) < len(objects)
                or sum(loc.stored_size for _, loc in objects) < REUSE_MIN
            ):
                continue  # small packs are merged into new ones; the pack's own index decides
            pc, entries = decode_index(repo.store.backend.get(layout.index_key(pack)), pack)
            if not all(e.id in wanted_set for e in entries):
                continue
            data = repo.store.backend.get(layout.pack_key(pack))
            index_bytes = repo.store.verify_pack(pack, pc, entries, data, f"local pack {pack}")
            uploader.ship_pack(pack, pc, entries, data, index_bytes)
            uploader.stats.objects += len(entries)
            uploader.stats.bytes += len(data)
            sent.update(members)
            done += len(members)
            if progress:
                progress(done, total)
        for oid in send:
            if oid in sent:
                continue
            loc, stored = repo.store.read_stored(oid)
            uploader.add(oid, loc, stored)
            done += 1
            if progress:
                progress(done, total)
    finally:
        uploader.finish()
    result.stats = uploader.stats
    who = repo.reflog_identity()
    for u in todo:
        try:
            remote.refs.update(u.ref, u.new, u.old, who=who, message="push")
            u.status = "ok"
        except RefConflict:
            u.status, u.reason = "rejected", "the remote ref changed meanwhile (fetch first)"
        except KeyConflict as exc:
            u.status, u.reason = "rejected", str(exc)
        if u.status == "ok" and u.ref.startswith(HEADS):
            tracking = f"{REMOTES}{remote.name}/{u.ref[len(HEADS) :]}"
            if remote.name in remote_names(repo):
                repo.refs.update(tracking, u.new, None, who=who, message="push", check_old=False)
    result.stats.requests = remote.counter.total_requests
    result.stats.bytes_sent = remote.counter.bytes_sent
    return result


# ---------------------------------------------------------------- fetch


@dataclass
class FetchResult:
    remote: str
    updated: list[RefUpdate] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    stats: TransferStats = field(default_factory=TransferStats)


def _coalesce(
    items: list[tuple[ObjectId, Location]],
) -> list[tuple[str, int, int, list[tuple[ObjectId, Location]]]]:
    """Group objects of one pack into (pack, start, length, members) ranges."""
    items.sort(key=lambda x: (x[1].pack, x[1].offset))
    out: list[tuple[str, int, int, list[tuple[ObjectId, Location]]]] = []
    for oid, loc in items:
        end = loc.offset + loc.stored_size
        if out:
            pack, start, length, members = out[-1]
            if (
                pack == loc.pack
                and loc.offset - (start + length) <= RANGE_GAP
                and end - start <= RANGE_SPAN
            ):
                out[-1] = (pack, start, max(start + length, end) - start, [*members, (oid, loc)])
                continue
        out.append((loc.pack, loc.offset, loc.stored_size, [(oid, loc)]))
    return out


def download(
    repo: Repository,
    remote: Remote,
    ids: Iterable[ObjectId],
    *,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> TransferStats:
    """Fetch objects by id from the remote; each is verified before it is stored.

    A pack most of whose bytes are wanted is downloaded whole and kept as is (no re-packing);
    from the others only the wanted objects are read, with coalesced range requests. At most
    ``2 * jobs`` requests are in flight, so memory stays bounded whatever the data size.
    """
    stats = TransferStats()
    want = [oid for oid in dict.fromkeys(ids) if not repo.store.has(oid)]
    by_pack: dict[str, list[tuple[ObjectId, Location]]] = defaultdict(list)
    for oid in want:
        loc = remote.store.index.lookup(oid)
        if loc is None:
            raise RemoteError(
                f"the remote {remote.url} lacks object {oid.hex()} (its history is incomplete)"
            )
        by_pack[loc.pack].append((oid, loc))
    jobs_list: list[tuple[str, int, int, list[tuple[ObjectId, Location]]]] = []
    for pack, members in by_pack.items():
        pack_objects = remote.store.index.pack_objects(pack)
        pack_bytes = sum(loc.stored_size for _, loc in pack_objects)
        if sum(loc.stored_size for _, loc in members) >= WHOLE_PACK_SHARE * pack_bytes:
            jobs_list.append((pack, 0, -1, members))
        else:
            jobs_list.extend(_coalesce(members))
    total = sum(
        sum(loc.stored_size for _, loc in members) if length < 0 else length
        for _, _, length, members in jobs_list
    )
    done = 0
    where = f"remote {remote.url}"

    def fetch(job: tuple[str, int, int, list[tuple[ObjectId, Location]]]) -> bytes:
        pack, start, length, _ = job
        if length < 0:
            return remote.backend.get(layout.pack_key(pack))
        return remote.backend.get(layout.pack_key(pack), start, length)

    def store(job: tuple[str, int, int, list[tuple[ObjectId, Location]]], data: bytes) -> None:
        nonlocal done
        pack, start, length, members = job
        if length < 0:
            idx = remote.backend.get(layout.index_key(pack))
            pack_class, entries = decode_index(idx, pack)
            repo.store.adopt_pack(pack, pack_class, entries, data, f"{where} pack {pack}")
            moved = sum(loc.stored_size for _, loc in members)
        else:
            for oid, loc in members:
                piece = data[loc.offset - start : loc.offset - start + loc.stored_size]
                repo.store.put_stored(
                    oid, loc.type, piece, loc.raw_size, loc.flags, f"{where} pack {loc.pack}"
                )
            moved = length
        stats.objects += len(members)
        stats.bytes += sum(loc.stored_size for _, loc in members)
        done += moved
        if progress:
            progress(done, total)

    def size(job: tuple[str, int, int, list[tuple[ObjectId, Location]]]) -> int:
        pack, _, length, _ = job
        if length >= 0:
            return length
        return sum(loc.stored_size for _, loc in remote.store.index.pack_objects(pack))

    Job = tuple[str, int, int, list[tuple[ObjectId, Location]]]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dsrepo-fetch") as pool:
        window: list[tuple[Job, int, Future[bytes]]] = []
        in_flight = 0
        for job in jobs_list:
            n = size(job)
            # bounded by bytes too: whole packs are 32 MiB, and memory must not follow the data
            while window and (len(window) >= 2 * jobs or in_flight + n > MAX_IN_FLIGHT_BYTES):
                first, first_size, fut = window.pop(0)
                store(first, fut.result())
                in_flight -= first_size
            window.append((job, n, pool.submit(fetch, job)))
            in_flight += n
        for job, _, fut in window:
            store(job, fut.result())
    return stats


def _fetch_metadata(repo: Repository, remote: Remote) -> int:
    """Download every remote metadata pack holding something missing locally; verify and store."""
    count = 0
    for name in sorted(remote.store.index.pack_names()):
        objs = remote.store.index.pack_objects(name)
        if not objs or objs[0][1].type == ObjectType.CHUNK:
            continue
        missing = repo.store.index.missing(oid for oid, _ in objs)
        missing = {m for m in missing if not repo.store.has(ObjectId(m))}
        if not missing:
            continue
        data = remote.backend.get(layout.pack_key(name))
        for rec, stored in iter_pack_records(data, name):
            if rec.id in missing:
                repo.store.put_stored(
                    rec.id,
                    rec.type,
                    stored,
                    rec.raw_size,
                    rec.flags,
                    f"remote {remote.url} pack {name}",
                )
                count += 1
    return count


def sparse_patterns(repo: Repository) -> list[str] | None:
    raw = repo.config.get("core.sparse")
    return json.loads(raw) if raw else None


def fetch(
    repo: Repository,
    remote_name: str,
    *,
    prune: bool = False,
    jobs: int = DEFAULT_JOBS,
    only: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> FetchResult:
    remote = open_remote(repo, remote_name)
    try:
        return _fetch(repo, remote, prune=prune, jobs=jobs, only=only, progress=progress)
    finally:
        remote.close()


def _fetch(
    repo: Repository,
    remote: Remote,
    *,
    prune: bool,
    jobs: int,
    only: Sequence[str] | None,
    progress: Progress | None,
) -> FetchResult:
    from dsrepo.dvcs.checkout import match_only

    result = FetchResult(remote.name)
    remote_refs = {
        r: o for r, o in remote.refs.list("refs/").items() if r.startswith((HEADS, TAGS))
    }
    patterns = list(only) if only else sparse_patterns(repo)
    want_data = match_only(patterns) if patterns else None
    store = repo.store
    try:
        _fetch_metadata(repo, remote)
        local_tips = list(repo.refs.list("refs/").values())
        stop = _complete_commits(repo, local_tips)
        tips = []
        for oid in remote_refs.values():
            if not store.has(oid):
                raise RemoteError(
                    f"the remote {remote.url} lacks object {oid.hex()} named by its refs"
                )
            _, commit = _tag_objects(repo, oid)
            tips.append(commit)
        _, chunks = reachable_objects(repo, tips, stop, want_data=want_data)
        result.stats = download(repo, remote, chunks, jobs=jobs, progress=progress)
        store.flush()
    except BaseException:
        store.abort()
        raise
    who = repo.reflog_identity()
    tracked = f"{REMOTES}{remote.name}/"
    is_named = remote.name in remote_names(repo)
    for ref, oid in remote_refs.items():
        if ref.startswith(HEADS) and is_named:
            local = tracked + ref[len(HEADS) :]
            old = repo.refs.resolve(local)
            if old != oid:
                repo.refs.update(local, oid, old, who=who, message=f"fetch {remote.name}")
                result.updated.append(RefUpdate(local, old, oid, "ok"))
        elif ref.startswith(TAGS):
            old = repo.refs.resolve(ref)
            if old is None:
                repo.refs.update(ref, oid, None, who=who, message=f"fetch {remote.name}")
                result.updated.append(RefUpdate(ref, None, oid, "ok"))
            elif old != oid:
                result.updated.append(
                    RefUpdate(ref, old, oid, "rejected", "tag differs locally; kept yours")
                )
    if prune and is_named:
        present = {tracked + r[len(HEADS) :] for r in remote_refs if r.startswith(HEADS)}
        for ref, oid in repo.refs.list(tracked).items():
            if ref not in present:
                repo.refs.update(ref, None, oid, who=who, message=f"fetch --prune {remote.name}")
                result.pruned.append(ref)
    result.stats.requests = remote.counter.total_requests
    result.stats.bytes_received = remote.counter.bytes_received
    return result


def ensure_present(
    repo: Repository, ids: Sequence[ObjectId], *, progress: Progress | None = None
) -> int:
    """Fetch objects missing locally from the promisor remote of a partial clone (on demand)."""
    missing = [oid for oid in ids if not repo.store.has(oid)]
    if not missing:
        return 0
    name = repo.config.get("core.promisor")
    if not name:
        raise ObjectNotFound(
            f"{len(missing)} object(s) missing locally, e.g. {missing[0].hex()}, and no remote to fetch them from"
        )
    remote = open_remote(repo, name)
    try:
        stats = download(repo, remote, missing, progress=progress)
        repo.store.flush()
    except BaseException:
        repo.store.abort()
        raise
    finally:
        remote.close()
    return stats.objects


def chunk_ids(repo: Repository, entries: Iterable[object]) -> list[ObjectId]:
    """Data chunks needed to materialize file entries (manifests must be present)."""
    from dsrepo.objects.model import TreeEntry

    out: list[ObjectId] = []
    for e in entries:
        assert isinstance(e, TreeEntry)
        if e.kind == EntryKind.TREE:
            continue
        if e.manifest is not None:
            out.extend(c for c, _ in repo.store.get_manifest(e.manifest).chunks)
        else:
            out.append(e.id)
    return out


# ---------------------------------------------------------------- pull, clone, get


def clone(
    url: str,
    directory: str | None = None,
    *,
    branch: str | None = None,
    only: Sequence[str] | None = None,
    s3: S3Options | None = None,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> Repository:
    from dsrepo.dvcs.checkout import apply_files
    from dsrepo.dvcs.repository import Repository
    from dsrepo.remotes.urls import parse_url

    _scheme, location, prefix = parse_url(url)
    name = directory or Path(prefix or location).name or "dataset"
    target = Path(name).absolute()
    if target.exists() and any(target.iterdir()):
        raise StateError(f"destination {target} exists and is not empty")
    created = not target.exists()
    try:
        repo = Repository.init(target, branch=branch or "main")
        url = normalize_url(url)
        add_remote(
            repo,
            "origin",
            url,
            endpoint_url=s3.endpoint_url if s3 else None,
            region=s3.region if s3 else None,
            profile=s3.profile if s3 else None,
        )
        assert repo.config.local is not None
        if only:
            repo.config.local.set("core.sparse", json.dumps(list(only)))
            repo.config.local.set("core.promisor", "origin")
        fetch(repo, "origin", jobs=jobs, progress=progress)
        heads = repo.refs.list(f"{REMOTES}origin/")
        if not heads:
            return repo  # an empty remote: an empty clone
        chosen = branch or (
            "main" if f"{REMOTES}origin/main" in heads else next(iter(heads))[len(REMOTES) + 7 :]
        )
        tip = heads.get(f"{REMOTES}origin/{chosen}")
        if tip is None:
            raise UnknownRevision(f"the remote has no branch {chosen!r}")
        who = repo.reflog_identity()
        repo.refs.update(HEADS + chosen, tip, None, who=who, message=f"clone: from {url}")
        set_upstream(repo, chosen, "origin")
        repo.refs.set_symbolic("HEAD", HEADS + chosen, who=who, message="clone")
        # HEAD already names the tip: materialize it over an empty index
        wt = repo.worktree
        apply_files(
            repo,
            wt,
            {},
            repo.flatten(repo.commit_tree(tip)),
            commit=tip,
            force=False,
            progress=progress,
        )
        return repo
    except BaseException:
        import shutil

        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:  # it was empty: leave it empty (no half-made .dsrepo blocking a retry)
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def pull(
    repo: Repository,
    remote_name: str | None = None,
    branch: str | None = None,
    *,
    strategy: object = None,
    progress: Progress | None = None,
) -> object:
    from dsrepo.dvcs.merging import merge

    up = upstream_of(repo, repo.head_branch())
    name = (
        remote_name
        or (up[0] if up else None)
        or ("origin" if "origin" in remote_names(repo) else None)
    )
    if name is None:
        raise RepositoryError(
            "no remote to pull from: name one, or set an upstream by cloning or pushing"
        )
    if name not in remote_names(repo):
        raise RepositoryError(
            f"pull needs a configured remote, not {name!r}: add it with 'dsrepo remote add NAME "
            "URL' (fetch and push also accept a URL)"
        )
    fetch(repo, name, progress=progress)
    if branch:
        ref = f"{REMOTES}{name}/{branch}"
    elif up and up[0] == name:
        ref = up[1]
    else:
        current = repo.head_branch()
        if current is None:
            raise StateError("HEAD is detached: name the branch to pull")
        ref = f"{REMOTES}{name}/{current[len(HEADS) :]}"
    if repo.refs.resolve(ref) is None:
        raise UnknownRevision(
            f"the remote {name!r} has no branch {ref[len(REMOTES) + len(name) + 1 :]!r}"
        )
    from dsrepo.dvcs.merge import Strategy

    return merge(
        repo, repo.worktree, [ref], strategy=strategy if isinstance(strategy, Strategy) else None
    )


def cache_dir() -> Path:
    import os

    env = os.environ.get("DSREPO_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dsrepo" / "cache"


def get(
    url: str,
    into: str,
    *,
    rev: str | None = None,
    only: Sequence[str] | None = None,
    s3: S3Options | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> object:
    """Materialize a version of a remote dataset into ``into`` through a user-level cache, so the
    same bytes are never downloaded twice on one machine."""
    from dsrepo.dvcs.checkout import match_only, materialize_into
    from dsrepo.dvcs.repository import Repository

    root = cache_dir()
    try:
        cache = Repository.open(root, search_parents=False)
    except RepositoryError:
        cache = Repository.init(root)
    url = normalize_url(url)
    remote = Remote(cache, url, url, s3)
    try:
        _fetch_metadata(cache, remote)
        refs = remote.refs.list("refs/")
        name = rev or "main"
        target = refs.get(HEADS + name) or refs.get(TAGS + name)
        if target is None:
            try:
                target = from_hex(name) if len(name) == 64 else None
            except Exception:
                target = None
        if target is None or not cache.store.has(target):
            raise UnknownRevision(f"{url} has no branch, tag or commit {name!r}")
        _, commit = _tag_objects(cache, target)
        want = match_only(list(only)) if only else None
        _, chunks = reachable_objects(cache, [commit], set(), want_data=want)
        # only the target version's files, not its history
        files = {
            p: e
            for p, e in cache.flatten(cache.commit_tree(commit)).items()
            if want is None or want(p)
        }
        needed = chunk_ids(cache, files.values())
        download(cache, remote, needed, progress=progress)
        cache.store.flush()
        who = cache.reflog_identity()
        key = "refs/cache/" + blake3(url.encode()).hexdigest()[:16] + "/" + commit.hex()
        cache.refs.update(key, commit, None, who=who, message=f"get {url}", check_old=False)
        del chunks
        return materialize_into(
            cache, commit.hex(), Path(into), only=only, force=force, progress=progress
        )
    except BaseException:
        cache.store.abort()
        raise
    finally:
        remote.close()
        cache.close()
