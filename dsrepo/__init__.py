"""dsrepo: version control for datasets.

from dsrepo import Repository
repo = Repository.init("data")
repo.add(".")
repo.commit("first version", metadata={"source": "s3://raw/2026-11"})

This package is the whole public API (the ``dsrepo`` command uses nothing else). Only
:class:`Repository` and :class:`DsrepoError` are imported with the package; every other name is
imported on first use (PEP 562), so ``import dsrepo`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs.repository import Repository
from dsrepo.errors import DsrepoError

if TYPE_CHECKING:
    from dsrepo.dvcs.checkout import CheckoutResult
    from dsrepo.dvcs.commits import BranchInfo, CommitInfo, TagInfo, parse_meta
    from dsrepo.dvcs.config import Config, ConfigFile, user_config
    from dsrepo.dvcs.errors import (
        AlreadyARepository,
        ConfigError,
        FetchFirst,
        IntegrityError,
        InvalidRefName,
        Locked,
        MergeConflictError,
        MissingIdentity,
        NonFastForward,
        NotARepository,
        NothingToCommit,
        PathError,
        PushRejected,
        RefConflict,
        RefExists,
        RemoteError,
        RemoteExists,
        RemoteNotFound,
        RemoteRefChanged,
        RepositoryError,
        StateError,
        TagExists,
        UnknownRevision,
        WouldOverwrite,
    )
    from dsrepo.dvcs.fetch import FetchResult
    from dsrepo.dvcs.fsck import FsckReport
    from dsrepo.dvcs.gc import GcReport
    from dsrepo.dvcs.getcache import GetResult, split_revision
    from dsrepo.dvcs.graph import render_graph
    from dsrepo.dvcs.history import DiffResult, FileChange, FileInfo, LogEntry
    from dsrepo.dvcs.ignore import IgnoreError
    from dsrepo.dvcs.merge import PathConflict, Strategy
    from dsrepo.dvcs.merging import MergeKind, MergeOutcome
    from dsrepo.dvcs.notes import Note
    from dsrepo.dvcs.paths import UnsafePath
    from dsrepo.dvcs.push import PushResult, RefStatus, RefUpdate
    from dsrepo.dvcs.reader import PathInfo, RepoReader
    from dsrepo.dvcs.reflog import ExpireResult, parse_age
    from dsrepo.dvcs.refnames import shorten
    from dsrepo.dvcs.refs import ReflogEntry
    from dsrepo.dvcs.remote import TransferStats
    from dsrepo.dvcs.remote_config import RemoteSpec
    from dsrepo.dvcs.remotegc import RemoteGcBusy, RemoteGcReport
    from dsrepo.dvcs.revisions import Resolved
    from dsrepo.dvcs.scan import ScanError
    from dsrepo.dvcs.search import LogFilter, parse_date
    from dsrepo.dvcs.usercache import CacheEntry, PruneReport, parse_size
    from dsrepo.dvcs.usercache import entries as cache_entries
    from dsrepo.dvcs.verify import VerifyResult
    from dsrepo.dvcs.worktree import AddResult, Status, hash_bytes
    from dsrepo.dvcs.worktree import hash_path as hash_file
    from dsrepo.fs import DsrepoFileSystem
    from dsrepo.localcopy import get_local_copy
    from dsrepo.objects.chunking import ChunkerParams
    from dsrepo.objects.errors import (
        AmbiguousId,
        CorruptObject,
        FileChanged,
        FileReadError,
        FormatError,
        InvalidId,
        ObjectError,
        ObjectNotFound,
        StorageFull,
        StorageReadOnly,
        StorageUnavailable,
    )
    from dsrepo.objects.ids import ObjectId
    from dsrepo.objects.kinds import EntryKind
    from dsrepo.objects.model import Commit, Manifest, ObjectType, Signature, Tag, Tree, TreeEntry
    from dsrepo.objects.packcheck import ObjectCounts
    from dsrepo.objects.store import FileRef
    from dsrepo.reading import FileDataset, open
    from dsrepo.remotes.errors import (
        BackendError,
        InvalidKey,
        KeyConflict,
        KeyNotFound,
        PermanentBackendError,
        TransientBackendError,
    )
    from dsrepo.remotes.http import (
        AuthenticationFailed,
        PermissionDenied,
        RefUpdateRefused,
        UploadRefused,
    )
    from dsrepo.remotes.urls import InvalidRemoteUrl, S3Options
    from dsrepo.server.app import create_app
    from dsrepo.server.app import serve as serve_repository
    from dsrepo.server.config import ServeConfig
    from dsrepo.server.config import Served as ServedLocation
    from dsrepo.server.tokens import TokenInfo, TokenStore
    from dsrepo.server.tokens import token_store as serve_tokens

__version__ = "0.1.0"

# Public name -> "module" (same attribute name) or "module:attribute". Every name here is also
# imported above under TYPE_CHECKING (for type checkers) and listed in __all__.
_LAZY: dict[str, str] = {
    # results of Repository methods
    "AddResult": "dsrepo.dvcs.worktree",
    "Status": "dsrepo.dvcs.worktree",
    "CommitInfo": "dsrepo.dvcs.commits",
    "TagInfo": "dsrepo.dvcs.commits",
    "BranchInfo": "dsrepo.dvcs.commits",
    "CheckoutResult": "dsrepo.dvcs.checkout",
    "GetResult": "dsrepo.dvcs.getcache",
    "CacheEntry": "dsrepo.dvcs.usercache",
    "PruneReport": "dsrepo.dvcs.usercache",
    "MergeOutcome": "dsrepo.dvcs.merging",
    "MergeKind": "dsrepo.dvcs.merging",
    "PathConflict": "dsrepo.dvcs.merge",
    "Strategy": "dsrepo.dvcs.merge",
    "LogEntry": "dsrepo.dvcs.history",
    "DiffResult": "dsrepo.dvcs.history",
    "FileChange": "dsrepo.dvcs.history",
    "FileInfo": "dsrepo.dvcs.history",
    "Resolved": "dsrepo.dvcs.revisions",
    "PushResult": "dsrepo.dvcs.push",
    "RefUpdate": "dsrepo.dvcs.push",
    "RefStatus": "dsrepo.dvcs.push",
    "FetchResult": "dsrepo.dvcs.fetch",
    "TransferStats": "dsrepo.dvcs.remote",
    "RemoteSpec": "dsrepo.dvcs.remote_config",
    "FsckReport": "dsrepo.dvcs.fsck",
    "GcReport": "dsrepo.dvcs.gc",
    "RemoteGcReport": "dsrepo.dvcs.remotegc",
    "ReflogEntry": "dsrepo.dvcs.refs",
    "ExpireResult": "dsrepo.dvcs.reflog",
    "ObjectCounts": "dsrepo.objects.packcheck",
    "FileRef": "dsrepo.objects.store",
    # reading versions without a checkout (dsrepo.open, fsspec, data loaders)
    "open": "dsrepo.reading",
    "RepoReader": "dsrepo.dvcs.reader",
    "PathInfo": "dsrepo.dvcs.reader",
    "FileDataset": "dsrepo.reading",
    "DsrepoFileSystem": "dsrepo.fs",
    # the object model
    "ObjectId": "dsrepo.objects.ids",
    "ObjectType": "dsrepo.objects.model",
    "EntryKind": "dsrepo.objects.kinds",
    "TreeEntry": "dsrepo.objects.model",
    "Commit": "dsrepo.objects.model",
    "Tag": "dsrepo.objects.model",
    "Tree": "dsrepo.objects.model",
    "Manifest": "dsrepo.objects.model",
    "Signature": "dsrepo.objects.model",
    # options and configuration
    "ChunkerParams": "dsrepo.objects.chunking",
    "S3Options": "dsrepo.remotes.urls",
    "Config": "dsrepo.dvcs.config",
    "ConfigFile": "dsrepo.dvcs.config",
    "user_config": "dsrepo.dvcs.config",
    # dsrepo serve
    "serve_repository": "dsrepo.server.app:serve",
    "serve_tokens": "dsrepo.server.tokens:token_store",
    "create_app": "dsrepo.server.app",
    "ServeConfig": "dsrepo.server.config",
    "ServedLocation": "dsrepo.server.config:Served",
    "TokenInfo": "dsrepo.server.tokens",
    "TokenStore": "dsrepo.server.tokens",
    # helpers
    "hash_file": "dsrepo.dvcs.worktree:hash_path",
    "hash_bytes": "dsrepo.dvcs.worktree",
    "split_revision": "dsrepo.dvcs.getcache",
    "get_local_copy": "dsrepo.localcopy",
    "cache_entries": "dsrepo.dvcs.usercache:entries",
    "parse_size": "dsrepo.dvcs.usercache",
    "parse_meta": "dsrepo.dvcs.commits",
    "render_graph": "dsrepo.dvcs.graph",
    "shorten": "dsrepo.dvcs.refnames",
    "parse_age": "dsrepo.dvcs.reflog",
    # errors (DsrepoError is imported above)
    "BackendError": "dsrepo.remotes.errors",
    "InvalidKey": "dsrepo.remotes.errors",
    "KeyNotFound": "dsrepo.remotes.errors",
    "KeyConflict": "dsrepo.remotes.errors",
    "TransientBackendError": "dsrepo.remotes.errors",
    "PermanentBackendError": "dsrepo.remotes.errors",
    "InvalidRemoteUrl": "dsrepo.remotes.urls",
    "AuthenticationFailed": "dsrepo.remotes.http",
    "PermissionDenied": "dsrepo.remotes.http",
    "RefUpdateRefused": "dsrepo.remotes.http",
    "UploadRefused": "dsrepo.remotes.http",
    "ObjectError": "dsrepo.objects.errors",
    "InvalidId": "dsrepo.objects.errors",
    "ObjectNotFound": "dsrepo.objects.errors",
    "AmbiguousId": "dsrepo.objects.errors",
    "FormatError": "dsrepo.objects.errors",
    "CorruptObject": "dsrepo.objects.errors",
    "FileReadError": "dsrepo.objects.errors",
    "FileChanged": "dsrepo.objects.errors",
    "StorageUnavailable": "dsrepo.objects.errors",
    "StorageFull": "dsrepo.objects.errors",
    "StorageReadOnly": "dsrepo.objects.errors",
    "RepositoryError": "dsrepo.dvcs.errors",
    "NotARepository": "dsrepo.dvcs.errors",
    "AlreadyARepository": "dsrepo.dvcs.errors",
    "InvalidRefName": "dsrepo.dvcs.errors",
    "UnknownRevision": "dsrepo.dvcs.errors",
    "RefConflict": "dsrepo.dvcs.errors",
    "RefExists": "dsrepo.dvcs.errors",
    "NothingToCommit": "dsrepo.dvcs.errors",
    "MissingIdentity": "dsrepo.dvcs.errors",
    "MergeConflictError": "dsrepo.dvcs.errors",
    "WouldOverwrite": "dsrepo.dvcs.errors",
    "PathError": "dsrepo.dvcs.errors",
    "ConfigError": "dsrepo.dvcs.errors",
    "StateError": "dsrepo.dvcs.errors",
    "IntegrityError": "dsrepo.dvcs.errors",
    "RemoteError": "dsrepo.dvcs.errors",
    "RemoteNotFound": "dsrepo.dvcs.errors",
    "RemoteExists": "dsrepo.dvcs.errors",
    "PushRejected": "dsrepo.dvcs.errors",
    "NonFastForward": "dsrepo.dvcs.errors",
    "FetchFirst": "dsrepo.dvcs.errors",
    "RemoteRefChanged": "dsrepo.dvcs.errors",
    "TagExists": "dsrepo.dvcs.errors",
    "Locked": "dsrepo.dvcs.errors",
    "RemoteGcBusy": "dsrepo.dvcs.remotegc",
    "UnsafePath": "dsrepo.dvcs.paths",
    "LogFilter": "dsrepo.dvcs.search",
    "Note": "dsrepo.dvcs.notes",
    "parse_date": "dsrepo.dvcs.search",
    "VerifyResult": "dsrepo.dvcs.verify",
    "ScanError": "dsrepo.dvcs.scan",
    "IgnoreError": "dsrepo.dvcs.ignore",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562) and keep it as a module attribute."""
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Repository",
    "__version__",
    # results
    "LogFilter",
    "Note",
    "VerifyResult",
    "parse_date",
    "AddResult",
    "BranchInfo",
    "CheckoutResult",
    "GetResult",
    "CacheEntry",
    "PruneReport",
    "CommitInfo",
    "DiffResult",
    "ExpireResult",
    "FetchResult",
    "FileChange",
    "FileInfo",
    "FileRef",
    "FsckReport",
    "GcReport",
    "RemoteGcReport",
    "LogEntry",
    "MergeKind",
    "MergeOutcome",
    "ObjectCounts",
    "PathConflict",
    "PushResult",
    "ReflogEntry",
    "RefStatus",
    "RefUpdate",
    "RemoteSpec",
    "Resolved",
    "Status",
    "Strategy",
    "TagInfo",
    "TransferStats",
    # reading versions without a checkout
    "DsrepoFileSystem",
    "FileDataset",
    "PathInfo",
    "RepoReader",
    "open",
    # the object model
    "Commit",
    "EntryKind",
    "Manifest",
    "ObjectId",
    "ObjectType",
    "Signature",
    "Tag",
    "Tree",
    "TreeEntry",
    # options and configuration
    "ChunkerParams",
    "Config",
    "ConfigFile",
    "S3Options",
    "user_config",
    # dsrepo serve
    "ServeConfig",
    "ServedLocation",
    "TokenInfo",
    "TokenStore",
    "create_app",
    "serve_repository",
    "serve_tokens",
    # helpers
    "hash_bytes",
    "hash_file",
    "parse_age",
    "parse_meta",
    "render_graph",
    "shorten",
    "split_revision",
    "get_local_copy",
    "cache_entries",
    "parse_size",
    # errors
    "DsrepoError",
    "AlreadyARepository",
    "AmbiguousId",
    "AuthenticationFailed",
    "BackendError",
    "ConfigError",
    "CorruptObject",
    "FetchFirst",
    "FileChanged",
    "FileReadError",
    "FormatError",
    "StorageFull",
    "StorageReadOnly",
    "StorageUnavailable",
    "IgnoreError",
    "IntegrityError",
    "InvalidId",
    "InvalidKey",
    "InvalidRefName",
    "InvalidRemoteUrl",
    "KeyConflict",
    "KeyNotFound",
    "Locked",
    "RemoteGcBusy",
    "MergeConflictError",
    "MissingIdentity",
    "NonFastForward",
    "NotARepository",
    "NothingToCommit",
    "ObjectError",
    "ObjectNotFound",
    "PathError",
    "PermanentBackendError",
    "PermissionDenied",
    "PushRejected",
    "RefConflict",
    "RefExists",
    "RefUpdateRefused",
    "RemoteError",
    "RemoteExists",
    "RemoteNotFound",
    "RemoteRefChanged",
    "RepositoryError",
    "ScanError",
    "StateError",
    "TagExists",
    "TransientBackendError",
    "UnknownRevision",
    "UnsafePath",
    "UploadRefused",
    "WouldOverwrite",
]
