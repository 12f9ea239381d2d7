"""Fixtures for the CLI tests: an isolated identity and config, a working copy, and two ways to
run ``dsrepo``: in process through click's CliRunner (``cli``) and as a real process (``dsrepo``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dsrepo.cli.main import cli as cli_group
from tests.snapshots import snapshot as snapshot  # re-exported for the CLI tests

AUTHOR_NAME = "Test User"
AUTHOR_EMAIL = "test@example.com"


def dsrepo_executable() -> str:
    """The installed console script (``python -m dsrepo.cli.main`` has no ``__main__`` block)."""
    candidate = Path(sys.executable).parent / "dsrepo"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dsrepo")
    assert found, "the dsrepo console script is not installed"
    return found


@dataclass
class Run:
    """The outcome of one ``dsrepo`` invocation (in process or as a subprocess)."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str
    out_bytes: bytes

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def __repr__(self) -> str:
        return f"Run({self.args!r}, code={self.code}, out={self.out[-2000:]!r}, err={self.err!r})"


class Cli:
    """``cli("add", ".")`` runs the command in the current directory and asserts exit 0;
    ``cli.fail(N, ...)`` asserts exit code N (and exactly the error-line rules for N != 0)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runner = CliRunner()
        self.monkeypatch = monkeypatch

    def run(self, *args: str, stdin: bytes | None = None) -> Run:
        # sys.argv is pytest's: commands must use their own arguments (e.g. for "--")
        self.monkeypatch.setattr(sys, "argv", ["pytest", "--", "not-for-dsrepo"])
        result: Result = self.runner.invoke(cli_group, list(args), input=stdin)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(
                f"dsrepo {' '.join(args)} raised {result.exception!r}\n{result.output}"
            ) from result.exception
        return Run(tuple(args), result.exit_code, result.stdout, result.stderr, result.stdout_bytes)

    def __call__(self, *args: str, stdin: bytes | None = None) -> Run:
        r = self.run(*args, stdin=stdin)
        assert r.code == 0, r
        return r

    def fail(self, code: int, *args: str) -> Run:
        r = self.run(*args)
        assert r.code == code, r
        return r


@pytest.fixture
def identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Author identity from the environment; the global config isolated (returned path)."""
    gconfig = tmp_path / "gconfig"
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", AUTHOR_NAME)
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", AUTHOR_EMAIL)
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(gconfig))
    monkeypatch.delenv("DSREPO_AUTHOR_DATE", raising=False)
    monkeypatch.delenv("DSREPO_PROGRESS", raising=False)
    return gconfig


@pytest.fixture
def cli(identity: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(monkeypatch)


@pytest.fixture
def wc(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialized, empty repository; the current directory."""
    root = tmp_path / "wc"
    root.mkdir()
    monkeypatch.chdir(root)
    cli("init", "-q")
    return root


@pytest.fixture
def dsrepo(identity: Path) -> Iterator[Dsrepo]:
    yield Dsrepo()


class Dsrepo:
    """Runs the real ``dsrepo`` executable: ``dsrepo(cwd, *args)``."""

    def __init__(self) -> None:
        self.exe = dsrepo_executable()

    def run(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> Run:
        proc = subprocess.run(
            [self.exe, *args],
            cwd=cwd,
            capture_output=True,
            env={**os.environ, **(env or {})},
            timeout=120,
        )
        return Run(
            tuple(args),
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
            proc.stdout,
        )

    def run_many(self, calls: list[tuple[Path, tuple[str, ...]]]) -> list[Run]:
        """Run independent invocations concurrently; results in the order given."""
        procs = [
            (
                args,
                subprocess.Popen(
                    [self.exe, *args],
                    cwd=cwd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                ),
            )
            for cwd, args in calls
        ]
        out = []
        for args, p in procs:
            stdout, stderr = p.communicate(timeout=120)
            out.append(
                Run(
                    tuple(args),
                    p.returncode,
                    stdout.decode("utf-8", "replace"),
                    stderr.decode("utf-8", "replace"),
                    stdout,
                )
            )
        return out

    def __call__(self, cwd: Path, *args: str) -> Run:
        r = self.run(cwd, *args)
        assert r.code == 0, r
        return r


# ---------------------------------------------------------------- helpers


def write(root: Path, rel: str, data: bytes | str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def assert_one_error_line(r: Run) -> None:
    """Exactly one non-empty stderr line, and it is the standard error line."""
    assert r.code != 0, r
    lines = r.err_lines
    assert len(lines) == 1, r
    assert lines[0].startswith("dsrepo: error: "), r
