"""What ``dsrepo serve`` serves and the rules it enforces.

A served location is a repository with a working copy (its ``.dsrepo`` folder is the store;
pushes to the checked-out branch are refused, like git's ``receive.denyCurrentBranch``) or a bare
remote directory (what ``dsrepo push`` creates from a path). The server keeps its own state in a
``serve`` folder inside the store, never exposed over HTTP: ``tokens.json`` (mode 0600),
``config.toml`` (the rules below, edited by hand) and its location index.

``config.toml``::

    anonymous_read = false                  # true: reads need no token (writes still do)
    fast_forward_only = ["*"]               # branches that accept only fast-forwards (and are
                                            # never deleted); [] lets any branch be rewound
    protected_tags = ["*"]                  # tags that can be created, never moved or deleted
    allow_push_to_checked_out_branch = false
    max_upload_mib = 1024                   # the largest single upload (a pack)

Patterns are ``fnmatch`` globs on the short name (``main``, ``release/*``, ``v*``).
"""

from __future__ import annotations

import configparser
import fnmatch
import tomllib
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from dsrepo.dvcs.errors import ConfigError, NotARepository, path_errors

SERVE_DIR = "serve"
CONFIG_FILE = "config.toml"
DSDIR = ".dsrepo"


class Layout(StrEnum):
    REPOSITORY = "repository"
    """A repository with a working copy: the store is ``PATH/.dsrepo``."""
    BARE = "bare"
    """A remote directory (``format``, ``packs/``, ``refs/`` directly in ``PATH``)."""


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one server (``config.toml`` plus command-line overrides)."""

    anonymous_read: bool = False
    fast_forward_only: tuple[str, ...] = ("*",)
    protected_tags: tuple[str, ...] = ("*",)
    allow_push_to_checked_out_branch: bool = False
    max_upload_bytes: int = 1024 * 1024 * 1024
    plain_store: bool = False
    """Serve the store as a plain key/value backend: no verification, no protected refs, every
    key visible. Only for testing the backend contract over HTTP; the CLI never sets it."""

    def with_overrides(self, *, anonymous_read: bool | None = None) -> ServeConfig:
        return self if anonymous_read is None else replace(self, anonymous_read=anonymous_read)

    def is_fast_forward_only(self, branch: str) -> bool:
        return any(fnmatch.fnmatchcase(branch, p) for p in self.fast_forward_only)

    def is_protected_tag(self, tag: str) -> bool:
        return any(fnmatch.fnmatchcase(tag, p) for p in self.protected_tags)


@dataclass(frozen=True)
class Served:
    """A location to serve: its root, its store folder and its layout."""

    root: Path
    store: Path
    layout: Layout

    @property
    def state_dir(self) -> Path:
        """The server's own folder (tokens, config, index)."""
        return self.store / SERVE_DIR


def locate(path: str | Path, *, init: bool = False) -> Served:
    """What ``dsrepo serve PATH`` serves. With ``init``, a missing or empty folder becomes an
    empty bare remote (the first push writes its format marker)."""
    root = Path(path).absolute()
    with path_errors(root, "directory"):
        return _locate(root, init)


def _locate(root: Path, init: bool) -> Served:
    if (root / DSDIR / "format").is_file():
        if _is_partial_clone(root / DSDIR / "config"):
            raise NotARepository(
                f"refusing to serve {root}: it is a partial clone (clone --only), which lacks "
                "data; serve a full clone or the remote itself"
            )
        return Served(root, root / DSDIR, Layout.REPOSITORY)
    if (root / "format").is_file() or _awaits_first_push(root):
        return Served(root, root, Layout.BARE)
    if init and (not root.exists() or (root.is_dir() and not any(root.iterdir()))):
        (root / SERVE_DIR).mkdir(parents=True, exist_ok=True)
        return Served(root, root, Layout.BARE)
    if init:
        raise NotARepository(f"refusing to serve {root}: it holds other files and no dsrepo data")
    raise NotARepository(
        f"{root} is neither a dsrepo repository nor a remote directory "
        "(dsrepo serve --init serves a new, empty remote there)"
    )


def _awaits_first_push(root: Path) -> bool:
    """A folder made by ``serve --init`` that no push has reached yet: only ``serve/``."""
    try:
        return (root / SERVE_DIR).is_dir() and {p.name for p in root.iterdir()} == {SERVE_DIR}
    except OSError:
        return False


def _is_partial_clone(config: Path) -> bool:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(config, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return False
    return bool(parser.get("core", "promisor", fallback=""))


def load_config(served: Served) -> ServeConfig:
    """``serve/config.toml`` of ``served`` (defaults when absent)."""
    path = served.state_dir / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return ServeConfig()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data, str(path))


def parse_config(data: dict[str, object], where: str) -> ServeConfig:
    def flag(name: str, default: bool) -> bool:
        value = data.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {name} must be true or false")
        return value

    def patterns(name: str) -> tuple[str, ...]:
        value = data.get(name, ["*"])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {name} must be a list of patterns")
        return tuple(str(v) for v in value)

    mib = data.get("max_upload_mib", 1024)
    if not isinstance(mib, int) or isinstance(mib, bool) or mib < 1:
        raise ConfigError(f"{where}: max_upload_mib must be a positive integer")
    known = {
        "anonymous_read",
        "fast_forward_only",
        "protected_tags",
        "allow_push_to_checked_out_branch",
        "max_upload_mib",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r}")
    return ServeConfig(
        anonymous_read=flag("anonymous_read", False),
        fast_forward_only=patterns("fast_forward_only"),
        protected_tags=patterns("protected_tags"),
        allow_push_to_checked_out_branch=flag("allow_push_to_checked_out_branch", False),
        max_upload_bytes=mib * 1024 * 1024,
    )
