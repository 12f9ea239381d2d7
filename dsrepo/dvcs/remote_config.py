"""Remotes in the repository configuration: ``[remote "NAME"]`` sections with a URL and, for
S3, an endpoint, region and profile (never credentials). Renaming or removing a remote carries
its remote-tracking refs, branch upstreams and a partial clone's promisor along."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import RemoteExists, RemoteNotFound, RepositoryError
from dsrepo.dvcs.refnames import REMOTES, check_refname
from dsrepo.remotes.urls import S3Options, parse_url

if TYPE_CHECKING:
    from dsrepo.dvcs.config import ConfigFile
    from dsrepo.dvcs.repository import Repository


@dataclass(frozen=True)
class RemoteSpec:
    """A configured remote: its name, URL and S3 settings."""

    name: str
    url: str
    s3: S3Options


def _section(name: str) -> str:
    return f'remote "{name}"'


def _local(repo: Repository) -> ConfigFile:
    cfg = repo.config.local
    assert cfg is not None, "a repository always has its own config file"
    return cfg


def remote_names(repo: Repository) -> list[str]:
    out = []
    for s in _local(repo).sections():
        if s.startswith('remote "') and s.endswith('"'):
            out.append(s[len('remote "') : -1])
    return sorted(out)


def is_remote(repo: Repository, name: str) -> bool:
    return name in remote_names(repo)


def _check_remote_name(name: str) -> None:
    check_refname(f"{REMOTES}{name}/x")
    if "/" in name:
        raise RepositoryError(f"invalid remote name {name!r}: must not contain '/'")


def _require(repo: Repository, name: str) -> None:
    if not is_remote(repo, name):
        raise RemoteNotFound(f"no such remote {name!r} (add it with 'dsrepo remote add')")


def normalize_url(url: str) -> str:
    """Local paths become absolute, so the remote does not depend on the current directory."""
    scheme, location, _prefix = parse_url(url)
    return location if scheme == "file" else url


def add_remote(
    repo: Repository,
    name: str,
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> RemoteSpec:
    _check_remote_name(name)
    url = normalize_url(url)
    if is_remote(repo, name):
        raise RemoteExists(f"remote {name!r} already exists")
    cfg = _local(repo)
    cfg.set(f"remote.{name}.url", url)
    for key, value in (("endpoint-url", endpoint_url), ("region", region), ("profile", profile)):
        if value:
            cfg.set(f"remote.{name}.{key}", value)
    return remote_spec(repo, name)


def remove_remote(repo: Repository, name: str) -> None:
    _require(repo, name)
    _local(repo).remove_section(_section(name))
    _retarget_remote(repo, name, None)
    for ref, oid in repo.refs.list(f"{REMOTES}{name}/").items():
        repo.refs.update(ref, None, oid, who=repo.reflog_identity(), message="remote remove")


def _retarget_remote(repo: Repository, old: str, new: str | None) -> None:
    """Branch upstreams and a partial clone's promisor follow a renamed remote; upstreams of a
    removed remote are dropped (as git does)."""
    cfg = _local(repo)
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
    _require(repo, old)
    if is_remote(repo, new):
        raise RemoteExists(f"remote {new!r} already exists")
    _local(repo).rename_section(_section(old), _section(new))
    _retarget_remote(repo, old, new)
    who = repo.reflog_identity()
    for ref, oid in repo.refs.list(f"{REMOTES}{old}/").items():
        renamed = f"{REMOTES}{new}/{ref[len(REMOTES) + len(old) + 1 :]}"
        repo.refs.update(renamed, oid, None, who=who, message="remote rename")
        repo.refs.update(ref, None, oid, who=who, message="remote rename")


def set_url(repo: Repository, name: str, url: str) -> None:
    _require(repo, name)
    _local(repo).set(f"remote.{name}.url", normalize_url(url))


def remote_spec(repo: Repository, name: str) -> RemoteSpec:
    url = repo.config.get(f"remote.{name}.url")
    if url is None:
        raise RemoteNotFound(
            f"no such remote {name!r} (add it with 'dsrepo remote add {name} URL')"
        )
    return RemoteSpec(
        name,
        url,
        S3Options(
            endpoint_url=repo.config.get(f"remote.{name}.endpoint-url"),
            region=repo.config.get(f"remote.{name}.region"),
            profile=repo.config.get(f"remote.{name}.profile"),
        ),
    )


def list_remotes(repo: Repository) -> list[RemoteSpec]:
    return [remote_spec(repo, n) for n in remote_names(repo)]
