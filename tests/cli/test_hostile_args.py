"""No traceback, ever: every command the CLI registers, run with hostile argument lists.

Hypothesis draws argument lists for each command from its own option names, plausible values
(revisions, paths, URLs, JSON fragments, numbers, very long strings, unicode with combining
marks and RTL, glob characters) and random text. Each example runs in process (click's
CliRunner) in a fresh copy of a small prepared sandbox: a repository with a few commits, an
annotated and a lightweight tag, a branch, a merge, and a directory remote. Any exit code is
fine except an internal error (an uncaught exception, exit 70); a failing command must say why
on a short stderr: a ``dsrepo: error:`` line or click's usage error.

Side effects stay in the sandbox: the current directory is the copied repository; HOME, the XDG
directories, DSREPO_CONFIG_GLOBAL, DSREPO_CACHE_DIR, DSREPO_CREDENTIALS, the AWS config files and
the temporary directory point into the copy; S3 has no credentials (so nothing goes to the
network); ``serve`` binds loopback addresses only, then returns instead of serving; and an audit
hook refuses, with PermissionError (what a non-root user gets for ``/etc``), any write outside
the module's temporary directory. Hypothesis is derandomized, so CI is reproducible; the file runs
in about 20-45 s.

Crashes this test found and that are not fixed yet would be listed in KNOWN_FAILURES with a
reproducer (the property skips them; ``test_known_failure`` expects each to fail, strictly). Those
it found and that were fixed stay in FORMER_CRASHES as regression tests.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, cast

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from dsrepo.cli.main import cli as cli_group

# ---------------------------------------------------------------- the commands


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    out: list[tuple[str, ...]] = []
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        assert command is not None
        out.append((*prefix, name))
        if isinstance(command, click.Group):
            out.extend(_paths(command, (*prefix, name)))
    return out


COMMANDS = _paths(cli_group)


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli_group
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return command


def _option_names(path: tuple[str, ...]) -> list[str]:
    names = {"-q", "--quiet", "-h"}
    for param in _command(path).params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return sorted(names)


def test_every_command_is_covered() -> None:
    """The discovery walks subgroups too (``remote add`` ...)."""
    assert ("remote", "add") in COMMANDS
    assert {("remote", "remove"), ("remote", "rename"), ("remote", "set-url")} <= set(COMMANDS)
    assert {("commit",), ("log",), ("update-ref",), ("get",)} <= set(COMMANDS)


# ---------------------------------------------------------------- argument values

# Substituted per example: the absolute paths differ from one copy of the sandbox to the next.
REMOTE_URL = "<remote-url>"
REPO_ABS = "<repo-abs>"
COMMIT_ID = "<head-id>"
COMMIT_PREFIX = "<head-prefix>"
OUTSIDE = "<outside>"  # a directory outside the sandbox (writes there are refused)

VALUES: list[str] = [
    # revisions
    "HEAD", "@", "HEAD~1", "HEAD^2", "HEAD^3", "HEAD~99", "HEAD~0", "HEAD^0", "HEAD^{tree}",
    "HEAD^{}", "HEAD^{nope}", "HEAD~" + "9" * 5000, "HEAD^" + "9" * 40, "~", "^", "^{}",
    "v1", "v1^{}", "v1^{commit}", "light", "side", "main", "origin/main", "origin", "refs/heads/main",
    "refs/tags/v1", "refs/heads/", "refs/", "refs", "HEAD:a.txt", "HEAD:data", "HEAD:", ":",
    ":a.txt", "HEAD:../x", "v1:nope", "@{-1}", "@{u}", "HEAD@{1}", "main..side", "main...side",
    "^HEAD", COMMIT_ID, COMMIT_PREFIX, "abc", "0000", "f" * 64, "g" * 64, "0" * 64,
    # ref names
    "new", "x.lock", ".hidden", "a..b", "a//b", "/a", "a/", "a.", "-b", "a b", "foo/@", "a@{b",
    "HEAD", "refs/heads/x", "@/x", "a/.b", "a\\b", "a:b", "a?b", "a*b", "a[b", "a~b", "a^b",
    # paths
    "a.txt", "data", "data/b.bin", "data/c.csv", "spaced name.txt", ".", "..", "../..", "/etc",
    "/", "nope.txt", "dir/é.txt", "a.txt/x", ".dsrepo", ".dsrepo/HEAD", "untracked.txt",
    "../remote", "./a.txt", "data/", "data//b.bin", REPO_ABS,
    # globs
    "*", "*.txt", "**", "data/**", "[", "[!a]", "?", "[]", "!", "#", "\\",
    # URLs and remotes
    REMOTE_URL, "file://", "file:///nonexistent", "file://host/x", "s3://", "s3://bucket",
    "s3://bucket/prefix", "s3:///x", "http://127.0.0.1:9/x", "C:\\x", "~", "~nobody/x", "~nosuchuser/x",
    "broken", "origin/../x",
    # JSON and metadata
    "{}", "[]", '{"a": 1}', "[[[[[", "null", "1e999", "NaN", "Infinity", "key=value",
    "k=[1,2]", "k=" + "[" * 1000 + "]" * 1000, "k=" + "[" * 1000, "k=NaN", "k=" + "9" * 30,
    "k=" + "9" * 5000, "=", "=v", "a==b", "git=1",
    # numbers
    "0", "-1", "1", "64", "65", "2147483648", "99999999999999999999", "1.5", "-0", "+1",
    # long and unusual strings
    "", " ", "x" * 300, "é" * 200, "a/" * 300, "x" * 5000, "e\u0301", "\u202eabc",
    "\u05e2\u05d1\u05e8\u05d9\u05ea", "\u200f", "\ufeff", "\u65e5\u672c", "\U0001f642",
    "\t", "\n", "a\nb", "\r", "\x7f", "\x01",
    "caf\udce9",  # an undecodable byte of a command line (Latin-1), as Python passes it on
    # option-like
    "-", "--", "-x", "--nope", "--help", "--version", "-qq",
]  # fmt: skip

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)


VALUE = st.one_of(st.sampled_from(VALUES), TEXT)


@st.composite
def _well_formed(draw: st.DrawFn, path: tuple[str, ...]) -> list[str]:
    """Arguments click accepts: some of the command's options (with a value when they take
    one) and as many positional arguments as it expects, hostile values in every slot."""
    options: list[list[str]] = []
    positional: list[str] = []
    for param in _command(path).params:
        if isinstance(param, click.Option):
            if draw(st.integers(0, 3)) == 0:
                name = draw(st.sampled_from(param.opts + param.secondary_opts))
                if param.is_flag or param.count:
                    options.append([name])
                else:
                    options.append([name, draw(VALUE)])
        elif isinstance(param, click.Argument):
            if param.nargs == -1:
                positional.extend(draw(st.lists(VALUE, max_size=3)))
            elif param.required or draw(st.booleans()):
                positional.extend(draw(VALUE) for _ in range(param.nargs))
    options = draw(st.permutations(options))
    dashdash = ["--"] if positional and draw(st.integers(0, 5)) == 0 else []
    return [a for o in options for a in o] + dashdash + positional


def _argument_lists(path: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    token = st.one_of(st.sampled_from(_option_names(path)), VALUE)
    return st.one_of(_well_formed(path), _well_formed(path), st.lists(token, max_size=6))


# ---------------------------------------------------------------- the sandbox


class SandboxEscape(PermissionError):
    """A write outside the sandbox, refused (as the OS would refuse a non-root user)."""


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# event -> (index of a path it writes, index of that path's dir_fd argument or None)..., as in
# the audit events table (docs.python.org/3/library/audit_events.html)
_WRITES: dict[str, tuple[tuple[int, int | None], ...]] = {
    "os.mkdir": ((0, 2),),
    "os.remove": ((0, 1),),
    "os.rmdir": ((0, 1),),
    "os.rename": ((0, 2), (1, 3)),
    "os.replace": ((0, 2), (1, 3)),
    "os.link": ((1, 3),),
    "os.symlink": ((1, 2),),
    "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),),
    "os.utime": ((0, 3),),
    "os.mkfifo": ((0, 2),),
    "os.mknod": ((0, 3),),
    "os.truncate": ((0, None),),
    "shutil.rmtree": ((0, 1),),
    "shutil.copyfile": ((1, None),),
    "shutil.move": ((0, None), (1, None)),
}


_DELETES = ("os.remove", "os.rmdir", "shutil.rmtree")


class _Guard:
    """Refuses writes outside ``root`` while an example runs: an audit hook (installed once per
    process, idle between examples) for paths, and a wrapper of ``os.open`` for the
    ``dir_fd=`` form, which the ``open`` audit event does not describe."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.refused: list[str] = []

    def where(self, target: Any, dir_fd: int | None) -> str | None:
        """The absolute, resolved path a write goes to (None for a file descriptor)."""
        if isinstance(target, int) or target is None:
            return None
        path = os.fsdecode(target)
        if dir_fd is not None and not os.path.isabs(path):
            path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        return os.path.realpath(os.path.abspath(path))

    def check(self, event: str, target: Any, dir_fd: int | None = None) -> None:
        path = self.where(target, dir_fd)
        root = self.root
        if path is None or root is None:
            return
        if path == root or path.startswith(root + os.sep) or path == os.devnull:
            return
        exists = os.path.lexists(path)
        if (event == "os.mkdir" and exists) or (event in _DELETES and not exists):
            return  # fails (FileExistsError, FileNotFoundError) as it would for anyone
        self.refused.append(f"{event} {path!r}")
        raise SandboxEscape(13, "refused by the test sandbox", path)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.root is None:
            return
        if event == "open":
            path, mode, flags = args
            if any(c in mode for c in "wax+") if mode else bool(flags & _WRITE_FLAGS):
                self.check(event, path)  # os.open(dir_fd=...) is checked by open_wrapper
            return
        for path_at, fd_at in _WRITES.get(event, ()):
            dir_fd = args[fd_at] if fd_at is not None else None
            self.check(event, args[path_at], dir_fd if isinstance(dir_fd, int) else None)

    def open_wrapper(self, original: Any) -> Any:
        def guarded_open(
            path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None
        ) -> int:
            if dir_fd is not None and flags & _WRITE_FLAGS:
                self.check("os.open", path, dir_fd)
            return int(original(path, flags, mode, dir_fd=dir_fd))

        return guarded_open


GUARD = _Guard()
sys.addaudithook(GUARD)


@dataclass
class Sandbox:
    base: Path  # every example's copy lives below it; the guard's root
    prepared: Path  # the prepared sandbox, copied for each example
    head: str  # HEAD's commit id in the prepared repository


AUTHOR = {
    "DSREPO_AUTHOR_NAME": "Hostile Tester",
    "DSREPO_AUTHOR_EMAIL": "hostile@example.com",
    "DSREPO_AUTHOR_DATE": "1700000000",
}


def _environment(mp: pytest.MonkeyPatch, box: Path) -> None:
    home = box / "home"
    for name, value in {
        **AUTHOR,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "DSREPO_CONFIG_GLOBAL": str(home / "gconfig"),
        "DSREPO_CACHE_DIR": str(home / "cache"),
        "DSREPO_CREDENTIALS": str(home / "credentials"),
        "TMPDIR": str(box / "tmp"),
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        mp.setenv(name, value)
    for name in (
        "DSREPO_PROGRESS",
        "DSREPO_DEBUG",
        "DSREPO_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        mp.delenv(name, raising=False)
    mp.setattr(tempfile, "tempdir", str(box / "tmp"))
    # sys.argv is pytest's: commands must use their own arguments
    mp.setattr(sys, "argv", ["pytest", "--", "not-for-dsrepo"])
    mp.setattr(sys, "dont_write_bytecode", True)
    mp.chdir(box / "repo")


def _run(args: list[str]) -> Any:
    result = CliRunner().invoke(cli_group, args, input=b"")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"dsrepo {args!r} raised {result.exception!r}") from result.exception
    assert result.exit_code == 0, (args, result.exit_code, result.stderr)
    return result


def _write(root: Path, rel: str, data: str | bytes) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    base = Path(os.path.realpath(tmp_path_factory.mktemp("hostile")))
    box = base / "prepared" / "box"
    repo = box / "repo"
    for d in (repo, box / "home", box / "tmp"):
        d.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        _environment(mp, box)
        _run(["init", "-q"])
        _write(repo, "a.txt", "one\n")
        _write(repo, "data/b.bin", b"\x00\x01" * 64)
        _write(repo, "data/c.csv", "id,label\n")
        _write(repo, "spaced name.txt", "s\n")
        _run(["add", "."])
        _run(["commit", "-q", "-m", "one", "--meta", "split=train"])
        _run(["tag", "-a", "-m", "release", "v1"])
        _run(["tag", "light"])
        _run(["branch", "side"])
        _run(["switch", "-q", "side"])
        _write(repo, "data/c.csv", "id,label\n0,cat\n")
        _run(["commit", "-q", "-a", "-m", "side"])
        _run(["switch", "-q", "main"])
        _write(repo, "a.txt", "two\n")
        _run(["commit", "-q", "-a", "-m", "two"])
        _run(["merge", "-m", "merge side", "side"])
        _run(["remote", "add", "origin", "../remote"])
        _run(["remote", "add", "broken", "../nowhere"])
        _run(["push", "-q", "--tags", "origin", "main", "side"])
        _run(["fetch", "-q", "origin"])
        _write(repo, "untracked.txt", "u\n")
        head = _run(["rev-parse", "HEAD"]).stdout.strip()
    meta = base / "meta"  # metadata files for the regression tests, not copied per example
    for name, text in META_FILES.items():
        _write(meta, name, text)
    yield Sandbox(base, box, head)


META_FILES: dict[str, str | bytes] = {
    "deep.json": "[" * 1000 + "]" * 1000,
    "deep-object.json": '{"a":' * 1000 + "1" + "}" * 1000,
    "deepest-allowed.json": '{"a":' * 100 + "1" + "}" * 100,
    "one-too-deep.json": '{"a":' * 101 + "1" + "}" * 101,
    "array.json": "[1, 2]",
    "string.json": '"text"',
    "nan.json": '{"a": NaN}',
    "huge-number.json": '{"a": 1e999}',
    "big-int.json": '{"a": 99999999999999999999}',
    "not-json.json": "key=value\n",
    "large.json": '{"a": "' + "x" * (1 << 20) + '"}',
    "latin1.json": b'{"a": "caf\xe9"}',
}


_copies = iter(range(1_000_000))


@dataclass
class Outcome:
    args: list[str]  # as run (placeholders substituted)
    code: int
    out: str
    err: str
    exception: BaseException | None  # an uncaught exception (SystemExit is not one)
    refused: list[str]  # the writes outside the sandbox the guard refused


class CommandTimeout(Exception):
    pass


def _timeout(_signum: int, _frame: FrameType | None) -> None:
    raise CommandTimeout(f"the command ran for more than {TIMEOUT} s")


TIMEOUT = 60


class _NotServing:
    """Stands for the uvicorn server: ``serve`` checks everything, binds, then returns."""

    started = True

    def run(self, sockets: list[socket.socket]) -> None:
        pass


def _bind_locally(original: Any) -> Any:
    """``bind`` without the network: a loopback address binds a free port (no clash with a
    server running on the machine); another address fails as one this host does not have; a
    host name fails as a resolver without network would."""

    def bind(host: str, port: int) -> socket.socket:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        if not address.is_loopback:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        return cast(socket.socket, original(host, 0))

    return bind


def _no_serving(mp: pytest.MonkeyPatch) -> None:
    """``dsrepo serve`` returns once its socket listens (instead of serving until Ctrl-C)."""
    if ("serve",) not in COMMANDS:
        return
    import dsrepo.server.app as server_app

    mp.setattr(server_app, "make_server", lambda *_a, **_k: _NotServing())
    mp.setattr(server_app, "bind", _bind_locally(server_app.bind))


def run_in_copy(sandbox: Sandbox, args: list[str]) -> Outcome:
    """Run dsrepo with ``args`` in a fresh copy of the prepared sandbox, then delete the copy."""
    box = sandbox.base / "examples" / str(next(_copies)) / "box"
    shutil.copytree(sandbox.prepared, box, symlinks=True)
    subst = {
        REMOTE_URL: f"file://{box / 'remote'}",
        REPO_ABS: str(box / "repo"),
        COMMIT_ID: sandbox.head,
        COMMIT_PREFIX: sandbox.head[:6],
        OUTSIDE: str(sandbox.base.parent / f"outside-{box.parent.name}" / "dir"),
    }
    args = [subst.get(a, a) for a in args]
    try:
        with pytest.MonkeyPatch.context() as mp:
            _environment(mp, box)
            mp.setattr(os, "open", GUARD.open_wrapper(os.open))
            _no_serving(mp)
            GUARD.refused = []
            GUARD.root = str(sandbox.base)
            previous = signal.signal(signal.SIGALRM, _timeout)
            signal.alarm(TIMEOUT)
            try:
                result = CliRunner().invoke(cli_group, args, input=b"")
            finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, previous)
                GUARD.root = None
    finally:
        shutil.rmtree(box.parent, ignore_errors=True)
    exc = result.exception
    return Outcome(
        args,
        result.exit_code,
        result.stdout,
        result.stderr,
        None if isinstance(exc, SystemExit) else exc,
        list(GUARD.refused),
    )


# ---------------------------------------------------------------- the property

MAX_ERROR_LINES = 20


def check_outcome(o: Outcome) -> None:
    """Not an internal error; a failure says why, briefly."""
    if o.exception is not None:
        raise AssertionError(
            f"dsrepo {o.args!r} raised {type(o.exception).__name__}: {o.exception}"
        ) from o.exception
    where = f"dsrepo {o.args!r}: exit {o.code}, stderr:\n{o.err[-3000:]}"
    assert o.code != 70, where
    assert 0 <= o.code < 64 or o.code == 130, where
    assert "Traceback" not in o.err, where
    if o.code != 0:
        lines = [line for line in o.err.splitlines() if line.strip()]
        assert lines, where
        if lines[0].startswith(("Usage: ", "Error: ")):  # click: a usage error, a group's help
            assert o.code == 2, where
            return
        assert len(lines) <= MAX_ERROR_LINES, where
        # a summary may come first (push: "sent N objects"), problems may follow (merge)
        assert any(line.startswith("dsrepo: error: ") for line in lines), where


@dataclass(frozen=True)
class Known:
    """A crash found by this test in a module owned by someone else, reported to the lead: the
    command, the exception and the innermost dsrepo function it escapes from
    (``module/path.py:function``), and a reproducer."""

    command: tuple[str, ...]
    error: type[BaseException]
    where: str
    reproducer: tuple[str, ...]

    def matches(self, o: Outcome) -> bool:
        return (
            tuple(o.args[: len(self.command)]) == self.command
            and isinstance(o.exception, self.error)
            and raised_in(o.exception) == self.where
        )


def raised_in(exc: BaseException) -> str | None:
    """``module/path.py:function`` of the innermost dsrepo frame of ``exc``'s traceback."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f"{os.sep}dsrepo{os.sep}" in f.filename
    ]
    if not frames:
        return None
    path = frames[-1].filename.rsplit(f"{os.sep}dsrepo{os.sep}", 1)[1]
    return f"{path.replace(os.sep, '/')}:{frames[-1].name}"


# Remove an entry when its module is fixed: test_known_failure then reports an XPASS (strict).
LONG = "x" * 300  # longer than a file name may be (ENAMETOOLONG)
FORMER_CRASHES: list[Known] = [
    # the default DIRECTORY (from the URL) is an existing file
    Known(("clone",), NotADirectoryError, "dvcs/clone.py:clone", ("clone", "--", "untracked.txt")),
    # DIRECTORY below a file; DIRECTORY not writable (EACCES)
    Known(("clone",), NotADirectoryError, "dvcs/opstate.py:write_clone_marker", ("clone", "../remote", "a.txt/x")),
    Known(("clone",), PermissionError, "dvcs/opstate.py:write_clone_marker", ("clone", "../remote", OUTSIDE)),
    # the default DIRECTORY (from the URL) is longer than a file name
    Known(("clone",), OSError, "dvcs/clone.py:clone", ("clone", LONG)),
    # a remote path with a component longer than a file name
    Known(("clone",), OSError, "remotes/directory.py:__init__", ("clone", LONG, "out")),
    Known(("get",), OSError, "remotes/directory.py:__init__", ("get", LONG, "out")),
    # get DIRECTORY, checkout --into DIR: below a file, not writable, a name too long
    Known(("get",), NotADirectoryError, "dvcs/materialize.py:into_folder", ("get", "../remote", "a.txt/x")),
    Known(("get",), PermissionError, "dvcs/materialize.py:into_folder", ("get", "../remote", OUTSIDE)),
    Known(("checkout",), NotADirectoryError, "dvcs/materialize.py:into_folder", ("checkout", "--into", "a.txt/x", "HEAD")),
    Known(("checkout",), PermissionError, "dvcs/materialize.py:into_folder", ("checkout", "--into", OUTSIDE, "HEAD")),
    Known(("checkout",), OSError, "dvcs/materialize.py:into_folder", ("checkout", "--into", LONG, "HEAD")),
    # init DIRECTORY: below a file, not writable, a name too long
    Known(("init",), NotADirectoryError, "dvcs/repository.py:init", ("init", "a.txt/x")),
    Known(("init",), PermissionError, "dvcs/repository.py:init", ("init", OUTSIDE)),
    Known(("init",), OSError, "dvcs/repository.py:init", ("init", LONG + "/y")),
    # mv onto a path below a tracked file; a directory into itself (EINVAL)
    Known(("mv",), FileExistsError, "dvcs/worktree.py:mv", ("mv", "a.txt", "a.txt/x")),
    Known(("mv",), OSError, "dvcs/worktree.py:mv", ("mv", "data", "data")),
    # a path URL "~user/..." for a user that does not exist: Path.expanduser raises RuntimeError
    Known(("clone",), RuntimeError, "remotes/urls.py:parse_url", ("clone", "~nosuchuser/x", "out")),
    Known(("get",), RuntimeError, "remotes/urls.py:parse_url", ("get", "~nosuchuser/x", "out")),
    Known(("push",), RuntimeError, "remotes/urls.py:parse_url", ("push", "~nosuchuser/x")),
    Known(("fetch",), RuntimeError, "remotes/urls.py:parse_url", ("fetch", "~nosuchuser/x")),
    Known(("remote", "add"), RuntimeError, "remotes/urls.py:parse_url", ("remote", "add", "u", "~nosuchuser/x")),
    Known(("remote", "set-url"), RuntimeError, "remotes/urls.py:parse_url", ("remote", "set-url", "origin", "~nosuchuser/x")),
    # serve token ... PATH with a name too long
    Known(("serve", "token", "list"), OSError, "server/config.py:locate", ("serve", "token", "list", LONG)),
    Known(("serve", "token", "create"), OSError, "server/config.py:locate", ("serve", "token", "create", "--scope", "read", LONG)),
    Known(("serve", "token", "revoke"), OSError, "server/config.py:locate", ("serve", "token", "revoke", "t", LONG)),
]  # fmt: skip

KNOWN_FAILURES: list[Known] = []
"""Crashes found and not fixed yet (none now): the property skips them, test_known_failure
expects them to fail."""


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
@given(data=st.data())
def test_no_internal_error(sandbox: Sandbox, command: tuple[str, ...], data: st.DataObject) -> None:
    args = [*command, *data.draw(_argument_lists(command), label="args")]
    outcome = run_in_copy(sandbox, args)
    if any(known.matches(outcome) for known in KNOWN_FAILURES):
        reject()  # reported, tracked by test_known_failure
    check_outcome(outcome)


@pytest.mark.parametrize(
    "known",
    FORMER_CRASHES,
    ids=lambda k: " ".join(a if len(a) <= 20 else f"{a[:4]}...({len(a)})" for a in k.reproducer),
)
def test_former_crash_is_one_clear_line(sandbox: Sandbox, known: Known) -> None:
    """Each crash this test found once (an OSError on a path the user named, ``~nosuchuser``)
    is now refused with one ``dsrepo: error:`` line and a documented exit code."""
    outcome = run_in_copy(sandbox, list(known.reproducer))
    check_outcome(outcome)
    assert outcome.code in (2, 8, 9, 12), outcome
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dsrepo: error: "), outcome


@pytest.mark.parametrize(
    "known",
    [
        pytest.param(
            k,
            marks=pytest.mark.xfail(
                strict=True, raises=AssertionError, reason=f"{k.error.__name__} in {k.where}"
            ),
        )
        for k in KNOWN_FAILURES
    ],
    ids=lambda k: " ".join(a if len(a) <= 20 else f"{a[:4]}...({len(a)})" for a in k.reproducer),
)
def test_known_failure(sandbox: Sandbox, known: Known) -> None:
    outcome = run_in_copy(sandbox, list(known.reproducer))
    if outcome.exception is not None and not known.matches(outcome):
        pytest.fail(f"{known} now fails differently: {outcome.exception!r}")
    check_outcome(outcome)  # the expected failure: AssertionError for the known crash


# ---------------------------------------------------------------- what the property found


def one_error_line(o: Outcome, code: int, *words: str) -> None:
    check_outcome(o)
    assert o.code == code, o
    lines = [line for line in o.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dsrepo: error: "), o
    for word in words:
        assert word in lines[0], o


@pytest.mark.parametrize(
    "args",
    [
        ["branch", "@"],
        ["tag", "@"],
        ["tag", "HEAD"],
        ["switch", "-c", "@"],
        ["branch", "x" * 251],
        ["branch", "\u00e9" * 126],  # 252 bytes of UTF-8
        ["tag", "a/" + "x" * 300],
        ["branch", "\udcff"],  # an undecodable byte of a command line (surrogateescape)
        ["update-ref", "refs/heads/" + "x/" * 500 + "x", "HEAD"],  # 1012 bytes
    ],
    ids=lambda a: " ".join(a)[:40],
)
def test_invalid_ref_names(sandbox: Sandbox, args: list[str]) -> None:
    """git refuses ``git branch @``; a name must also fit a file name and be UTF-8."""
    one_error_line(run_in_copy(sandbox, args), 2, "invalid")


@pytest.mark.parametrize("args", [["branch", "\u00e9" * 125], ["branch", "foo/@"]])
def test_valid_ref_names(sandbox: Sandbox, args: list[str]) -> None:
    o = run_in_copy(sandbox, args)
    assert o.code == 0, o


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ("deep.json", ["1000 levels deep", "at most 100"]),
        ("deep-object.json", ["1000 levels deep"]),
        ("one-too-deep.json", ["101 levels deep"]),
        ("array.json", ["JSON object", "an array"]),
        ("string.json", ["JSON object"]),
        ("nan.json", ["not valid JSON"]),
        ("huge-number.json", ["out of range"]),
        ("big-int.json", ["64-bit range"]),
        ("not-json.json", ["not valid JSON"]),
        ("large.json", ["larger than 1 MiB"]),
        ("latin1.json", ["not UTF-8"]),
        ("missing.json", ["cannot read"]),
    ],
)
def test_meta_file_refused(sandbox: Sandbox, meta: str, words: list[str]) -> None:
    """Never a RecursionError: nesting is measured before the JSON is parsed."""
    path = str(sandbox.base / "meta" / meta)
    o = run_in_copy(sandbox, ["commit", "--allow-empty", "-m", "m", "--meta-file", path])
    one_error_line(o, 1, "metadata file", *words)


def test_meta_at_the_depth_limit(sandbox: Sandbox) -> None:
    path = str(sandbox.base / "meta" / "deepest-allowed.json")
    o = run_in_copy(sandbox, ["commit", "-q", "--allow-empty", "-m", "m", "--meta-file", path])
    assert o.code == 0, o


@pytest.mark.parametrize(
    ("value", "code", "words"),
    [
        ("[" * 1000 + "]" * 1000, 1, ["--meta 'k'", "1001 levels deep"]),
        ("[" * 1000, 1, ["levels deep"]),
        ("[" * 100 + "]" * 100, 1, ["101 levels deep"]),
        ("[" * 99 + "]" * 99, 0, []),
        ("1e999", 1, ["out of range"]),
        ("-99999999999999999999", 1, ["64-bit range"]),
        ("NaN", 0, []),  # not JSON: kept as a string
        ("caf\udce9", 1, ["not valid UTF-8"]),  # an undecodable command-line byte
        ('"caf\\udce9"', 1, ["not valid UTF-8"]),  # a lone surrogate escaped in JSON
        ("9" * 5000, 0, []),  # more digits than Python parses: kept as a string
    ],
    ids=lambda v: str(v)[:20],
)
def test_meta_values(sandbox: Sandbox, value: str, code: int, words: list[str]) -> None:
    o = run_in_copy(sandbox, ["commit", "-q", "--allow-empty", "-m", "m", "--meta", f"k={value}"])
    if code:
        one_error_line(o, code, *words)
    else:
        assert o.code == 0, o


@pytest.mark.parametrize(
    "rev",
    [
        "HEAD~" + "9" * 5000,  # more digits than int() converts
        "HEAD^" + "9" * 5000,
        "~" * 30_000 + "x",  # quadratic in the length with the former regular expression
        "x" + "^" * 30_000 + "{tre}",
    ],
    ids=lambda r: f"{r[:8]}...({len(r)})",
)
def test_hostile_revisions(sandbox: Sandbox, rev: str) -> None:
    start = time.monotonic()
    o = run_in_copy(sandbox, ["rev-parse", rev])
    one_error_line(o, 4)
    assert len(o.err) < 300, o  # the revision is shortened in the message
    assert time.monotonic() - start < 10, o


BAD = "caf\udce9"  # "café" in Latin-1 on a UTF-8 command line, as Python passes it on


@pytest.mark.parametrize(
    "args",
    [
        ["commit", "--allow-empty", "-m", BAD],
        ["tag", "-m", BAD, "t"],
        ["merge", "-m", BAD, "side"],
        ["update-ref", "-m", BAD, "refs/heads/x", "HEAD"],
        ["config", "user.name", BAD],
        ["remote", "add", "r", f"../{BAD}"],
        ["remote", "set-url", "origin", BAD],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_undecodable_text_is_a_usage_error(sandbox: Sandbox, args: list[str]) -> None:
    """Text to be stored must be UTF-8: refused by the argument parser, not a UnicodeError."""
    o = run_in_copy(sandbox, args)
    check_outcome(o)
    assert o.code == 2 and "not valid UTF-8" in o.err, o


def test_undecodable_names_and_paths(sandbox: Sandbox) -> None:
    check_outcome(o := run_in_copy(sandbox, ["commit", "-m", "m", "--meta", f"{BAD}=1"]))
    assert o.code == 1 and "not valid UTF-8" in o.err, o
    for args in (["branch", BAD], ["tag", BAD], ["remote", "add", BAD, "../remote"]):
        one_error_line(run_in_copy(sandbox, args), 2, "not valid UTF-8")
    o = run_in_copy(sandbox, ["init", BAD])  # the path is printed as the file system has it
    assert o.code == 0 and o.exception is None, o
