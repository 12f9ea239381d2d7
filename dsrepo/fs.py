"""An fsspec filesystem over dsrepo versions, so pandas, pyarrow, polars, DuckDB and Hugging Face
``datasets`` read ``dsrepo://`` URLs with no glue (registered through the ``fsspec.specs`` entry
point).

URLs::

    dsrepo://LOCATION@REV/PATH         LOCATION: a local repository's root or a directory remote,
                                       an absolute path (``dsrepo:///data/cats`` or
                                       ``dsrepo://data/cats``); ``~/``, ``./`` and ``../`` work too
    dsrepo+s3://BUCKET/PREFIX@REV/PATH an S3 remote (``storage_options``: endpoint_url, region,
                                       profile; else boto3's own settings, e.g. AWS_ENDPOINT_URL)

The first ``@`` ends LOCATION; REV (a branch, tag, id or prefix, ``~N``...) runs to the next ``/``;
the rest is PATH inside the version, taken literally. ``%`` and ``@`` in LOCATION and ``%``,
``@`` and ``/`` in REV are percent-encoded (``feature%2Fx``), so :func:`url` and :func:`split`
round-trip every location, revision and path. An empty or missing REV is the default version
(``HEAD`` of a repository, ``main`` of a remote); names this filesystem returns spell it out.

Read-only: ``ls`` (``size``, ``type``, ``content_id``), ``info``, ``cat_file`` with ranges,
``open`` (seekable; a read fetches and verifies only the chunks it covers), ``glob``, ``find``,
``walk``; ``checksum`` and ``ukey`` are the content id. Writing raises PermissionError. Handles
are per process (:func:`dsrepo.reading.shared`), so DataLoader workers open their own.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any, ClassVar, NoReturn

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from dsrepo.dvcs.errors import NotARepository, PathError, UnknownRevision
from dsrepo.dvcs.reader import PathInfo, RepoReader
from dsrepo.objects.filereader import FileReader
from dsrepo.objects.kinds import EntryKind
from dsrepo.reading import refresh_shared, shared
from dsrepo.remotes.errors import KeyNotFound, PermanentBackendError
from dsrepo.remotes.urls import S3Options

__all__ = ["DsrepoFileSystem", "DsrepoS3FileSystem", "split", "url"]

_NOT_FOUND = (PathError, UnknownRevision, NotARepository, KeyNotFound, PermanentBackendError)


def _quote(text: str, chars: str) -> str:
    text = text.replace("%", "%25")
    for c in chars:
        text = text.replace(c, f"%{ord(c):02X}")
    return text


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _absolute(location: str) -> str:
    """A LOCATION of ``dsrepo://`` as an absolute path: ``~`` is the home directory, ``./`` and
    ``../`` start from the current directory, anything else is absolute with or without its
    leading ``/`` (tools that rewrite ``dsrepo:///data`` as ``dsrepo://data`` change nothing)."""
    if location.startswith("~"):
        return os.path.abspath(os.path.expanduser(location))
    if location in (".", "..") or location.startswith(("./", "../")):
        return os.path.abspath(location)
    return os.path.normpath("/" + location.lstrip("/"))


def url(location: str | os.PathLike[str], rev: str | None = None, path: str = "") -> str:
    """The URL of ``path`` in version ``rev`` of ``location`` (the path of a repository or a
    directory remote, relative ones from the current directory, or ``s3://BUCKET/PREFIX``),
    encoded as this module describes."""
    loc = os.fspath(location)
    scheme = "dsrepo"
    if loc.startswith("s3://"):
        scheme, loc = "dsrepo+s3", loc[len("s3://") :]
    else:
        loc = os.path.abspath(os.path.expanduser(loc.removeprefix("file://")))
    out = f"{scheme}://{_quote(loc.rstrip('/') or '/', '@')}@{_quote(rev or '', '@/')}"
    return f"{out}/{path.strip('/')}" if path.strip("/") else out


def split(urlpath: str) -> tuple[str, str | None, str]:
    """(location, revision or None, path) of a ``dsrepo://`` or ``dsrepo+s3://`` URL; the
    location of the latter is ``s3://BUCKET/PREFIX``."""
    if urlpath.startswith("dsrepo+s3://"):
        return DsrepoS3FileSystem._split(urlpath)
    return DsrepoFileSystem._split(urlpath)


class DsrepoFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """``dsrepo://LOCATION@REV/PATH``: read-only access to any version of a local repository or
    a directory remote (see the module's documentation)."""

    protocol: ClassVar[str | tuple[str, ...]] = "dsrepo"
    root_marker = ""
    _scheme: ClassVar[str] = ""
    """What LOCATION is prefixed with to make the remote's URL (``s3://`` for the S3 variant)."""

    def __init__(
        self,
        *args: Any,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        **storage_options: Any,
    ) -> None:
        super().__init__(*args, **storage_options)
        options = S3Options(endpoint_url=endpoint_url, region=region, profile=profile)
        self.s3 = None if options == S3Options() else options

    # ---- paths

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(os.fspath(path)) if isinstance(path, os.PathLike) else str(path)
        protocols = (cls.protocol,) if isinstance(cls.protocol, str) else cls.protocol
        for protocol in protocols:
            if text.startswith(protocol + "://"):
                text = text[len(protocol) + 3 :]
                break
        text = text.rstrip("/")
        if cls._scheme:
            return text
        loc, sep, rest = text.partition("@")
        if not loc:
            return text
        return _quote(_absolute(_unquote(loc)), "@") + sep + rest

    @classmethod
    def _split(cls, path: str) -> tuple[str, str | None, str]:
        loc, _, rest = cls._strip_protocol(path).partition("@")
        rev, _, inner = rest.partition("/")
        return cls._scheme + _unquote(loc), _unquote(rev) or None, inner.strip("/")

    def _locate(self, path: str) -> tuple[RepoReader, str, str, str]:
        """(handle, revision, path inside it, the name this filesystem gives that path)."""
        location, rev, inner = self._split(path)
        if not location or location == self._scheme:
            raise FileNotFoundError(f"{path}: no repository or remote named (LOCATION@REV/PATH)")
        try:
            handle = shared(location, self.s3)
        except _NOT_FOUND as exc:
            raise FileNotFoundError(f"{path}: {exc}") from None
        rev = rev or handle.rev
        root = f"{self._strip_protocol(path).partition('@')[0]}@{_quote(rev, '@/')}"
        return handle, rev, inner, f"{root}/{inner}" if inner else root

    def _info(self, path: str) -> tuple[RepoReader, str, PathInfo, str]:
        handle, rev, inner, name = self._locate(path)
        try:
            found = handle.find(inner, rev)
        except _NOT_FOUND as exc:
            raise FileNotFoundError(f"{path}: {exc}") from None
        if found is None:
            raise FileNotFoundError(path)
        return handle, rev, found, name

    @staticmethod
    def _detail(name: str, p: PathInfo) -> dict[str, Any]:
        return {
            "name": name,
            "size": p.size,
            "type": "directory" if p.is_dir else "file",
            "content_id": p.id.hex(),
            "kind": p.kind.name.lower(),
            "islink": p.kind == EntryKind.SYMLINK,
        }

    # ---- reading

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        handle, rev, found, name = self._info(path)
        if found.is_dir:
            base = name[: len(name) - len(found.path)].rstrip("/")
            out = [self._detail(f"{base}/{p.path}", p) for p in handle.ls(found.path, rev)]
        else:
            out = [self._detail(name, found)]
        return out if detail else [d["name"] for d in out]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        _, _, found, name = self._info(path)
        return self._detail(name, found)

    def checksum(self, path: str) -> str:
        """The content id: BLAKE3 of the file's bytes (what ``b3sum`` prints); a directory's
        tree id."""
        return str(self.info(path)["content_id"])

    def ukey(self, path: str) -> str:
        return self.checksum(path)

    def modified(self, path: str) -> datetime:
        """When the version read was committed (so a cache keyed on it sees a moved branch)."""
        handle, rev, _, _ = self._info(path)
        return datetime.fromtimestamp(handle.get_commit(rev).committer.time, tz=UTC)

    def created(self, path: str) -> datetime:
        return self.modified(path)

    def _raw(self, path: str) -> tuple[FileReader, dict[str, Any]]:
        handle, _, found, name = self._info(path)
        if found.is_dir:
            raise IsADirectoryError(path)
        return handle.raw_file(found), self._detail(name, found)

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        raw, _ = self._raw(path)
        with raw:
            size = raw.size
            lo = 0 if start is None else (max(0, size + start) if start < 0 else start)
            hi = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
            return raw.pread(lo, hi - lo) if hi > lo else b""

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> DsrepoFile:
        if mode != "rb":
            self._read_only(f"open {path!r} with mode {mode!r}")
        raw, details = self._raw(path)
        return DsrepoFile(
            self,
            details["name"],
            raw,
            details,
            block_size=block_size or "default",
            cache_type=kwargs.pop("cache_type", "none"),
            cache_options=cache_options,
        )

    def invalidate_cache(self, path: str | None = None) -> None:
        """Resolve revisions afresh from now on: a branch is read where it points now (each
        revision is otherwise resolved once per process, so reads stay consistent)."""
        refresh_shared()

    # ---- writing: refused

    def _read_only(self, what: str) -> NoReturn:
        raise PermissionError(
            f"dsrepo filesystems are read-only (cannot {what}): change a dataset with dsrepo "
            "add, commit and push"
        )

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self._read_only(f"create {path!r}")

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self._read_only(f"create {path!r}")

    def rmdir(self, path: str) -> None:
        self._read_only(f"remove {path!r}")

    def rm_file(self, path: str) -> None:
        self._read_only(f"remove {path!r}")

    def _rm(self, path: str) -> None:
        self._read_only(f"remove {path!r}")

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        self._read_only(f"remove {path!r}")

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self._read_only(f"copy to {path2!r}")

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        self._read_only(f"move {path1!r}")

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        self._read_only(f"write {path!r}")

    def put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> None:
        self._read_only(f"write {rpath!r}")

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        self._read_only(f"write {path!r}")


class DsrepoS3FileSystem(DsrepoFileSystem):
    """``dsrepo+s3://BUCKET/PREFIX@REV/PATH``: read-only access to any version of an S3 remote,
    with no local repository (ranged requests to its packs)."""

    protocol: ClassVar[str | tuple[str, ...]] = "dsrepo+s3"
    _scheme: ClassVar[str] = "s3://"


class DsrepoFile(AbstractBufferedFile):  # type: ignore[misc]
    """An open ``dsrepo://`` file: fsspec's buffered file over a :class:`FileReader`, whose
    ``pread`` fetches only the chunks a range covers (its small LRU of chunks serves the
    repeated small reads that fsspec's own cache would otherwise hold; ``cache_type`` is
    ``"none"`` unless given)."""

    def __init__(
        self,
        fs: DsrepoFileSystem,
        path: str,
        raw: FileReader,
        details: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        self.raw = raw
        super().__init__(fs, path, mode="rb", size=raw.size, **kwargs)
        self.details = details

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.raw.pread(start, max(0, end - start))

    def close(self) -> None:
        super().close()
        self.raw.close()
