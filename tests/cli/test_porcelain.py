"""The everyday commands, run through the CLI (click's CliRunner, in the working copy)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import blake3
import pytest

from dsrepo import Repository
from tests.cli.conftest import (
    AUTHOR_EMAIL,
    AUTHOR_NAME,
    Cli,
    assert_one_error_line,
    snapshot,
    write,
)


def head(cli: Cli, rev: str = "HEAD") -> str:
    out = cli("rev-parse", rev).out.strip()
    assert len(out) == 64
    return out


def commit_files(cli: Cli, root: Path, files: dict[str, bytes | str | None], msg: str) -> str:
    """Write (or, for None, delete) files, stage everything, commit; returns the commit id."""
    for rel, data in files.items():
        if data is None:
            (root / rel).unlink()
        else:
            write(root, rel, data)
    cli("add", ".")
    cli("commit", "-q", "-m", msg)
    return head(cli)


def short_status(cli: Cli, *args: str) -> dict[str, str]:
    out = {}
    for line in cli("status", "-s", *args).out.splitlines():
        out[line[3:]] = line[:2]
    return out


def parents_of(cli: Cli, rev: str) -> list[str]:
    return [
        line.split()[1]
        for line in cli("cat-file", "-p", rev).out.splitlines()
        if line.startswith("parent ")
    ]


# ---------------------------------------------------------------- init, add, status


def test_init_creates_a_repository_and_refuses_a_second_time(tmp_path: Path, cli: Cli) -> None:
    r = cli("init", str(tmp_path / "data"))
    assert (tmp_path / "data" / ".dsrepo" / "format").is_file()
    assert "Initialized empty dsrepo repository" in r.out
    again = cli.fail(3, "init", str(tmp_path / "data"))
    assert_one_error_line(again)
    assert "already exists" in again.err


def test_status_short_and_long(wc: Path, cli: Cli) -> None:
    commit_files(cli, wc, {"keep.txt": "k", "mod.txt": "m1", "gone.txt": "g", "st.txt": "s1"}, "v1")
    write(wc, "mod.txt", "m2 (not staged)")
    (wc / "gone.txt").unlink()
    write(wc, "st.txt", "s2 (staged)")
    write(wc, "new/staged.txt", "n")
    cli("add", "st.txt", "new/staged.txt")
    write(wc, "untracked.bin", b"\x00\x01")

    assert short_status(cli) == {
        "mod.txt": " M",
        "gone.txt": " D",
        "st.txt": "M ",
        "new/staged.txt": "A ",
        "untracked.bin": "??",
    }
    long = cli("status").out
    assert long.startswith("On branch main\n")
    staged = long.index("Changes to be committed:")
    unstaged = long.index("Changes not staged for commit:")
    untracked = long.index("Untracked files:")
    assert staged < unstaged < untracked
    assert "new file:   new/staged.txt" in long[staged:unstaged]
    assert "modified:   st.txt" in long[staged:unstaged]
    assert "modified:   mod.txt" in long[unstaged:untracked]
    assert "deleted:    gone.txt" in long[unstaged:untracked]
    assert "untracked.bin" in long[untracked:]
    assert "keep.txt" not in long

    cli("add", ".")
    assert short_status(cli) == {
        "mod.txt": "M ",
        "gone.txt": "D ",
        "st.txt": "M ",
        "new/staged.txt": "A ",
        "untracked.bin": "A ",
    }
    cli("commit", "-m", "v2")
    assert cli("status").out.rstrip().endswith("nothing to commit, working tree clean")
    assert cli("status", "-s").out == ""


def test_status_before_the_first_commit(wc: Path, cli: Cli) -> None:
    write(wc, "a.txt", "a")
    out = cli("status").out
    assert "No commits yet" in out
    assert "a.txt" in out
    assert short_status(cli) == {"a.txt": "??"}


def test_ignore_rules_and_the_repository_folder_are_never_listed(wc: Path, cli: Cli) -> None:
    write(wc, ".dsrepoignore", "*.tmp\nbuild/\n!keep.tmp\n")
    write(wc, "data/a.csv", "1,2\n")
    write(wc, "data/scratch.tmp", "x")
    write(wc, "keep.tmp", "kept")
    write(wc, "build/out.bin", "o")
    write(wc, "sub/.dsrepoignore", "local.*\n")
    write(wc, "sub/local.txt", "l")
    write(wc, "sub/shared.txt", "s")
    assert set(short_status(cli)) == {".dsrepoignore", "data/", "keep.tmp", "sub/"}
    listed = set(short_status(cli, "-uall"))
    assert listed == {
        ".dsrepoignore",
        "data/a.csv",
        "keep.tmp",
        "sub/.dsrepoignore",
        "sub/shared.txt",
    }
    cli("add", ".")
    files = set(cli("ls-files").out.split())
    assert files == listed
    cli("commit", "-m", "v1")
    assert not any(".dsrepo/" in p or p == ".dsrepo" for p in cli("ls-files", "HEAD").out.split())
    assert ".dsrepo" not in cli("status").out
    # a new ignored file does not show up either
    write(wc, "data/other.tmp", "y")
    assert short_status(cli) == {}


# ---------------------------------------------------------------- commit


def test_commit_refuses_an_empty_commit_unless_allowed(wc: Path, cli: Cli) -> None:
    r = cli.fail(6, "commit", "-m", "nothing yet")
    assert_one_error_line(r)
    first = commit_files(cli, wc, {"a.txt": "a"}, "v1")
    r = cli.fail(6, "commit", "-m", "no change")
    assert_one_error_line(r)
    assert "nothing to commit" in r.err
    assert head(cli) == first
    out = cli("commit", "--allow-empty", "-m", "empty on purpose").out
    assert "empty on purpose" in out
    second = head(cli)
    assert second != first
    assert parents_of(cli, "HEAD") == [first]
    assert cli("rev-parse", "HEAD^{tree}").out == cli("rev-parse", f"{first}^{{tree}}").out


def test_commit_all_stages_tracked_changes_only(wc: Path, cli: Cli) -> None:
    commit_files(cli, wc, {"a.txt": "a", "b.txt": "b"}, "v1")
    write(wc, "a.txt", "a2")
    (wc / "b.txt").unlink()
    write(wc, "c.txt", "untracked")
    cli("commit", "-a", "-m", "v2")
    assert cli("ls-files", "HEAD").out.split() == ["a.txt"]
    assert cli("show", "HEAD:a.txt").out_bytes == b"a2"
    assert short_status(cli) == {"c.txt": "??"}


def test_commit_metadata_shows_up(wc: Path, cli: Cli, tmp_path: Path) -> None:
    write(wc, "a.txt", "a")
    cli("add", ".")
    meta_file = tmp_path / "meta.json"
    meta_file.write_text(json.dumps({"source": "s3://raw/2026-11", "rows": 1200}))
    cli(
        "commit",
        "-m",
        "with metadata",
        "--meta",
        "owner=data-team",
        "--meta",
        "threshold=0.5",
        "--meta",
        'tags=["x","y"]',
        "--meta-file",
        str(meta_file),
    )
    out = cli("show").out
    assert 'Meta:   owner = "data-team"' in out
    assert "Meta:   threshold = 0.5" in out
    assert 'Meta:   tags = ["x", "y"]' in out
    assert 'Meta:   source = "s3://raw/2026-11"' in out
    assert "Meta:   rows = 1200" in out
    assert f"Author: {AUTHOR_NAME} <{AUTHOR_EMAIL}>" in out
    log = cli("log").out
    assert '"owner": "data-team"' in log
    c = Repository.open(".").log()[0].commit
    assert c.metadata["rows"] == 1200 and c.metadata["tags"] == ["x", "y"]


def test_missing_identity_is_one_line_exit_6(
    wc: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write(wc, "a.txt", "a")
    cli("add", ".")
    empty = tmp_path / "empty-gconfig"
    empty.write_text("")
    monkeypatch.delenv("DSREPO_AUTHOR_NAME")
    monkeypatch.delenv("DSREPO_AUTHOR_EMAIL")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(empty))
    r = cli.fail(6, "commit", "-m", "who am I")
    assert_one_error_line(r)
    assert "identity" in r.err
    assert cli.fail(4, "rev-parse", "HEAD").code == 4  # nothing was committed
    # config fixes it
    cli("config", "--global", "user.name", "Cfg Name")
    cli("config", "--global", "user.email", "cfg@example.com")
    cli("commit", "-m", "now I know")
    assert "Author: Cfg Name <cfg@example.com>" in cli("log").out


# ---------------------------------------------------------------- log, show, diff, ls-files


@pytest.fixture
def history(wc: Path, cli: Cli) -> dict[str, str]:
    """main: c1 (a, b) - c2 (a modified, d/e added) - c3 (b moved to d/b2) - c4 (d/e removed)."""
    ids = {}
    ids["c1"] = commit_files(cli, wc, {"a.txt": "alpha\n", "b.bin": b"\x00\xffbinary"}, "first")
    ids["c2"] = commit_files(cli, wc, {"a.txt": "alpha 2\n", "d/e.txt": "e" * 1000}, "second")
    cli("mv", "b.bin", "d/b2.bin")
    cli("commit", "-q", "-m", "third: move b")
    ids["c3"] = head(cli)
    ids["c4"] = commit_files(cli, wc, {"d/e.txt": None}, "fourth")
    return ids


def test_log_formats_and_limits(history: dict[str, str], cli: Cli) -> None:
    full = cli("log").out
    for c in history.values():
        assert f"commit {c}" in full
    assert full.index(history["c4"]) < full.index(history["c1"])
    one = cli("log", "--oneline").out.splitlines()
    assert [line.split()[0] for line in one] == [history[c][:12] for c in ("c4", "c3", "c2", "c1")]
    assert one[0].endswith("fourth") and "HEAD -> main" in one[0]
    assert len(cli("log", "--oneline", "-n", "2").out.splitlines()) == 2
    assert len(cli("log", "-n", "1").out.split("\ncommit ")) == 1
    graph = cli("log", "--graph", "--oneline").out.splitlines()
    assert [line[:2] for line in graph] == ["* "] * 4
    assert graph[-1].endswith("first")
    assert cli("log", "--oneline", "HEAD~2").out.splitlines()[0].startswith(history["c2"][:12])


def test_log_path_filter(history: dict[str, str], cli: Cli) -> None:
    def ids(*args: str) -> list[str]:
        return [line.split()[0] for line in cli("log", "--oneline", *args).out.splitlines()]

    h = {k: v[:12] for k, v in history.items()}
    assert ids("--", "a.txt") == [h["c2"], h["c1"]]
    assert ids("--", "d/e.txt") == [h["c4"], h["c2"]]
    assert ids("--", "d") == [h["c4"], h["c3"], h["c2"]]
    assert ids("HEAD~2", "--", "d") == [h["c2"]]


def test_show_commit_and_file_content(history: dict[str, str], cli: Cli) -> None:
    out = cli("show", history["c2"]).out
    assert out.startswith(f"commit {history['c2']}\n")
    assert "    second" in out
    assert "a.txt" in out and "d/e.txt" in out
    assert "1 added" in out and "1 modified" in out
    assert cli("show", f"{history['c1']}:b.bin").out_bytes == b"\x00\xffbinary"
    assert cli("show", "HEAD:d/b2.bin").out_bytes == b"\x00\xffbinary"
    assert cli("show", "HEAD~3:a.txt").out_bytes == b"alpha\n"
    assert cli("show", "HEAD:d").out.split() == ["b2.bin"]


def test_diff_stat_and_name_status_with_rename(history: dict[str, str], cli: Cli) -> None:
    ns = cli("diff", "--name-status", history["c2"], history["c3"]).out.splitlines()
    assert ns == ["R100\tb.bin\td/b2.bin"]
    ns = cli("diff", "--name-status", history["c1"], history["c4"]).out.splitlines()
    assert ns == ["M\ta.txt", "R100\tb.bin\td/b2.bin"]
    ns = cli("diff", "--name-status", history["c1"], history["c2"]).out.splitlines()
    assert ns == ["M\ta.txt", "A\td/e.txt"]
    stat = cli("diff", "--stat", history["c3"], history["c4"]).out
    assert "d/e.txt" in stat and "-1000 B" in stat
    assert stat.splitlines()[-1].strip().startswith("0 added (+0 B), 1 removed (-1000 B)")
    stat = cli("diff", "--stat", history["c1"], history["c3"]).out
    assert "b.bin => d/b2.bin" in stat
    assert "1 added (+1000 B), 0 removed (-0 B), 1 modified (6 B -> 8 B), 1 renamed" in stat
    # path filter
    ns = cli("diff", "--name-status", history["c1"], history["c4"], "--", "a.txt").out
    assert ns.splitlines() == ["M\ta.txt"]


def test_diff_worktree_and_cached(history: dict[str, str], wc: Path, cli: Cli) -> None:
    assert cli("diff", "--name-status").out == ""
    write(wc, "a.txt", "changed")
    write(wc, "z.txt", "staged new")
    cli("add", "z.txt")
    assert cli("diff", "--name-status").out.splitlines() == ["M\ta.txt"]
    assert cli("diff", "--name-status", "--cached").out.splitlines() == ["A\tz.txt"]
    assert cli("diff", "--name-status", "HEAD").out.splitlines() == ["M\ta.txt", "A\tz.txt"]


def test_ls_files_long_shows_size_and_blake3(wc: Path, cli: Cli) -> None:
    big = os.urandom(2 * 1024 * 1024 + 17)
    files = {"small.txt": b"hello\n", "dir/big.bin": big, "empty": b""}
    commit_files(cli, wc, dict(files), "v1")
    for rev in ([], ["HEAD"]):
        rows = cli("ls-files", "-l", *rev).out.splitlines()
        assert len(rows) == 3
        for row in rows:
            meta, path = row.split("\t")
            kind, size, cid = meta.split()
            assert kind == "file"
            assert int(size) == len(files[path])
            assert cid == blake3.blake3(files[path]).hexdigest()
    assert cli("ls-files", "HEAD", "dir/*").out.split() == ["dir/big.bin"]
    assert cli("ls-files", "*.txt").out.split() == ["small.txt"]


# ---------------------------------------------------------------- tags and branches


def test_tags(history: dict[str, str], cli: Cli) -> None:
    cli("tag", "light", "HEAD~1")
    cli("tag", "-a", "v1.0", "-m", "release one")
    cli("tag", "-m", "older", "v0.9", history["c1"])
    names = cli("tag").out.splitlines()
    assert [n.split()[0] for n in names] == ["light", "v0.9", "v1.0"]
    assert any("release one" in n for n in names)
    assert [n.split()[0] for n in cli("tag", "-l", "v*").out.splitlines()] == ["v0.9", "v1.0"]
    assert head(cli, "light") == history["c3"]
    assert head(cli, "v1.0^{commit}") == history["c4"]
    assert head(cli, "v1.0") != history["c4"]  # the annotated tag object itself
    assert cli("cat-file", "-t", "v1.0").out.strip() == "tag"
    assert cli("cat-file", "-t", "light").out.strip() == "commit"
    shown = cli("show", "v1.0").out
    assert shown.startswith("tag v1.0\n") and "release one" in shown
    assert f"commit {history['c4']}" in shown
    assert "tag: v1.0" in cli("log", "--oneline", "-n", "1").out
    assert_one_error_line(cli.fail(5, "tag", "light"))  # exists
    cli("tag", "-f", "light", "HEAD")
    assert head(cli, "light") == history["c4"]
    out = cli("tag", "-d", "light").out
    assert "Deleted tag 'light'" in out
    assert [n.split()[0] for n in cli("tag").out.splitlines()] == ["v0.9", "v1.0"]
    assert_one_error_line(cli.fail(4, "tag", "-d", "light"))
    assert_one_error_line(cli.fail(4, "rev-parse", "light"))


def test_branches_create_list_delete(history: dict[str, str], wc: Path, cli: Cli) -> None:
    cli("branch", "feature")
    cli("branch", "old", "HEAD~2")
    assert cli("branch").out.splitlines() == ["  feature", "* main", "  old"]
    assert head(cli, "old") == history["c2"]
    cli("switch", "feature")
    assert cli("branch").out.splitlines() == ["* feature", "  main", "  old"]
    commit_files(cli, wc, {"f.txt": "f"}, "on feature")
    cli("switch", "main")
    r = cli.fail(6, "branch", "-d", "feature")
    assert_one_error_line(r)
    assert "not merged" in r.err
    assert head(cli, "feature")
    out = cli("branch", "-d", "old").out  # merged into main
    assert "Deleted branch old" in out
    cli("branch", "-D", "feature")
    assert cli("branch").out.splitlines() == ["* main"]
    assert_one_error_line(cli.fail(6, "branch", "-d", "main"))  # checked out
    assert_one_error_line(cli.fail(5, "branch", "main", "HEAD~1"))  # exists


# ---------------------------------------------------------------- switching and checkout


def test_switch_and_checkout_branch_and_detached(
    history: dict[str, str], wc: Path, cli: Cli
) -> None:
    cli("switch", "-c", "topic")
    commit_files(cli, wc, {"topic.txt": "t"}, "topic work")
    cli("switch", "main")
    assert not (wc / "topic.txt").exists()
    cli("checkout", "topic")
    assert (wc / "topic.txt").read_text() == "t"
    assert cli("status").out.startswith("On branch topic\n")
    cli("checkout", history["c2"][:10])
    st = cli("status").out
    assert st.startswith(f"HEAD detached at {history['c2'][:12]}")
    assert head(cli) == history["c2"]
    assert snapshot(wc) == {
        "a.txt": b"alpha 2\n",
        "b.bin": b"\x00\xffbinary",
        "d/e.txt": b"e" * 1000,
    }
    assert "HEAD" in cli("log", "--oneline", "-n", "1").out
    commit_files(cli, wc, {"detached.txt": "d"}, "detached commit")
    assert cli("commit", "--allow-empty", "-m", "x").out.startswith("[detached HEAD")
    cli("checkout", "main")
    assert head(cli) == history["c4"]
    assert_one_error_line(cli.fail(4, "switch", "nope"))
    assert_one_error_line(cli.fail(4, "checkout", "nope"))


def set_old_mtime(path: Path) -> int:
    old = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(old, old))
    return old


def test_checkout_writes_only_files_that_differ(wc: Path, cli: Cli) -> None:
    commit_files(cli, wc, {"same.bin": b"s" * 5000, "changes.txt": "v1"}, "v1")
    cli("branch", "other")
    commit_files(cli, wc, {"changes.txt": "v2", "extra.txt": "x"}, "v2")
    stamp = set_old_mtime(wc / "same.bin")
    ino = (wc / "same.bin").stat().st_ino
    cli("switch", "other")
    assert (wc / "changes.txt").read_text() == "v1"
    assert not (wc / "extra.txt").exists()
    cli("switch", "main")
    assert (wc / "changes.txt").read_text() == "v2"
    st = (wc / "same.bin").stat()
    assert (st.st_mtime_ns, st.st_ino) == (stamp, ino)
    cli("checkout", "HEAD~1")
    cli("checkout", "--force", "main")
    assert (wc / "same.bin").stat().st_mtime_ns == stamp


def test_checkout_removes_files_but_keeps_untracked_and_ignored(wc: Path, cli: Cli) -> None:
    write(wc, ".dsrepoignore", "*.log\n")
    commit_files(cli, wc, {"base.txt": "b"}, "v1")
    commit_files(cli, wc, {"later/x.txt": "x", "later/y.txt": "y"}, "v2")
    write(wc, "notes.txt", "untracked")
    write(wc, "run.log", "ignored")
    write(wc, "later/scratch.log", "ignored in a folder the old version lacks")
    cli("checkout", "HEAD~1")
    assert not (wc / "later/x.txt").exists() and not (wc / "later/y.txt").exists()
    assert (wc / "notes.txt").read_text() == "untracked"
    assert (wc / "run.log").read_text() == "ignored"
    assert (wc / "later/scratch.log").read_text() == "ignored in a folder the old version lacks"
    cli("checkout", "main")
    assert (wc / "later/x.txt").read_text() == "x"


def test_checkout_refuses_to_overwrite_uncommitted_changes(wc: Path, cli: Cli) -> None:
    commit_files(cli, wc, {"a.txt": "a1", "b.txt": "b1"}, "v1")
    commit_files(cli, wc, {"a.txt": "a2"}, "v2")
    tip = head(cli)
    write(wc, "a.txt", "my precious edit")
    r = cli.fail(6, "checkout", "HEAD~1")
    assert_one_error_line(r)
    assert "a.txt" in r.err
    assert (wc / "a.txt").read_text() == "my precious edit"
    assert head(cli) == tip
    assert cli("status").out.startswith("On branch main")
    # staged work is protected too
    cli("add", "a.txt")
    r = cli.fail(6, "checkout", "HEAD~1")
    assert "a.txt" in r.err
    # an edit to a path the switch does not touch is carried over
    cli("restore", "--staged", "a.txt")
    cli("restore", "a.txt")
    write(wc, "b.txt", "edit carried over")
    cli("checkout", "HEAD~1")
    assert (wc / "b.txt").read_text() == "edit carried over"
    assert (wc / "a.txt").read_text() == "a1"
    cli("checkout", "main")
    # --force discards
    write(wc, "a.txt", "discard me")
    cli("checkout", "--force", "HEAD~1")
    assert (wc / "a.txt").read_text() == "a1"


def test_checkout_refuses_to_overwrite_an_untracked_file(wc: Path, cli: Cli) -> None:
    commit_files(cli, wc, {"a.txt": "a"}, "v1")
    commit_files(cli, wc, {"new.txt": "from v2"}, "v2")
    cli("checkout", "HEAD~1")
    write(wc, "new.txt", "untracked, in the way")
    r = cli.fail(6, "checkout", "main")
    assert "new.txt" in r.err
    assert (wc / "new.txt").read_text() == "untracked, in the way"


def test_checkout_into_a_directory(
    history: dict[str, str], wc: Path, cli: Cli, tmp_path: Path
) -> None:
    before = snapshot(wc)
    out = tmp_path / "out"
    cli("checkout", "--into", str(out), history["c2"])
    assert snapshot(out) == {
        "a.txt": b"alpha 2\n",
        "b.bin": b"\x00\xffbinary",
        "d/e.txt": b"e" * 1000,
    }
    assert snapshot(wc) == before
    assert head(cli) == history["c4"]
    sub = tmp_path / "sub"
    cli("checkout", "--into", str(sub), "--only", "d/*", history["c2"])
    assert snapshot(sub) == {"d/e.txt": b"e" * 1000}
    cli("checkout", "--into", str(sub), "--only", "*.txt", "--only", "b.bin", history["c1"])
    assert snapshot(sub) == {
        "d/e.txt": b"e" * 1000,
        "a.txt": b"alpha\n",
        "b.bin": b"\x00\xffbinary",
    }
    assert_one_error_line(cli.fail(6, "checkout", "--into", str(sub), history["c2"]))
    cli("checkout", "--into", str(sub), "--force", history["c2"])
    assert (sub / "a.txt").read_bytes() == b"alpha 2\n"
    assert_one_error_line(cli.fail(9, "checkout", "--into", str(sub), "--only", "nope*", "HEAD"))


def test_checkout_only_into_the_working_copy(history: dict[str, str], wc: Path, cli: Cli) -> None:
    (wc / "sub").mkdir()
    cli("checkout", "--only", "*.txt", history["c1"])  # patterns are worktree-relative
    assert (wc / "a.txt").read_bytes() == b"alpha\n"
    assert head(cli) == history["c4"]
    assert short_status(cli) == {"a.txt": " M"}
    cli("restore", "a.txt")
    cli.monkeypatch.chdir(wc / "sub")
    cli("checkout", "--only", "d/*", history["c2"])
    assert (wc / "d/e.txt").read_bytes() == b"e" * 1000
    assert (wc / "d/b2.bin").exists()  # not in c2, left alone
    assert head(cli) == history["c4"]
    assert_one_error_line(cli.fail(9, "checkout", "--only", "nothing-matches*", "HEAD"))


def test_restore(history: dict[str, str], wc: Path, cli: Cli) -> None:
    write(wc, "a.txt", "scribbled")
    (wc / "d/b2.bin").unlink()
    cli("restore", "a.txt", "d")
    assert (wc / "a.txt").read_bytes() == b"alpha 2\n"
    assert (wc / "d/b2.bin").read_bytes() == b"\x00\xffbinary"
    assert short_status(cli) == {}
    cli("restore", "--source", history["c1"], "a.txt")
    assert (wc / "a.txt").read_bytes() == b"alpha\n"
    assert short_status(cli) == {"a.txt": " M"}
    cli("add", "a.txt")
    assert short_status(cli) == {"a.txt": "M "}
    cli("restore", "--staged", "a.txt")
    assert short_status(cli) == {"a.txt": " M"}
    assert_one_error_line(cli.fail(9, "restore", "no-such-file"))
    # from a version, only the named file's or folder's subtree is read
    (wc / "d/b2.bin").unlink()
    cli("restore", "--source", "HEAD", "d", "a.txt")
    assert (wc / "d/b2.bin").read_bytes() == b"\x00\xffbinary"
    assert (wc / "a.txt").read_bytes() == b"alpha 2\n"
    assert short_status(cli) == {}
    for missing in ("d/nope", "a.txt/below", "no-such-file"):
        assert_one_error_line(cli.fail(9, "restore", "--source", "HEAD", missing))


def test_rm_and_mv(history: dict[str, str], wc: Path, cli: Cli) -> None:
    cli("rm", "a.txt")
    assert not (wc / "a.txt").exists()
    assert short_status(cli) == {"a.txt": "D "}
    cli("rm", "--cached", "d/b2.bin")
    assert (wc / "d/b2.bin").exists()
    # a folder of untracked files is one line (its staged deletion shows too, as in git)
    assert short_status(cli) == {"a.txt": "D ", "d/b2.bin": "D ", "d/": "??"}
    assert short_status(cli, "-uall") == {"a.txt": "D ", "d/b2.bin": "??"}
    cli("restore", "--staged", "d/b2.bin")
    cli("mv", "d/b2.bin", "moved.bin")
    assert not (wc / "d").exists()  # emptied folder pruned
    assert (wc / "moved.bin").read_bytes() == b"\x00\xffbinary"
    cli("commit", "-m", "rm and mv")
    assert cli("ls-files", "HEAD").out.split() == ["moved.bin"]
    ns = cli("diff", "--name-status", "HEAD~1", "HEAD").out.splitlines()
    assert ns == ["D\ta.txt", "R100\td/b2.bin\tmoved.bin"]
    # rm refuses to delete unstaged work
    write(wc, "moved.bin", "edited")
    r = cli.fail(6, "rm", "moved.bin")
    assert "moved.bin" in r.err and (wc / "moved.bin").exists()
    assert_one_error_line(cli.fail(9, "rm", "not-tracked.txt"))
    write(wc, "target.bin", "t")
    assert_one_error_line(cli.fail(6, "mv", "moved.bin", "target.bin"))


def test_config_get_set_global(wc: Path, cli: Cli, identity: Path) -> None:
    cli("config", "core.example", "local-value")
    assert cli("config", "core.example").out.strip() == "local-value"
    cli("config", "--global", "core.other", "global-value")
    assert cli("config", "core.other").out.strip() == "global-value"  # layered view
    assert cli("config", "--global", "core.other").out.strip() == "global-value"
    assert "global-value" in identity.read_text()
    assert "local-value" not in identity.read_text()
    cli("config", "core.other", "overridden")
    assert cli("config", "core.other").out.strip() == "overridden"
    assert "core.example=local-value" in cli("config", "-l").out.splitlines()
    cli("config", "--unset", "core.example")
    assert_one_error_line(cli.fail(2, "config", "core.example"))
    assert_one_error_line(cli.fail(2, "config", "not a key", "v"))
    cli("config", "remote.origin.url", "s3://bucket/prefix")
    assert cli("config", "remote.origin.url").out.strip() == "s3://bucket/prefix"


# ---------------------------------------------------------------- revisions


def test_revision_syntax(history: dict[str, str], wc: Path, cli: Cli) -> None:
    assert head(cli, "HEAD~1") == history["c3"]
    assert head(cli, "HEAD~3") == history["c1"]
    assert head(cli, "HEAD^") == history["c3"]
    assert head(cli, "main~2") == history["c2"]
    assert head(cli, "@") == history["c4"]
    assert head(cli, history["c2"][:8]) == history["c2"]
    assert head(cli, "refs/heads/main") == history["c4"]
    cli("tag", "t2", "HEAD~2")
    assert head(cli, "t2") == history["c2"]
    assert head(cli, "t2~1") == history["c1"]
    # REV:PATH names the file content (plain BLAKE3)
    cid = head(cli, "HEAD:a.txt")
    assert cid == blake3.blake3(b"alpha 2\n").hexdigest()
    assert cli("cat-file", "-p", "HEAD~3:a.txt").out_bytes == b"alpha\n"
    assert cli("cat-file", "-p", cid).out_bytes == b"alpha 2\n"
    assert cli("cat-file", "-t", "HEAD:a.txt").out.strip() == "file"
    assert cli("cat-file", "-s", "HEAD:d/b2.bin").out.strip() == "8"
    assert cli("cat-file", "-t", "HEAD:d").out.strip() == "tree"
    assert cli("cat-file", "-t", "HEAD^{tree}").out.strip() == "tree"
    assert_one_error_line(cli.fail(4, "rev-parse", "HEAD~4"))
    assert_one_error_line(cli.fail(4, "rev-parse", "HEAD:missing.txt"))
    assert_one_error_line(cli.fail(4, "rev-parse", "HEAD^2"))


def test_second_parent_of_a_merge(wc: Path, cli: Cli) -> None:
    base = commit_files(cli, wc, {"a.txt": "a"}, "base")
    cli("switch", "-c", "side")
    side = commit_files(cli, wc, {"s.txt": "s"}, "side")
    cli("switch", "main")
    ours = commit_files(cli, wc, {"m.txt": "m"}, "main work")
    cli("merge", "side")
    assert head(cli, "HEAD^1") == ours
    assert head(cli, "HEAD^2") == side
    assert head(cli, "HEAD^2~1") == base
    assert head(cli, "HEAD~2") == base


# ---------------------------------------------------------------- merge


@pytest.fixture
def forked(wc: Path, cli: Cli) -> dict[str, str]:
    """base (a, b, c) with branches left and right created from it, HEAD on main at base."""
    base = commit_files(
        cli, wc, {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n", "keep/k.txt": "k"}, "base"
    )
    cli("branch", "left")
    cli("branch", "right")
    return {"base": base}


def test_clean_three_way_merge(forked: dict[str, str], wc: Path, cli: Cli) -> None:
    cli("switch", "left")
    left = commit_files(cli, wc, {"a.txt": "a left\n", "l.txt": "new on left", "c.txt": None}, "L")
    cli("switch", "main")
    main = commit_files(cli, wc, {"b.txt": "b main\n", "m.txt": "new on main"}, "M")
    out = cli("merge", "left", "-m", "merge left").out
    assert "Merged left" in out
    assert parents_of(cli, "HEAD") == [main, left]
    expected = {
        "a.txt": b"a left\n",
        "b.txt": b"b main\n",
        "l.txt": b"new on left",
        "m.txt": b"new on main",
        "keep/k.txt": b"k",
    }
    assert snapshot(wc) == expected
    assert short_status(cli) == {}
    assert cli("log", "-n", "1").out.count("merge left") == 1


def test_octopus_merge_has_every_parent(forked: dict[str, str], wc: Path, cli: Cli) -> None:
    tips = []
    for name in ("left", "right"):
        cli("switch", name)
        tips.append(commit_files(cli, wc, {f"{name}.txt": name}, f"on {name}"))
    cli("switch", "main")
    main = commit_files(cli, wc, {"main.txt": "main", "a.txt": "a from main\n"}, "on main")
    cli("merge", "left", "right")
    assert parents_of(cli, "HEAD") == [main, *tips]
    assert len(Repository.open(".").store.get_commit(bytes.fromhex(head(cli))).parents) == 3
    assert snapshot(wc) == {
        "a.txt": b"a from main\n",
        "b.txt": b"b\n",
        "c.txt": b"c\n",
        "keep/k.txt": b"k",
        "left.txt": b"left",
        "right.txt": b"right",
        "main.txt": b"main",
    }
    graph = cli("log", "--graph", "--oneline").out.splitlines()
    assert graph[0].startswith("*-. ")
    # four heads at once
    cli("branch", "third", forked["base"])
    cli("switch", "third")
    third = commit_files(cli, wc, {"third.txt": "3"}, "on third")
    cli("branch", "fourth", forked["base"])
    cli("switch", "fourth")
    fourth = commit_files(cli, wc, {"fourth.txt": "4"}, "on fourth")
    cli("switch", "main")
    merged = head(cli)
    cli("merge", "third", "fourth", "left")  # left is already merged: not a parent again
    assert parents_of(cli, "HEAD") == [merged, third, fourth]


def test_conflicting_merge_changes_nothing(forked: dict[str, str], wc: Path, cli: Cli) -> None:
    cli("switch", "left")
    commit_files(cli, wc, {"a.txt": "left a\n", "b.txt": "left b\n", "c.txt": None, "x": "1"}, "L")
    cli("switch", "main")
    main = commit_files(
        cli, wc, {"a.txt": "main a\n", "b.txt": "main b\n", "c.txt": "main c\n"}, "M"
    )
    before = snapshot(wc)
    r = cli.fail(5, "merge", "left")
    lines = r.err.splitlines()
    assert lines[0].startswith("dsrepo: error: merge stopped: 3 conflicting path(s)")
    assert not any(line.startswith("dsrepo: error:") for line in lines[1:])
    for path in ("a.txt", "b.txt", "c.txt"):
        assert any(line.strip().startswith(f"{path}:") for line in lines[1:]), r
    assert "modify/delete" in r.err and "both modified" in r.err
    assert "x" not in "".join(lines[1:]).split()
    assert snapshot(wc) == before
    assert head(cli) == main
    assert short_status(cli) == {}
    assert not (wc / ".dsrepo" / "MERGE_HEAD").exists()


@pytest.mark.parametrize("strategy", ["ours", "theirs", "first", "last"])
def test_strategies_resolve_conflicts_and_say_so(
    forked: dict[str, str], wc: Path, cli: Cli, strategy: str
) -> None:
    cli("switch", "left")
    commit_files(cli, wc, {"a.txt": "left a\n", "l.txt": "l"}, "L")
    cli("switch", "main")
    commit_files(cli, wc, {"a.txt": "main a\n"}, "M")
    r = cli("merge", "--strategy", strategy, "left")
    assert f"resolved by --strategy {strategy}: a.txt" in r.err
    want = "main a\n" if strategy in ("ours", "first") else "left a\n"
    assert (wc / "a.txt").read_text() == want
    assert (wc / "l.txt").read_text() == "l"
    assert len(parents_of(cli, "HEAD")) == 2
    meta = Repository.open(".").log()[0].commit.metadata
    assert meta["merge"] == {"strategy": strategy, "resolved": ["a.txt"]}
    assert cli("show", "HEAD:a.txt").out == want


def test_unrelated_histories_merge_as_a_union(wc: Path, cli: Cli) -> None:
    main = commit_files(cli, wc, {"shared.txt": "same", "main.txt": "m"}, "main root")
    repo = Repository.open(".")
    repo.refs.set_symbolic("HEAD", "refs/heads/orphan")
    cli("rm", "-q", "--cached", ".")
    for p in ("shared.txt", "main.txt"):
        (wc / p).unlink()
    orphan = commit_files(cli, wc, {"shared.txt": "same", "other.txt": "o"}, "orphan root")
    assert parents_of(cli, "HEAD") == []
    cli("switch", "main")
    cli("merge", "orphan")
    assert parents_of(cli, "HEAD") == [main, orphan]
    assert snapshot(wc) == {"shared.txt": b"same", "main.txt": b"m", "other.txt": b"o"}


def test_no_commit_then_commit_records_a_merge(forked: dict[str, str], wc: Path, cli: Cli) -> None:
    cli("switch", "left")
    left = commit_files(cli, wc, {"l.txt": "l"}, "L")
    cli("switch", "main")
    main = commit_files(cli, wc, {"m.txt": "m"}, "M")
    out = cli("merge", "--no-commit", "left").out
    assert "dsrepo commit" in out
    assert head(cli) == main
    assert (wc / "l.txt").read_text() == "l"
    assert "Merging" in cli("status").out
    assert_one_error_line(cli.fail(6, "merge", "left"))  # already merging
    cli("commit", "-m", "merged by hand")
    assert parents_of(cli, "HEAD") == [main, left]
    assert "Merging" not in cli("status").out
    assert cli("ls-files", "HEAD").out.split() == [
        "a.txt",
        "b.txt",
        "c.txt",
        "keep/k.txt",
        "l.txt",
        "m.txt",
    ]


def test_no_commit_then_abort_restores(forked: dict[str, str], wc: Path, cli: Cli) -> None:
    cli("switch", "left")
    commit_files(cli, wc, {"l.txt": "l", "a.txt": "left a", "c.txt": None}, "L")
    cli("switch", "main")
    main = commit_files(cli, wc, {"m.txt": "m"}, "M")
    before = snapshot(wc)
    cli("merge", "--no-commit", "left")
    assert snapshot(wc) != before
    cli("merge", "--abort")
    assert snapshot(wc) == before
    assert head(cli) == main
    assert short_status(cli) == {}
    assert_one_error_line(cli.fail(6, "merge", "--abort"))


def test_fast_forward(forked: dict[str, str], wc: Path, cli: Cli) -> None:
    cli("switch", "left")
    left = commit_files(cli, wc, {"l.txt": "l"}, "L")
    cli("switch", "main")
    out = cli("merge", "left").out
    assert out.startswith("Fast-forward")
    assert head(cli) == left
    assert (wc / "l.txt").read_text() == "l"
    assert cli("merge", "left").out.strip() == "Already up to date."
    cli("switch", "right")
    cli("merge", "--no-ff", "left")
    assert parents_of(cli, "HEAD") == [forked["base"], left]


def test_deletion_on_one_side_of_an_unchanged_path_deletes_it(
    forked: dict[str, str], wc: Path, cli: Cli
) -> None:
    cli("switch", "left")
    commit_files(cli, wc, {"c.txt": None}, "remove c")
    cli("switch", "main")
    commit_files(cli, wc, {"m.txt": "m"}, "M")
    cli("merge", "left")
    assert not (wc / "c.txt").exists()
    assert "c.txt" not in cli("ls-files", "HEAD").out.split()


def test_a_file_removed_in_a_child_is_not_resurrected(
    forked: dict[str, str], wc: Path, cli: Cli
) -> None:
    """ClearML #785: a child version that removed files, merged with a sibling of its parent,
    must not bring the removed files back."""
    cli("switch", "left")  # the "cleaned" child of base
    commit_files(cli, wc, {"b.txt": None, "keep/k.txt": None, "a.txt": "a cleaned\n"}, "clean")
    cli("switch", "right")  # another child of base that did not touch those files
    commit_files(cli, wc, {"r.txt": "r"}, "R")
    cli("merge", "left", "-m", "combine")
    files = cli("ls-files", "HEAD").out.split()
    assert "b.txt" not in files and "keep/k.txt" not in files
    assert not (wc / "b.txt").exists() and not (wc / "keep").exists()
    assert sorted(files) == ["a.txt", "c.txt", "r.txt"]
    assert (wc / "a.txt").read_text() == "a cleaned\n"
    # and merging the other way round gives the same files
    cli("switch", "left")
    cli("merge", "right")
    assert sorted(cli("ls-files", "HEAD").out.split()) == ["a.txt", "c.txt", "r.txt"]


def test_merge_refuses_with_uncommitted_changes(forked: dict[str, str], wc: Path, cli: Cli) -> None:
    cli("switch", "left")
    commit_files(cli, wc, {"l.txt": "l", "a.txt": "a on left\n"}, "L")
    cli("switch", "main")
    commit_files(cli, wc, {"m.txt": "m"}, "M")
    tip = head(cli)
    write(wc, "a.txt", "dirty")  # a path the merge changes (unrelated dirty paths are kept)
    r = cli.fail(6, "merge", "left")
    assert_one_error_line(r)
    assert "a.txt" in r.err
    assert head(cli) == tip and (wc / "a.txt").read_text() == "dirty"
    assert not (wc / "l.txt").exists()


def test_a_file_replaced_by_a_directory_and_back(wc: Path, cli: Cli) -> None:
    commit_files(cli, wc, {"x": "file x", "d/inner.txt": "inner"}, "v1")
    (wc / "x").unlink()
    write(wc, "x/y.txt", "now a folder")
    (wc / "d/inner.txt").unlink()
    (wc / "d").rmdir()
    write(wc, "d", "now a file")
    assert short_status(cli) == {"x": " D", "x/": "??", "d/inner.txt": " D", "d": "??"}
    cli("add", ".")
    assert short_status(cli) == {"x": "D ", "x/y.txt": "A ", "d/inner.txt": "D ", "d": "A "}
    cli("commit", "-m", "swap kinds")
    assert cli("ls-files", "HEAD").out.split() == ["d", "x/y.txt"]
    assert cli("diff", "--name-status", "HEAD~1", "HEAD").out.splitlines() == [
        "A\td",
        "D\td/inner.txt",
        "D\tx",
        "A\tx/y.txt",
    ]
    cli("checkout", "HEAD~1")
    assert snapshot(wc) == {"x": b"file x", "d/inner.txt": b"inner"}
    cli("checkout", "main")
    assert snapshot(wc) == {"x/y.txt": b"now a folder", "d": b"now a file"}


def test_checkout_replaces_a_folder_by_a_file_only_when_nothing_is_lost(wc: Path, cli: Cli) -> None:
    commit_files(cli, wc, {"x": "file x"}, "v1")
    (wc / "x").unlink()
    write(wc, "x/y.txt", "now a folder")
    cli("add", ".")
    cli("commit", "-m", "x becomes a folder")
    write(wc, "x/untracked.txt", "mine")
    r = cli.fail(6, "checkout", "HEAD~1")
    assert "x" in r.err and (wc / "x/untracked.txt").exists()
    (wc / "x/untracked.txt").unlink()
    write(wc, "x/y.txt", "modified")
    r = cli.fail(6, "checkout", "HEAD~1")
    assert (wc / "x/y.txt").read_text() == "modified"
    cli("restore", "x/y.txt")
    cli("checkout", "HEAD~1")
    assert snapshot(wc) == {"x": b"file x"}
