"""``get URL[@REV] DIR``: a read-only local copy of one version of a remote dataset, through a
user-level cache (``$DSREPO_CACHE_DIR``, default ``~/.cache/dsrepo/cache``), so the same bytes
are never downloaded twice on one machine and a second copy of a version costs no data bytes.

The cache directory holds:

- ``.dsrepo/``: a repository of its own. Only a version's own files are fetched into it, not its
  history's; a ref ``refs/cache/<url hash>/<commit>`` keeps what was fetched reachable.
- ``files/<id[:2]>/<id>`` (``<id>x`` for an executable): each file of a version that was got,
  materialized once, verified, read-only, with a fixed mtime (a write through a hard link moves
  it, and the file is then rewritten from the store, never served). Copies are linked from here
  (:mod:`dsrepo.dvcs.getfolder` places them, :mod:`dsrepo.dvcs.linkcopy` links or copies).
- ``entries/<url hash>-<commit>.json``: one per version got (URL, revision, files, bytes); its
  mtime is when it was last used. ``dsrepo cache ls``/``prune`` read them
  (:mod:`dsrepo.dvcs.usercache`).
- ``remotes/<url hash>.json``: the remote's refs as last read, so a revision still resolves
  while the remote is unreachable (a version fully in the cache is then served, with a warning).
- ``copies/<url hash>-<commit>/``: the copies ``dsrepo.get_local_copy`` makes without a folder.
- ``dirs/<hash of a folder's real path>.json``: what ``get`` wrote into that folder (each path's
  content ids), so that getting another version into it replaces and removes those files (stale
  files are removed, and counted) while a file it does not list, or one changed since, is
  refused (exit 6) unless ``force``. The folder itself holds the version's files and nothing
  else.

REV is any revision form, resolved against the remote's refs (``HEAD`` and ``latest``: its
default branch, ``main`` else the first branch by name) and the metadata copied into the cache;
with the remote unreachable (not when it refuses us), against the refs read last time.

Everything runs holding the cache's gc lock shared, taken before the cache is opened
(:func:`open_locked`): ``cache prune`` holds it exclusively, so it never deletes what a ``get`` is
placing, nor a pack between a get's look at the location index and its use of it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from blake3 import blake3

from dsrepo import environment
from dsrepo.dvcs.checkout import CheckoutResult
from dsrepo.dvcs.errors import (
    PathError,
    RefConflict,
    UnknownRevision,
    path_errors,
)
from dsrepo.dvcs.fetch import check_received, receive_history
from dsrepo.dvcs.getfolder import area_name, place, write_json
from dsrepo.dvcs.lock import gc_lock
from dsrepo.dvcs.pathmatch import match_only
from dsrepo.dvcs.reachability import chunk_ids
from dsrepo.dvcs.refnames import HEADS, TAGS
from dsrepo.dvcs.remote import Remote
from dsrepo.dvcs.remote_config import normalize_url
from dsrepo.dvcs.revisions import resolve_commit, split_suffixes
from dsrepo.objects.errors import ObjectError, StorageUnavailable
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry
from dsrepo.objects.transfer import Progress, copy_objects
from dsrepo.remotes.errors import BackendError
from dsrepo.remotes.http import AuthenticationFailed, PermissionDenied
from dsrepo.remotes.urls import S3Options

if TYPE_CHECKING:
    from dsrepo.dvcs.bare import BareRepository
    from dsrepo.dvcs.repository import Repository
    from dsrepo.objects.store import ObjectStore

CACHE_REFS = "refs/cache/"
LATEST = "latest"
LINK_METHODS = ("auto", "reflink", "hardlink", "copy")


@dataclass
class GetResult(CheckoutResult):
    """What :func:`get` did. ``written`` lists the files placed (``linked`` of them by a reflink
    or hard link, none of their bytes copied), ``removed`` the stale files removed, ``kept`` the
    files already right; ``downloaded``: data bytes fetched from the remote (0 when the cache
    held them); ``warning``: set when the remote was unreachable and the cache served."""

    path: Path = Path()
    url: str = ""
    linked: int = 0
    methods: dict[str, int] = field(default_factory=dict)
    downloaded: int = 0
    warning: str | None = None


def split_revision(url: str) -> tuple[str, str | None]:
    """``URL@REV`` → (URL, REV); the ``@`` must be in the last path component."""
    if "@" in url.rsplit("/", 1)[-1]:
        base, rev = url.rsplit("@", 1)
        return base, rev or None
    return url, None


def cache_dir() -> Path:
    return environment.cache_dir()


def url_key(url: str) -> str:
    return blake3(url.encode()).hexdigest()[:16]


def get(
    open_cache: Callable[[Path], Repository],
    url: str,
    into: str | Path | None,
    *,
    rev: str | None = None,
    only: Sequence[str] | None = None,
    s3: S3Options | None = None,
    force: bool = False,
    link: str = "auto",
    mutable: bool = False,
    progress: Progress | None = None,
) -> GetResult:
    """Make ``into`` exactly version ``rev`` (any revision form; default and ``latest``: the
    remote's default branch, ``main`` else its first branch) of the remote at ``url``; with
    ``into`` None, a read-only copy inside the cache. See the module docstring."""
    url = normalize_url(url)
    rev = rev or LATEST
    if ":" in rev:
        raise UnknownRevision(f"get takes a version, not a path: {rev!r}")
    root = cache_dir()
    if link not in LINK_METHODS:
        raise PathError(f"unknown link method {link!r} (one of {', '.join(LINK_METHODS)})")
    if mutable and link == "hardlink":
        raise PathError("--copy gives files of their own: it cannot use hard links")
    with open_locked(open_cache, root, exclusive=False) as cache:  # objects written, then a ref
        commit, files, downloaded, warning = _fetch(cache, root, url, rev, only, s3, progress)
        key = f"{url_key(url)}-{commit.hex()}"
        target = root / "copies" / key if into is None else Path(into)
        result = GetResult(commit, path=target.absolute(), url=url, warning=warning)
        result.downloaded = downloaded
        _record(root, key, url, rev, commit, files)
        place(
            cache,
            root,
            files,
            result,
            rev,
            force=force,
            link=link,
            mutable=mutable,
            progress=progress,
        )
        return result


@contextlib.contextmanager
def open_locked(
    open_cache: Callable[[Path], Repository], root: Path, *, exclusive: bool
) -> Iterator[Repository]:
    """The cache repository at ``root`` (created if missing), opened holding its gc lock: shared
    for a get, exclusively for a prune; closed before the lock is released. Waits as long as it
    takes (gets and prunes wait for each other).

    Opening syncs the location index (a SQLite file every process shares) with the packs
    present; only gc deletes packs, so under the lock what that sync leaves stays true until
    the cache is closed. Opened before taking the lock, a get could go on trusting rows of
    packs a prune's gc deleted meanwhile (a gc whose own index could not write the shared file,
    having lost the race to create it, leaves them there): it then copied nothing of what they
    listed, and failed on reading it."""
    dsdir = root.absolute() / ".dsrepo"  # made before the repository: it holds the lock file
    with path_errors(root, "directory"):
        dsdir.mkdir(parents=True, exist_ok=True)
    lock = gc_lock(dsdir)
    with (lock.exclusive if exclusive else lock.shared)(None), open_cache(root) as cache:
        yield cache


# ---------------------------------------------------------------- revisions and fetching


class _Refs:
    """A remote's refs as :func:`~dsrepo.dvcs.revisions.resolve_name` reads them; ``HEAD`` is
    the default branch."""

    def __init__(self, refs: Mapping[str, ObjectId]) -> None:
        self.refs = dict(refs)

    def default(self) -> str | None:
        if HEADS + "main" in self.refs:
            return HEADS + "main"
        return next((r for r in sorted(self.refs) if r.startswith(HEADS)), None)

    def resolve(self, name: str) -> ObjectId | None:
        if name == "HEAD":
            branch = self.default()
            return None if branch is None else self.refs[branch]
        return self.refs.get(name)


@dataclass
class _View:
    refs: _Refs
    store: ObjectStore


def _normalize(rev: str, refs: Mapping[str, ObjectId]) -> str:
    base, ops = split_suffixes(rev)
    if base == LATEST and not any(r in refs for r in (HEADS + LATEST, TAGS + LATEST)):
        return "HEAD" + "".join(ops)
    return rev


def _resolve(cache: Repository, refs: Mapping[str, ObjectId], rev: str, url: str) -> ObjectId:
    view = _View(_Refs(refs), cache.store)
    if rev.startswith(("HEAD", "@")) and view.refs.default() is None:
        raise UnknownRevision(f"{url} has no branch")
    try:
        return resolve_commit(cast("BareRepository", view), rev)
    except UnknownRevision as exc:
        raise UnknownRevision(f"{url}: {exc}") from None


def _named_refs(refs: Mapping[str, ObjectId], rev: str) -> tuple[dict[str, ObjectId], bool]:
    """The refs whose history resolving ``rev`` may need: the one its base names (True), else
    every branch and tag (False: the commit may lie outside what they lead to)."""
    base, _ = split_suffixes(rev)
    view = _Refs(refs)
    if base in ("HEAD", "@"):
        branch = view.default()
        return ({branch: refs[branch]} if branch else {}), True
    for r in (base, f"refs/{base}", TAGS + base, HEADS + base):
        if r in refs:
            return {r: refs[r]}, True
    return {r: o for r, o in refs.items() if r.startswith((HEADS, TAGS))}, False


def _fetch(
    cache: Repository,
    root: Path,
    url: str,
    rev: str,
    only: Sequence[str] | None,
    s3: S3Options | None,
    progress: Progress | None,
) -> tuple[ObjectId, dict[str, TreeEntry], int, str | None]:
    want = match_only(list(only)) if only else None

    def version(commit: ObjectId) -> dict[str, TreeEntry]:
        tree = cache.store.get_commit(commit).tree
        files = {p: e for p, e in cache.walk_tree(tree) if want is None or want(p)}
        if only and not files:
            raise PathError(f"--only {' '.join(only)} matches no file in {rev}")
        return files

    with contextlib.ExitStack() as stack:
        try:
            remote = stack.enter_context(
                Remote.open(url, url, s3, cache=cache.dsdir / "cache" / "remotes")
            )
            refs = remote.read_refs()
        except (AuthenticationFailed, PermissionDenied):
            raise  # reached, and refused: not a reason to serve the cache
        except (BackendError, StorageUnavailable, OSError) as exc:
            return _offline(cache, root, url, rev, version, exc)
        rev = _normalize(rev, refs)
        named, direct = _named_refs(refs, rev)
        receive_history(cache, remote, named)
        # what the refs lead to, as far as it is new to the cache, checked before any data moves
        # and before a cache ref names it; REV~N of a ref is in what its ref leads to
        check_received(cache, remote, named, data=False)
        commit = _resolve(cache, refs, rev, url)
        if not direct:
            check_received(cache, remote, {rev: commit}, data=False)
        files = version(commit)
        needed = chunk_ids(cache, files.values())
        copied = copy_objects(
            remote.store, cache.store, needed, progress=progress, where=remote.where
        )
        _save_refs(root, url, refs)
        key = CACHE_REFS + url_key(url) + "/" + commit.hex()
        _name(cache, key, commit, url)
        return commit, files, copied.bytes, None
    raise AssertionError("unreachable")  # pragma: no cover


def _name(cache: Repository, key: str, commit: ObjectId, url: str) -> None:
    """Point cache ref ``key`` at ``commit``; another get naming the same version at the same
    moment is no conflict (they write the same value)."""
    if cache.refs.resolve(key) == commit:
        return
    try:
        who = cache.reflog_identity()
        cache.refs.update(key, commit, None, who=who, message=f"get {url}", check_old=False)
    except RefConflict:
        for _ in range(100):
            if cache.refs.resolve(key) == commit:
                return
            time.sleep(0.02)
        raise


def _offline(
    cache: Repository,
    root: Path,
    url: str,
    rev: str,
    version: Callable[[ObjectId], dict[str, TreeEntry]],
    exc: Exception,
) -> tuple[ObjectId, dict[str, TreeEntry], int, str | None]:
    """The remote is unreachable: serve ``rev`` if the cache resolves it and holds every byte."""
    refs = _load_refs(root, url)
    try:
        commit = _resolve(cache, refs, _normalize(rev, refs), url)
        files = version(commit)
    except (UnknownRevision, PathError, ObjectError, KeyError, ValueError):
        raise exc from None
    if cache.store.missing(chunk_ids(cache, files.values())):
        raise exc
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return commit, files, 0, f"{url} is unreachable ({reason}); served {rev} from the cache"


def _save_refs(root: Path, url: str, refs: Mapping[str, ObjectId]) -> None:
    data = {"url": url, "refs": {r: o.hex() for r, o in refs.items()}}
    write_json(root / "remotes" / f"{url_key(url)}.json", data)


def _load_refs(root: Path, url: str) -> dict[str, ObjectId]:
    try:
        data = json.loads((root / "remotes" / f"{url_key(url)}.json").read_text("utf-8"))
        return {str(r): from_hex(str(h)) for r, h in data["refs"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _record(
    root: Path, key: str, url: str, rev: str, commit: ObjectId, files: Mapping[str, TreeEntry]
) -> None:
    """The entry ``cache ls`` shows and ``cache prune`` evicts (merged with earlier partial
    gets of the same version); its mtime is the time of last use."""
    path = root / "entries" / f"{key}.json"
    try:
        old = json.loads(path.read_text("utf-8"))
        area = set(old.get("area", []))
        sizes = dict(old.get("sizes", {}))
    except (OSError, ValueError, AttributeError):
        area, sizes = set(), {}
    for e in files.values():
        if e.kind != EntryKind.SYMLINK:
            area.add(area_name(e))
            sizes[area_name(e)] = e.size
    data = {
        "url": url,
        "rev": rev,
        "commit": commit.hex(),
        "files": len(sizes),
        "bytes": sum(sizes.values()),
        "area": sorted(area),
        "sizes": sizes,
        "used": time.time(),
    }
    write_json(path, data)
