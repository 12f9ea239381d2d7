"""A remote opened for transfer: a bare repository over the remote's backend.

Its object store keeps the remote's pack indexes in a local cache (they are immutable, so each
is downloaded once), which makes "what does the remote lack" a set difference, not a request
per object. Every request goes through a :class:`CountingBackend`, so push and fetch can report
requests and bytes moved.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from blake3 import blake3

from dsrepo.dvcs.bare import BareRepository
from dsrepo.dvcs.errors import RemoteError, RemoteNotFound
from dsrepo.dvcs.refs import RefStore
from dsrepo.dvcs.remote_config import is_remote, normalize_url, remote_spec
from dsrepo.objects.chunking import RepoFormat
from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.store import DEFAULT_PACK_TARGET, ObjectStore
from dsrepo.objects.transfer import CopyStats, exclude_packs
from dsrepo.remotes.counting import CountingBackend
from dsrepo.remotes.urls import InvalidRemoteUrl, S3Options, open_backend, parse_url

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


@dataclass
class TransferStats:
    """What one push or fetch moved."""

    objects: int = 0
    """Objects copied (each verified on arrival)."""
    bytes: int = 0
    """Their stored (compressed) bytes."""
    packs: int = 0
    """Packs written on the receiving side."""
    requests: int = 0
    """Requests sent to the remote's backend."""
    bytes_sent: int = 0
    bytes_received: int = 0


class Remote(BareRepository):
    """A remote's objects and refs. ``name`` is the configured name, or the URL itself."""

    def __init__(
        self, name: str, url: str, counter: CountingBackend, store: ObjectStore, refs: RefStore
    ) -> None:
        super().__init__(counter, store, refs)
        self.name = name
        self.url = url
        self.counter = counter
        self.working = False
        """A local repository with a working copy, read through its ``.dsrepo`` store."""

    @classmethod
    def open(
        cls,
        name: str,
        url: str,
        s3: S3Options | None,
        *,
        cache: Path,
        create_with: RepoFormat | None = None,
        writers: int = 1,
        pack_target: int = DEFAULT_PACK_TARGET,
    ) -> Remote:
        """Open the remote at ``url``; with ``create_with``, make an empty location a remote of
        that format (a location holding anything else is refused, never written to). A local
        working repository (a teammate's) is read through its ``.dsrepo`` store; a push into
        one is refused."""
        store_url = working_repository_store(url)
        if store_url is not None and create_with is not None:
            raise RemoteError(
                f"{url} is a working repository (it has a working copy, whose branch a push "
                "would move under it): fetch and pull from it work; to share your versions, "
                "push to a bare remote (an empty directory, S3 or 'dsrepo serve') or let its "
                "owner pull from you"
            )
        backend_url = store_url or url
        counter = CountingBackend(open_backend(backend_url, s3=s3, create=create_with is not None))
        try:
            fmt = _read_or_create_format(counter, url, create_with)
            cache.mkdir(parents=True, exist_ok=True)
            index = LocationIndex(cache / f"{blake3(url.encode()).hexdigest()[:24]}.sqlite")
            store = ObjectStore(counter, index, fmt, writers=writers, pack_target=pack_target)
        except BaseException:
            counter.close()
            raise
        remote = cls(name, url, counter, store, RefStore(counter, None))
        remote.working = store_url is not None
        return remote

    def stats(self, copied: CopyStats) -> TransferStats:
        """What a transfer moved: ``copied`` objects plus the requests and bytes counted."""
        return TransferStats(
            objects=copied.objects,
            bytes=copied.bytes,
            packs=copied.packs,
            requests=self.counter.total_requests,
            bytes_sent=self.counter.bytes_sent,
            bytes_received=self.counter.bytes_received,
        )

    def read_refs(
        self, prefixes: tuple[str, ...] = ("refs/",), *, exclude: Collection[str] = ()
    ) -> dict[str, ObjectId]:
        """The remote's refs under ``prefixes``, then its pack indexes, in that order: a pusher
        writes packs and indexes before it moves a ref, so every pack that a ref read here can
        reach is listed by the indexes read after it (the other order can see a new ref
        without its packs, which looks like damage). Packs in ``exclude`` (doomed by a
        collection: a push must not rely on them) are left out of the index cache."""
        refs = {r: o for r, o in self.refs.list("refs/").items() if r.startswith(prefixes)}
        if exclude:
            exclude_packs(self.store, exclude)
        else:
            self.store.sync_index()
        return refs

    @property
    def where(self) -> str:
        return f"remote {self.url}"

    def check_conditional_writes(self) -> None:
        """Refuse ref updates on servers that ignore conditional writes (concurrent pushes could
        then overwrite each other silently)."""
        if not self.url.startswith("s3://"):
            return  # only S3 servers may silently ignore the conditions (and boto3 costs 0.2 s)
        from dsrepo.remotes.s3 import S3Backend, probe_conditional_writes
        from dsrepo.remotes.wrapper import find_backend

        s3 = find_backend(self.counter, S3Backend)
        if s3 is not None and not probe_conditional_writes(s3):
            raise RemoteError(
                f"{self.url}: the server ignores conditional writes (If-None-Match/If-Match), so a "
                "concurrent push could silently overwrite a ref; refusing to update refs there"
            )


def _read_or_create_format(
    backend: CountingBackend, url: str, create_with: RepoFormat | None
) -> RepoFormat:
    try:
        return ObjectStore.read_format(backend)
    except FormatError as exc:
        if "no format marker" not in str(exc):
            raise RemoteError(f"remote {url}: {exc}") from None
        if create_with is None:
            raise RemoteError(
                f"{url} is not a dsrepo remote (no format marker); push to it first"
            ) from None
        if backend.list("", limit=1):
            raise RemoteError(
                f"refusing to use {url}: it holds other data and no dsrepo format marker"
            ) from None
        ObjectStore.initialize(backend, create_with)
        return create_with


def working_repository_store(url: str) -> str | None:
    """The ``.dsrepo`` folder to read when ``url`` is a local repository with a working copy
    (``remote add B ../dsB``), as git reads ``../dsB/.git``; None for anything else."""
    try:
        scheme, location, _ = parse_url(url)
    except InvalidRemoteUrl:
        return None
    if scheme != "file":
        return None
    root = Path(location)
    try:
        if (root / "format").is_file() or not (root / ".dsrepo" / "format").is_file():
            return None
    except OSError:  # a name too long...: not a repository; opening it says why
        return None
    return str(root / ".dsrepo")


def resolve_remote(repo: Repository, name_or_url: str) -> tuple[str, str, S3Options | None]:
    """(name, url, S3 options) for a configured remote name, or a URL or path used directly."""
    if is_remote(repo, name_or_url):
        spec = remote_spec(repo, name_or_url)
        return spec.name, spec.url, spec.s3
    if "://" in name_or_url or name_or_url.startswith(("/", ".", "~")):
        url = normalize_url(name_or_url)
        return url, url, None
    raise RemoteNotFound(f"no such remote {name_or_url!r} (add it with 'dsrepo remote add')")


def open_remote(
    repo: Repository,
    name_or_url: str,
    *,
    create: bool = False,
    writers: int = 1,
    pack_target: int = DEFAULT_PACK_TARGET,
) -> Remote:
    """Open a configured remote, or a URL or path, with its index cache in ``repo``."""
    name, url, s3 = resolve_remote(repo, name_or_url)
    return Remote.open(
        name,
        url,
        s3,
        cache=repo.dsdir / "cache" / "remotes",
        create_with=repo.store.format if create else None,
        writers=writers,
        pack_target=pack_target,
    )
