"""``get URL[@REV] DIR``: materialize one version of a remote dataset for a job, through a
user-level cache repository (``$DSREPO_CACHE_DIR``, default ``~/.cache/dsrepo/cache``), so the
same bytes are never downloaded twice on one machine. Only the version's own files are fetched,
not its history's; a ref under ``refs/cache/`` keeps what was fetched reachable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from blake3 import blake3

from dsrepo import environment
from dsrepo.dvcs.checkout import CheckoutResult, materialize_into
from dsrepo.dvcs.errors import UnknownRevision
from dsrepo.dvcs.fetch import check_received, receive_history
from dsrepo.dvcs.lock import gc_lock
from dsrepo.dvcs.pathmatch import match_only
from dsrepo.dvcs.reachability import chunk_ids
from dsrepo.dvcs.refnames import HEADS, TAGS
from dsrepo.dvcs.remote import Remote
from dsrepo.dvcs.remote_config import normalize_url
from dsrepo.objects.errors import InvalidId
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.model import ObjectType
from dsrepo.objects.transfer import Progress, copy_objects
from dsrepo.remotes.urls import S3Options

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

CACHE_REFS = "refs/cache/"


def split_revision(url: str) -> tuple[str, str | None]:
    """``URL@REV`` → (URL, REV); the ``@`` must be in the last path component."""
    if "@" in url.rsplit("/", 1)[-1]:
        base, rev = url.rsplit("@", 1)
        return base, rev or None
    return url, None


def cache_dir() -> Path:
    return environment.cache_dir()


def get(
    open_cache: Callable[[Path], Repository],
    url: str,
    into: str | Path,
    *,
    rev: str | None = None,
    only: Sequence[str] | None = None,
    s3: S3Options | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> CheckoutResult:
    url = normalize_url(url)
    with (
        open_cache(cache_dir()) as cache,
        gc_lock(cache.dsdir).shared(cache.gc_lock_timeout),  # objects written, then a ref
        Remote.open(url, url, s3, cache=cache.dsdir / "cache" / "remotes") as remote,
    ):
        refs = remote.read_refs()
        name = rev or "main"
        ref = next((r for r in (HEADS + name, TAGS + name) if r in refs), None)
        if ref is not None:
            root = (ref, refs[ref])
            receive_history(cache, remote, {ref: refs[ref]})
        else:
            oid = _full_id(cache, name)
            if oid is None:
                raise UnknownRevision(f"{url} has no branch, tag or commit {name!r}")
            root = (f"commit {name}", oid)
        # the version and its history, as far as they are new to the cache, checked before any
        # data moves and the cache ref names them
        closure = check_received(cache, remote, dict([root]), data=False)
        commit = closure.tips[root[0]]
        want = match_only(list(only)) if only else None
        files = [e for p, e in cache.walk_tree(_tree(cache, commit)) if want is None or want(p)]
        needed = chunk_ids(cache, files)
        copy_objects(remote.store, cache.store, needed, progress=progress, where=remote.where)
        key = CACHE_REFS + blake3(url.encode()).hexdigest()[:16] + "/" + commit.hex()
        who = cache.reflog_identity()
        cache.refs.update(key, commit, None, who=who, message=f"get {url}", check_old=False)
        return materialize_into(
            cache, commit.hex(), Path(into), only=only, force=force, progress=progress
        )


def _full_id(cache: Repository, name: str) -> ObjectId | None:
    """A full 64-character commit (or tag) id already in the cache."""
    if len(name) != 64:
        return None
    try:
        oid = from_hex(name)
    except InvalidId:
        return None
    if not cache.store.has(oid):
        return None
    if cache.store.object_type(oid) not in (ObjectType.COMMIT, ObjectType.TAG):
        raise UnknownRevision(f"{name} is a {cache.store.object_type(oid).label}, not a commit")
    return oid


def _tree(cache: Repository, commit: ObjectId) -> ObjectId:
    return cache.store.get_commit(commit).tree
