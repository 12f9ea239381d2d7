"""The store behind the remote API: what clients may read, and what they may write.

:class:`ReceivingStore` serves a repository or a bare remote. Clients see only the layout a
remote has (``format``, ``packs/``, ``refs/heads/``, ``refs/tags/``); everything else in the
store (the server's own ``serve/`` folder, a working copy's index, config, logs, remote-tracking
refs) is neither listed nor readable. Writes are checked before they land:

- ``format``: created once, if absent, with a valid format marker; never replaced.
- ``packs/N.pack``: created if absent (an orphan, ignored by readers, until its index comes).
- ``packs/N.idx``: accepted only once the pack is there and verifies against it (every record
  where the index says, every object decompressing and re-hashing to its id, structured objects
  decoding canonically: a tree naming ``..`` never passes); a pack that fails is deleted.
- ``refs/heads/*``, ``refs/tags/*``: moved only by compare-and-swap, and only to a target whose
  whole closure is on the server (walked with :class:`~dsrepo.dvcs.integrity.Closure` from the
  new target, stopping at commits already complete, checking presence, types and sizes), under
  the protected-ref rules of :class:`~dsrepo.server.config.ServeConfig`.
- nothing is deleted, and no other key is written.

:class:`PlainStore` is the bare backend contract over HTTP with none of this (for testing).
"""

from __future__ import annotations

import contextlib
import threading

from blake3 import blake3

from dsrepo.dvcs.bare import BareRepository
from dsrepo.dvcs.errors import RepositoryError
from dsrepo.dvcs.graph import ancestors, is_ancestor
from dsrepo.dvcs.integrity import MAX_TAG_CHAIN, Closure, summary
from dsrepo.dvcs.lock import gc_lock
from dsrepo.dvcs.refnames import HEADS, TAGS, check_refname
from dsrepo.dvcs.refs import RefStore
from dsrepo.errors import DsrepoError
from dsrepo.objects import layout
from dsrepo.objects.chunking import RepoFormat
from dsrepo.objects.errors import ObjectError
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import ObjectType
from dsrepo.objects.pack import decode_index
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.base import Backend, KeyInfo
from dsrepo.remotes.errors import KeyConflict, KeyNotFound
from dsrepo.remotes.keys import validate_key, validate_prefix
from dsrepo.server.config import SERVE_DIR, Layout, ServeConfig, Served

LIST_PAGE = 1000
GC_PREFIX = "gc/"
"""The records of a remote's garbage collection (docs/gc.md): readable, so pushers see packs
scheduled for deletion, never written by clients."""
VERIFY_SLOTS = 4
GC_WAIT = 20.0
"""Seconds a write waits for a running local gc before the client is told to retry (503)."""


class Forbidden(DsrepoError):
    """A write the server never accepts on this key (HTTP 403)."""


class RefRefused(DsrepoError):
    """A ref update refused by the rules (HTTP 409)."""

    exit_code = 5


class UploadInvalid(DsrepoError):
    """An upload that fails verification (HTTP 422)."""

    exit_code = 7


def value_tag(value: bytes) -> str:
    """The entity tag of a value: its BLAKE3 in hex (what ``If-Match`` names)."""
    return blake3(value).hexdigest()


class PlainStore:
    """A backend served as is: every key, every verb (but the server's own folder)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def close(self) -> None:
        self.backend.close()

    # ------------------------------------------------------------ reading

    def visible(self, key: str) -> bool:
        return not key.startswith(f"{SERVE_DIR}/")

    def stat(self, key: str) -> KeyInfo:
        validate_key(key)
        if not self.visible(key):
            raise KeyNotFound(f"key {key!r} not found")
        return self.backend.stat(key)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        validate_key(key)
        if not self.visible(key):
            raise KeyNotFound(f"key {key!r} not found")
        return self.backend.get(key, offset, length)

    def list(self, prefix: str, start_after: str | None, limit: int) -> list[KeyInfo]:
        """Up to ``limit`` visible keys (pages are filled past hidden keys)."""
        validate_prefix(prefix)
        out: list[KeyInfo] = []
        after = start_after
        while len(out) < limit:
            page = self.backend.list(prefix, after, LIST_PAGE)
            out.extend(i for i in page if self.visible(i.key))
            if len(page) < LIST_PAGE:
                break
            after = page[-1].key
        return out[:limit]

    def _read(self, key: str) -> bytes | None:
        try:
            return self.backend.get(key)
        except KeyNotFound:
            return None

    @staticmethod
    def _check_expected(key: str, current: bytes | None, expected: str | None) -> None:
        if (current is None) != (expected is None) or (
            current is not None and value_tag(current) != expected
        ):
            state = "does not exist" if current is None else "holds another value"
            raise KeyConflict(f"compare-and-swap on {key!r} lost: the key {state}")

    # ------------------------------------------------------------ writing

    def _writable(self, key: str) -> str:
        validate_key(key)
        if not self.visible(key):
            raise Forbidden(f"{key!r} belongs to the server")
        return key

    def put(self, key: str, data: bytes) -> None:
        self.backend.put(self._writable(key), data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.backend.put_if_absent(self._writable(key), data)

    def delete(self, key: str) -> None:
        self.backend.delete(self._writable(key))

    def swap(self, key: str, expected: str | None, new: bytes | None) -> None:
        """Set ``key`` to ``new`` (None: delete) if its value's tag is ``expected`` (None: the
        key must not exist). Raises KeyConflict."""
        current = self._read(self._writable(key))
        self._check_expected(key, current, expected)
        self.backend.compare_and_swap(key, current, new)


class ReceivingStore(PlainStore):
    """A served repository or bare remote: the checks of the module docstring."""

    def __init__(self, served: Served, backend: Backend, config: ServeConfig) -> None:
        super().__init__(backend)
        self.served = served
        self.config = config
        self._lock = threading.Lock()  # the object store's creation
        self._ref_lock = threading.Lock()  # ref updates, one at a time
        self._pack_locks = [threading.Lock() for _ in range(64)]
        """A pack's upload and its index's verification never interleave (striped by name)."""
        self._verifying = threading.BoundedSemaphore(VERIFY_SLOTS)
        """Packs verified at once: each is held whole in memory while it is checked."""
        self._repo: BareRepository | None = None

    def close(self) -> None:
        with self._lock:
            if self._repo is not None:
                self._repo.store.close()
        super().close()

    def visible(self, key: str) -> bool:
        return key == layout.FORMAT_KEY or key.startswith(
            (layout.PACKS_PREFIX, HEADS, TAGS, GC_PREFIX)
        )

    def repo(self) -> BareRepository:
        """The objects and refs served (made on first use: a new remote has no format yet)."""
        with self._lock:
            if self._repo is None:
                try:
                    fmt = ObjectStore.read_format(self.backend)
                except ObjectError:
                    raise Forbidden(
                        "this remote has no format marker yet: a push writes it first"
                    ) from None
                index = LocationIndex(self.served.state_dir / "objects.sqlite")
                store = ObjectStore(self.backend, index, fmt)
                store.sync_index()
                self._repo = BareRepository(self.backend, store, RefStore(self.backend, None))
            return self._repo

    # ------------------------------------------------------------ writing

    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        raise Forbidden(
            f"{key!r} cannot be replaced: packs are written with If-None-Match, refs moved by "
            "compare-and-swap"
        )

    def delete(self, key: str) -> None:
        validate_key(key)
        raise Forbidden(f"{key!r} cannot be deleted over HTTP")

    def put_if_absent(self, key: str, data: bytes) -> bool:
        validate_key(key)
        if key == layout.FORMAT_KEY:
            try:
                RepoFormat.from_bytes(data, "the uploaded format marker")
            except ObjectError as exc:
                raise UploadInvalid(str(exc)) from None
            return self.backend.put_if_absent(key, data)
        name = layout.pack_name_from_pack_key(key)
        if name is not None:
            return self._receive_pack(name, data)
        name = layout.pack_name_from_index_key(key)
        if name is not None:
            return self._receive_index(name, data)
        if key.startswith((HEADS, TAGS)):
            try:
                self.swap(key, None, data)
            except KeyConflict:
                return False
            return True
        raise Forbidden(f"{key!r} is not a key clients may write")

    def _gc_guard(self) -> contextlib.AbstractContextManager[None]:
        """In a repository with a working copy, every write holds ``.dsrepo/gc.lock`` shared,
        as the local commands do, so a local ``dsrepo gc`` never runs in the middle of one (a
        bare remote's collector coordinates through ``gc/`` records instead, docs/gc.md)."""
        if self.served.layout != Layout.REPOSITORY:
            return contextlib.nullcontext()
        return gc_lock(self.served.store).shared(GC_WAIT)

    def _pack_lock(self, name: str) -> threading.Lock:
        return self._pack_locks[int(name[:8], 16) % len(self._pack_locks)]

    def _receive_pack(self, name: str, data: bytes) -> bool:
        """Store a pack (not read by anyone until its index is accepted). An unindexed pack
        already there with other bytes (an interrupted or hostile upload) is replaced, so it
        cannot make the honest pack's index fail."""
        self.repo()
        key = layout.pack_key(name)
        with self._gc_guard(), self._pack_lock(name):
            if self.backend.put_if_absent(key, data):
                return True
            if self._read(layout.index_key(name)) is not None or self._read(key) == data:
                return False
            self.backend.put(key, data)
            return True

    def _receive_index(self, name: str, data: bytes) -> bool:
        repo = self.repo()
        with self._gc_guard(), self._pack_lock(name):
            if self._read(layout.index_key(name)) is not None:
                return False
            try:
                pack_class, entries = decode_index(data, name)
            except ObjectError as exc:
                raise UploadInvalid(str(exc)) from None
            with self._verifying:
                pack = self._read(layout.pack_key(name))
                if pack is None:
                    raise UploadInvalid(f"index of pack {name} sent before the pack itself")
                try:
                    canonical = repo.store.verify_pack(
                        name, pack_class, entries, pack, f"uploaded pack {name}"
                    )
                except ObjectError as exc:
                    self.backend.delete(layout.pack_key(name))
                    raise UploadInvalid(f"{exc} (the pack was deleted)") from None
                del pack
            if canonical != data:
                raise UploadInvalid(f"index of pack {name} is not in canonical form")
            created = self.backend.put_if_absent(layout.index_key(name), canonical)
            if created:
                repo.store.index.add_pack(name, pack_class, entries)
            return created

    # ------------------------------------------------------------ refs

    def swap(self, key: str, expected: str | None, new: bytes | None) -> None:
        validate_key(key)
        if not key.startswith((HEADS, TAGS)):
            raise Forbidden(f"{key!r} is not a ref clients may update (refs/heads/, refs/tags/)")
        try:
            check_refname(key)
        except RepositoryError as exc:
            raise RefRefused(str(exc)) from None
        target = None if new is None else _ref_target(key, new)
        repo = self.repo()
        with self._gc_guard(), self._ref_lock:
            current = self._read(key)
            self._check_expected(key, current, expected)
            if current == new:
                return
            old = None if current is None else _ref_target(key, current, ours=True)
            self._check_rules(key, old, target)
            if target is not None:
                self._check_complete(repo, key, target)
                self._check_fast_forward(repo, key, old, target)
            self.backend.compare_and_swap(key, current, new)

    def _check_rules(self, key: str, old: ObjectId | None, new: ObjectId | None) -> None:
        if key.startswith(TAGS):
            tag = key[len(TAGS) :]
            if old is not None and self.config.is_protected_tag(tag):
                verb = "deleted" if new is None else "moved"
                raise RefRefused(
                    f"tag {tag} is protected: tags can be created, never moved or deleted "
                    f"(it would be {verb})"
                )
            return
        branch = key[len(HEADS) :]
        if new is None and self.config.is_fast_forward_only(branch):
            raise RefRefused(f"branch {branch} is protected: it cannot be deleted")
        if (
            self.served.layout == Layout.REPOSITORY
            and not self.config.allow_push_to_checked_out_branch
            and self._read(layout.HEAD_KEY) == f"ref: {key}\n".encode()
        ):
            raise RefRefused(
                f"branch {branch} is checked out in the served working copy: push another "
                "branch (or set allow_push_to_checked_out_branch in the server's config.toml)"
            )

    def _check_fast_forward(
        self, repo: BareRepository, key: str, old: ObjectId | None, new: ObjectId
    ) -> None:
        if old is None or not key.startswith(HEADS):
            return
        branch = key[len(HEADS) :]
        if not self.config.is_fast_forward_only(branch):
            return
        try:
            ok = is_ancestor(repo.parents_of, old.hex(), new.hex())
        except ObjectError:
            ok = False
        if not ok:
            raise RefRefused(
                f"branch {branch} accepts only fast-forwards: {new.hex()[:12]} does not descend "
                f"from {old.hex()[:12]} (fetch and merge first)"
            )

    @staticmethod
    def _complete_commits(repo: BareRepository) -> set[str]:
        """Commits complete on the server: the ancestors of its refs now (history under a ref
        is complete). Computed afresh for each update rather than cached: a garbage collection
        may since have deleted what a ref no longer reaches."""
        tips = []
        for oid in repo.refs.list("refs/").values():
            try:
                for _ in range(MAX_TAG_CHAIN):
                    if repo.store.object_type(oid) != ObjectType.TAG:
                        break
                    oid = repo.store.get_tag(oid).target
                if repo.store.object_type(oid) == ObjectType.COMMIT:
                    tips.append(oid.hex())
            except (ObjectError, RepositoryError):
                continue
        return set(ancestors(repo.parents_of, tips)) if tips else set()

    def _check_complete(self, repo: BareRepository, key: str, target: ObjectId) -> None:
        """Refuse ``target`` unless everything it leads to is on the server, of the type and
        size its referrer says."""
        stop = self._complete_commits(repo)
        for attempt in range(2):
            closure = Closure(repo.store, stop=stop, missing_ok=False)
            closure.add_root(key, target, any_type=key.startswith(TAGS))
            closure.run()
            closure.check_chunks()
            if key.startswith(HEADS) and not closure.problems:
                t = repo.store.object_type(target)
                if t != ObjectType.COMMIT:
                    closure.problems.append(f"{key}: names {t.label} {target.hex()}, not a commit")
            if not closure.problems:
                return
            if attempt == 0:
                repo.store.sync_index()  # packs written past this server (a local commit)
        raise RefRefused(
            f"refusing to point {key} at {target.hex()[:12]}: {summary(closure.problems)}"
        )


def _ref_target(key: str, value: bytes, *, ours: bool = False) -> ObjectId:
    """The id a ref value names: exactly ``<64 hex>\\n``."""
    text = value.decode("ascii", "replace")
    if len(value) == 65 and text.endswith("\n"):
        try:
            return from_hex(text[:64])
        except (ValueError, ObjectError):
            pass
    if ours:
        raise RefRefused(f"{key} on the server is not a plain ref; it cannot be updated over HTTP")
    raise UploadInvalid(f"invalid value for {key}: expected 64 lowercase hex digits and a newline")


def open_store(served: Served, backend: Backend, config: ServeConfig) -> PlainStore:
    """The store the remote API serves for ``served``."""
    return PlainStore(backend) if config.plain_store else ReceivingStore(served, backend, config)


__all__ = [
    "Forbidden",
    "PlainStore",
    "ReceivingStore",
    "RefRefused",
    "UploadInvalid",
    "open_store",
    "value_tag",
]
