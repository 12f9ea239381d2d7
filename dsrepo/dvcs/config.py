"""Configuration: git-style INI files, repository-level (``.dsrepo/config``) over user-level
(``$DSREPO_CONFIG_GLOBAL`` or ``~/.config/dsrepo/config``). Keys are ``section.name`` or
``section.subsection.name`` (``remote.origin.url`` lives in ``[remote "origin"]``).
Credentials never belong here: S3 settings use the AWS conventions (environment, profiles)."""

from __future__ import annotations

import configparser
import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from dsrepo import environment
from dsrepo.dvcs.errors import ConfigError
from dsrepo.dvcs.fsutil import atomic_write
from dsrepo.dvcs.lock import DEFAULT_TIMEOUT, file_lock
from dsrepo.objects.errors import storage_refusals

_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)(?:\.(.+))?\.([A-Za-z][A-Za-z0-9_-]*)$")
_SECRET_WORDS = ("secret", "password", "token", "access_key", "accesskey")


def global_config_path() -> Path:
    return environment.global_config_path()


def split_key(key: str) -> tuple[str, str]:
    """(INI section, option) for a dotted key."""
    m = _KEY.match(key)
    if not m:
        raise ConfigError(f"invalid config key {key!r}: expected section.name or section.sub.name")
    section, sub, name = m.groups()
    if sub is not None:
        if '"' in sub or "\n" in sub:
            raise ConfigError(f"invalid config key {key!r}")
        return f'{section.lower()} "{sub}"', name.lower()
    return section.lower(), name.lower()


class ConfigFile:
    """One INI file. Each change (``set``, ``remove_section``, ``rename_section``) is one
    read-modify-write under ``<file>.lock``: the file is read again under the lock, so two
    processes changing different keys never lose one."""

    lock_timeout = DEFAULT_TIMEOUT

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parser = self._read()

    def _read(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        if self.path.exists():
            try:
                parser.read(self.path, encoding="utf-8")
            except configparser.Error as exc:
                msg = str(exc).splitlines()[0]
                raise ConfigError(f"cannot parse {self.path}: {msg}") from None
        return parser

    @contextlib.contextmanager
    def _changing(self) -> Iterator[configparser.ConfigParser]:
        """Read the file again under its lock, let the caller change it, save it (atomically)."""
        with contextlib.suppress(OSError):  # save() reports a directory it cannot make
            self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock = file_lock(lock_path, f"the config file ({lock_path})")
        with lock.held(self.lock_timeout):
            self.parser = self._read()
            yield self.parser
            self.save()

    def get(self, key: str) -> str | None:
        section, name = split_key(key)
        return self.parser.get(section, name, fallback=None)

    def set(self, key: str, value: str | None) -> None:
        section, name = split_key(key)
        if value is not None and any(w in name for w in _SECRET_WORDS):
            raise ConfigError(
                f"refusing to store {key!r} in a config file: use the AWS environment "
                "variables or a profile (~/.aws/credentials) for credentials"
            )
        with self._changing() as parser:
            if value is None:
                if parser.has_section(section):
                    parser.remove_option(section, name)
                    if not parser.options(section):
                        parser.remove_section(section)
            else:
                if not parser.has_section(section):
                    parser.add_section(section)
                parser.set(section, name, value)

    def remove_section(self, section: str) -> bool:
        with self._changing() as parser:
            return parser.remove_section(section)

    def rename_section(self, old: str, new: str) -> None:
        with self._changing() as parser:
            items = dict(parser.items(old))
            parser.remove_section(old)
            parser.add_section(new)
            for k, v in items.items():
                parser.set(new, k, v)

    def sections(self) -> list[str]:
        return self.parser.sections()

    def items(self) -> list[tuple[str, str]]:
        out = []
        for section in self.parser.sections():
            m = re.match(r'^(\S+) "(.*)"$', section)
            prefix = f"{m.group(1)}.{m.group(2)}" if m else section
            for k, v in self.parser.items(section):
                out.append((f"{prefix}.{k}", v))
        return out

    def save(self) -> None:
        import io

        buf = io.StringIO()
        self.parser.write(buf)
        with storage_refusals(self.path.parent):  # a full or read-only disk: one line, exit 12
            self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, buf.getvalue().encode("utf-8"))


def user_config() -> ConfigFile:
    """The user-level configuration file (``dsrepo config --global``)."""
    return ConfigFile(global_config_path())


class Config:
    """Layered view: repository file over the user's global file."""

    def __init__(self, repo_path: Path | None) -> None:
        self.local = ConfigFile(repo_path) if repo_path is not None else None
        self.globl = ConfigFile(global_config_path())

    def get(self, key: str, default: str | None = None) -> str | None:
        if self.local is not None:
            v = self.local.get(key)
            if v is not None:
                return v
        v = self.globl.get(key)
        return default if v is None else v
