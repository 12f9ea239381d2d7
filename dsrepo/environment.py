"""Every environment variable dsrepo reads, in one place (the table is in docs/cli.md).

Values are read when asked for, not at import, so a process (or a test) that changes its
environment sees the change. No other dsrepo module reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def _get(name: str) -> str | None:
    return os.environ.get(name) or None


def author_name() -> str | None:
    """``DSREPO_AUTHOR_NAME``: overrides ``user.name``."""
    return _get("DSREPO_AUTHOR_NAME")


def author_email() -> str | None:
    """``DSREPO_AUTHOR_EMAIL``: overrides ``user.email``."""
    return _get("DSREPO_AUTHOR_EMAIL")


def author_date() -> int | None:
    """``DSREPO_AUTHOR_DATE``: seconds since the epoch for new commits and tags (reproducible
    histories in tests and demos); ignored unless it is an integer."""
    stamp = _get("DSREPO_AUTHOR_DATE")
    return int(stamp) if stamp and stamp.lstrip("-").isdigit() else None


def login_name() -> str:
    """``USER``: who is named in reflog entries when no author identity is configured."""
    return _get("USER") or "unknown"


def global_config_path() -> Path:
    """``DSREPO_CONFIG_GLOBAL``, else ``$XDG_CONFIG_HOME/dsrepo/config``."""
    env = _get("DSREPO_CONFIG_GLOBAL")
    if env:
        return Path(env)
    base = _get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dsrepo" / "config"


def cache_dir() -> Path:
    """``DSREPO_CACHE_DIR``, else ``$XDG_CACHE_HOME/dsrepo/cache``: the user-level cache of
    ``get``."""
    env = _get("DSREPO_CACHE_DIR")
    if env:
        return Path(env)
    base = _get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dsrepo" / "cache"


def token() -> str | None:
    """``DSREPO_TOKEN``: the bearer token sent to ``http(s)://`` remotes (before any token in
    the credentials file)."""
    return _get("DSREPO_TOKEN")


def credentials_path() -> Path:
    """``DSREPO_CREDENTIALS``, else ``$XDG_CONFIG_HOME/dsrepo/credentials``: tokens for
    ``http(s)://`` remotes, one ``URL TOKEN`` per line (never in a repository's config)."""
    env = _get("DSREPO_CREDENTIALS")
    if env:
        return Path(env)
    base = _get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dsrepo" / "credentials"


def debug() -> bool:
    """``DSREPO_DEBUG``: print the traceback of an internal error."""
    return _get("DSREPO_DEBUG") is not None


def force_progress() -> bool:
    """``DSREPO_PROGRESS=1``: show progress even when stderr is not a terminal."""
    return _get("DSREPO_PROGRESS") == "1"


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment plus ``extra``, for a child process (the test S3 server)."""
    return {**os.environ, **extra}


def set_variable(name: str, value: str) -> None:
    """Set a variable in this process (the test S3 server tells moto its port this way)."""
    os.environ[name] = value
