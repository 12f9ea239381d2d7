"""Errors: each is one ``dsrepo: error: ...`` line on stderr (merge conflicts add one line per
path), a documented non-zero exit code, and no change to the repository."""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.cli import main as cli_main
from dsrepo.objects import filewrite
from dsrepo.objects.ids import hash_data
from tests.cli.conftest import Cli, Dsrepo, Run, assert_one_error_line, snapshot, write


def state(cli: Cli, root: Path) -> tuple[object, ...]:
    """Everything a failed command must leave alone."""
    return (
        cli("rev-parse", "HEAD").out,
        cli("branch").out,
        cli("tag").out,
        cli("status", "-s").out,
        cli("log", "--oneline").out,
        snapshot(root),
    )


@pytest.fixture
def repo2(wc: Path, cli: Cli) -> Path:
    """main: v1 (a.txt, data/b.bin) - v2 (a.txt changed); branch side from v1 changes a.txt."""
    write(wc, "a.txt", "a1\n")
    write(wc, "data/b.bin", b"\x00" * 100)
    cli("add", ".")
    cli("commit", "-q", "-m", "v1")
    cli("branch", "side")
    write(wc, "a.txt", "a2 on main\n")
    write(wc, "data/b.bin", b"\x02" * 100)
    cli("commit", "-q", "-a", "-m", "v2")
    cli("switch", "-q", "side")
    write(wc, "a.txt", "a2 on side\n")
    write(wc, "data/b.bin", b"\x01" * 100)
    cli("commit", "-q", "-a", "-m", "side v2")
    cli("switch", "-q", "main")
    return wc


def check_unchanged_error(cli: Cli, root: Path, code: int, *args: str) -> Run:
    before = state(cli, root)
    r = cli.fail(code, *args)
    assert_one_error_line(r)
    assert state(cli, root) == before
    return r


def test_not_a_repository(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    for args in (("status",), ("log",), ("add", "."), ("rev-parse", "HEAD"), ("fsck",)):
        r = cli.fail(3, *args)
        assert_one_error_line(r)
        assert "not a dsrepo repository" in r.err
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ("rev-parse", "no-such-branch"),
        ("show", "no-such-branch"),
        ("log", "no-such-branch"),
        ("checkout", "no-such-branch"),
        ("diff", "HEAD", "no-such-branch"),
        ("merge", "no-such-branch"),
        ("rev-parse", "HEAD~5"),
        ("rev-parse", "HEAD:no/such/path"),
        ("cat-file", "-p", "0123456789ab"),
        ("tag", "t", "no-such-branch"),
        ("branch", "b", "no-such-branch"),
    ],
)
def test_unknown_revision_exit_4(repo2: Path, cli: Cli, args: tuple[str, ...]) -> None:
    r = check_unchanged_error(cli, repo2, 4, *args)
    assert "no-such" in r.err or "HEAD" in r.err or "0123456789ab" in r.err


def test_ambiguous_prefix_and_bad_ids(repo2: Path, cli: Cli) -> None:
    seen: dict[str, bytes] = {}
    repo = Repository.open(".")
    for i in range(100_000):
        data = b"blob %d" % i
        p = hash_data(data).hex()[:4]
        repo.store.put_chunk(data)
        if p in seen:
            break
        seen[p] = data
    repo.store.flush()
    repo.close()
    r = check_unchanged_error(cli, repo2, 4, "rev-parse", p)
    assert "ambiguous" in r.err and p in r.err
    r = check_unchanged_error(cli, repo2, 4, "cat-file", "-t", p)
    assert "ambiguous" in r.err
    # a longer prefix of one of them is fine
    full = hash_data(seen[p]).hex()
    assert cli("cat-file", "-p", full[:20]).out_bytes == seen[p]
    r = check_unchanged_error(cli, repo2, 4, "rev-parse", "abc")
    assert "at least 4" in r.err
    check_unchanged_error(cli, repo2, 4, "cat-file", "-t", "f" * 64)
    check_unchanged_error(cli, repo2, 4, "update-ref", "refs/heads/new", "e" * 64)


@pytest.mark.parametrize(
    "args",
    [
        ("update-ref", "refs/heads/a..b", "HEAD"),
        ("update-ref", "refs/heads/x.lock", "HEAD"),
        ("update-ref", "heads-only", "HEAD"),
        ("branch", "bad name"),
        ("branch", "--", "-starts-with-dash"),
        ("branch", "x:y"),
        ("tag", "--", "-x"),
        ("tag", "v1..2"),
        ("switch", "-c", "ends.lock"),
    ],
)
def test_bad_ref_names_exit_2(repo2: Path, cli: Cli, args: tuple[str, ...]) -> None:
    r = check_unchanged_error(cli, repo2, 2, *args)
    assert "invalid" in r.err


def test_path_outside_the_working_copy_exit_9(repo2: Path, cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("outside")
    r = check_unchanged_error(cli, repo2, 9, "add", "../x")
    assert "outside the working copy" in r.err
    check_unchanged_error(cli, repo2, 9, "add", str(tmp_path / "x"))
    check_unchanged_error(cli, repo2, 9, "add", "no-such-file")
    check_unchanged_error(cli, repo2, 9, "add", ".dsrepo/config")
    check_unchanged_error(cli, repo2, 9, "rm", "../x")


def test_unreadable_file_exit_10(repo2: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    write(repo2, "a.txt", "edited, unreadable\n")
    write(repo2, "new.txt", "new")
    real_open: Callable[..., object] = builtins.open

    def deny(path: object, *args: object, **kwargs: object) -> object:
        if str(path).endswith("a.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    index_before = (repo2 / ".dsrepo" / "index").read_bytes()
    before = state(cli, repo2)
    with monkeypatch.context() as m:
        m.setattr(filewrite, "open", deny, raising=False)
        r = cli.fail(10, "add", ".")
    assert_one_error_line(r)
    assert "a.txt" in r.err and "Permission denied" in r.err
    assert (repo2 / ".dsrepo" / "index").read_bytes() == index_before  # nothing half-staged
    assert state(cli, repo2) == before


def test_hash_object_of_a_missing_file_exit_10(repo2: Path, cli: Cli) -> None:
    check_unchanged_error(cli, repo2, 10, "hash-object", "missing.bin")
    check_unchanged_error(cli, repo2, 10, "hash-object", "-w", "missing.bin")
    assert cli("hash-object", "a.txt").out.strip() == hash_data(b"a2 on main\n").hex()


def test_conflicting_merge_exit_5_lists_paths(repo2: Path, cli: Cli) -> None:
    before = state(cli, repo2)
    r = cli.fail(5, "merge", "side")
    lines = r.err_lines
    assert lines[0].startswith("dsrepo: error: merge stopped: 2 conflicting path(s)")
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["a.txt", "data/b.bin"]
    assert sum(line.startswith("dsrepo: error:") for line in lines) == 1
    assert state(cli, repo2) == before


def test_checkout_over_uncommitted_work_exit_6(repo2: Path, cli: Cli) -> None:
    write(repo2, "a.txt", "work in progress\n")
    r = check_unchanged_error(cli, repo2, 6, "checkout", "side")
    assert "a.txt" in r.err
    check_unchanged_error(cli, repo2, 6, "switch", "side")
    check_unchanged_error(cli, repo2, 6, "merge", "side")
    assert (repo2 / "a.txt").read_text() == "work in progress\n"


def test_log_and_show_before_the_first_commit(wc: Path, cli: Cli) -> None:
    for args in (("log",), ("show",), ("rev-parse", "HEAD"), ("diff", "HEAD", "HEAD")):
        r = cli.fail(4, *args)
        assert_one_error_line(r)
        assert "commit" in r.err


def test_usage_errors_exit_2(repo2: Path, cli: Cli) -> None:
    assert cli.fail(2, "cat-file", "HEAD").code == 2  # needs one of -t -s -p
    assert cli.fail(2, "no-such-command").code == 2
    assert cli.fail(2, "merge", "--strategy", "bogus", "side").code == 2


def test_internal_errors_are_one_line_exit_70(
    repo2: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(Repository, "status", boom)
    monkeypatch.setattr("dsrepo.dvcs.worktree.Worktree.status", boom)
    monkeypatch.setattr(sys, "argv", ["dsrepo", "status"])
    monkeypatch.delenv("DSREPO_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli_main.main()
    assert exc.value.code == 70
    err = capsys.readouterr().err
    assert err.splitlines() == ["dsrepo: internal error: RuntimeError: simulated bug"]


# ---------------------------------------------------------------- the real executable


@pytest.mark.slow
def test_real_process_exit_codes_and_one_line_errors(
    tmp_path: Path, wc: Path, cli: Cli, dsrepo: Dsrepo
) -> None:
    write(wc, "a.txt", "a\n")
    cli("add", ".")
    cli("commit", "-q", "-m", "v1")
    tip = cli("rev-parse", "HEAD").out
    write(wc, "b.txt", "b\n")
    cli("add", "b.txt")
    cli("commit", "-q", "-m", "v2")
    outside = tmp_path / "outside"
    outside.mkdir()
    cases = [
        (outside, 3, ("status",)),
        (wc, 4, ("rev-parse", "nope")),
        (wc, 2, ("branch", "bad name")),
        (wc, 6, ("commit", "-m", "nothing changed")),
        (wc, 9, ("add", "../outside")),
        (wc, 3, ("init", ".")),
        (wc, 0, ("log", "--oneline", "--", "a.txt")),  # "--" as the real process sees it
    ]
    # independent commands: run them side by side (process start-up dominates)
    results = dsrepo.run_many([(cwd, args) for cwd, _, args in cases])
    for (_, code, _args), r in zip(cases, results, strict=True):
        assert r.code == code, r
        if code:
            assert_one_error_line(r)
            assert r.out == "", r
    log = results[-1].out.splitlines()
    assert [line.split()[0] for line in log] == [tip.strip()[:12]]
    assert results[-1].err == ""
    assert cli("log", "--oneline", "-n", "1").out.endswith("v2\n")
