"""Dataset workflows through the CLI: add by pattern, verify, search, ..."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli.conftest import Cli, assert_one_error_line, write


def test_add_pattern_and_force(cli: Cli, wc: Path) -> None:
    write(wc, "t/a.csv", "a")
    write(wc, "b.csv", "b")
    write(wc, "img/1/x.jpg", "x")
    write(wc, ".dsrepoignore", "*.tmp\n")
    write(wc, "scratch.tmp", "s")
    cli("add", "*.csv", "img/**/*.jpg")
    assert cli("status", "-s").out.splitlines() == [
        "?? .dsrepoignore",
        "A  b.csv",
        "A  img/1/x.jpg",
        "A  t/a.csv",
    ]
    r = cli.fail(1, "add", "scratch.tmp")
    assert_one_error_line(r)
    assert "add -f" in r.err
    cli.fail(9, "add", "*.nothing")
    cli("add", "-f", "scratch.tmp")
    assert "A  scratch.tmp" in cli("status", "-s").out.splitlines()


def test_verify_directory(cli: Cli, wc: Path, tmp_path: Path) -> None:
    write(wc, "a.txt", "a")
    write(wc, "d/b.txt", "b")
    cli("add", ".")
    cli("commit", "-q", "-m", "one")
    assert cli("verify", ".").out == ""
    copy = tmp_path / "copy"
    cli("checkout", "-q", "HEAD", "--into", str(copy))
    write(copy, "a.txt", "changed")
    write(copy, "new.txt", "n")
    (copy / "d" / "b.txt").unlink()
    r = cli.fail(1, "verify", str(copy), "HEAD")
    assert r.out.splitlines() == ["M a.txt", "D d/b.txt", "? new.txt"]


def test_log_search(cli: Cli, wc: Path) -> None:
    write(wc, "a", "1")
    cli("add", ".")
    cli("commit", "-q", "-m", "raw export", "--meta", "rows=100")
    write(wc, "a", "2")
    cli("commit", "-q", "-a", "-m", "cleaned", "--meta", "rows=90")
    cli("switch", "-q", "-c", "exp")
    write(wc, "a", "3")
    cli("commit", "-q", "-a", "-m", "big experiment", "--meta", "rows=5000")
    cli("switch", "-q", "main")

    def subjects(*args: str) -> list[str]:
        return [line.split(" ", 1)[1] for line in cli("log", "--oneline", *args).out.splitlines()]

    assert subjects("--grep", "clean") == ["(HEAD -> main) cleaned"]
    assert subjects("--meta", "rows>=100") == ["raw export"]
    assert subjects("--all", "--meta", "rows>=100") == ["(exp) big experiment", "raw export"]
    assert subjects("--all", "--author", "Test User", "--grep", "^big") == ["(exp) big experiment"]
    assert subjects("--until", "2000-01-01") == []
    r = cli.fail(2, "log", "--meta", "rows>lots")
    assert_one_error_line(r)


def test_sync_outside_folder(cli: Cli, wc: Path, tmp_path: Path) -> None:
    ext = tmp_path / "ext"
    write(ext, "a.csv", "1")
    write(ext, "old/b.csv", "2")
    r = cli("sync", str(ext), "-m", "first", "--meta", "source=ext")
    assert r.out.splitlines()[:2] == ["A\ta.csv", "A\told/b.csv"]
    assert r.out.splitlines()[2].endswith("] first")
    (ext / "old" / "b.csv").rename(ext / "b.csv")
    (ext / "a.csv").unlink()
    assert cli("sync", str(ext)).out.splitlines() == ["D\ta.csv", "R\told/b.csv\tb.csv"]
    cli("commit", "-q", "-m", "second")
    assert cli("ls-files", "HEAD").out.splitlines() == ["b.csv"]
    cli.fail(2, "sync", str(ext), "--meta", "k=v")


def test_notes_cli(cli: Cli, wc: Path, tmp_path: Path) -> None:
    write(wc, "a", "1")
    cli("add", ".")
    cli("commit", "-q", "-m", "one")
    head = cli("rev-parse", "HEAD").out.strip()
    write(tmp_path, "stats.json", '{"stats": {"age": {"mean": 31.5, "std": 4}}, "ok": true}')
    cli("notes", "add", "-m", "checked", "--meta-file", str(tmp_path / "stats.json"))
    assert cli("rev-parse", "HEAD").out.strip() == head
    assert cli("notes", "show").out.splitlines() == [
        "checked",
        "",
        "ok  true",
        "",
        "stats:",
        "     mean  std",
        "---  ----  ---",
        "age  31.5  4",
    ]
    assert_one_error_line(cli.fail(5, "notes", "add", "-m", "again"))
    cli("notes", "edit", "--meta", "ok=false")
    log = cli("log").out
    assert "Notes:\n    checked\n    ok = false\n" in log
    shown = cli("show", "--meta-format", "json").out
    assert '    "ok": false,' in shown
    assert cli("notes", "list").out == f"{head[:12]} checked\n"
    assert cli("log", "--oneline", "--meta", "ok=false").out.startswith(head[:12])
    cli("notes", "remove")
    cli.fail(1, "notes", "show")


def test_squash_cli(cli: Cli, wc: Path) -> None:
    for i in range(3):
        write(wc, f"f{i}", str(i))
        cli("add", ".")
        cli("commit", "-q", "-m", f"v{i}", "--meta", f"step={i}")
    r = cli("squash", "HEAD~2..HEAD", "-m", "squashed")
    assert r.out.startswith("[main ") and r.out.rstrip().endswith("] squashed")
    lines = cli("log", "--oneline").out.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["(HEAD -> main) squashed", "v0"]
    assert cli("ls-files").out.splitlines() == ["f0", "f1", "f2"]
    assert_one_error_line(cli.fail(4, "squash", "HEAD", "-m", "x"))


def test_published_tags_cli(cli: Cli, wc: Path, tmp_path: Path) -> None:
    write(wc, "a", "1")
    cli("add", ".")
    cli("commit", "-q", "-m", "one")
    cli("config", "tag.immutable", "v*")
    cli("tag", "v1")
    cli("tag", "scratch")
    cli("remote", "add", "origin", str(tmp_path / "remote"))
    cli("push", "-q", "origin", "main", "--tags")
    assert_one_error_line(cli.fail(5, "tag", "-f", "v1"))
    assert_one_error_line(cli.fail(5, "tag", "-d", "v1"))
    cli("tag", "-d", "scratch")  # not published: as in git
    cli("tag", "-d", "-f", "v1")
    write(wc, "a", "2")
    cli("commit", "-q", "-a", "-m", "two")
    cli("tag", "v1")
    cli.fail(5, "push", "--force", "origin", "v1")


def test_working_repository_remote_cli(cli: Cli, wc: Path, tmp_path: Path) -> None:
    mate = tmp_path / "dsB"
    cli("init", "-q", str(mate))
    write(mate, "a.csv", "1")
    here = Path.cwd()
    os.chdir(mate)
    try:
        cli("add", ".")
        cli("commit", "-q", "-m", "from B")
    finally:
        os.chdir(here)
    cli("remote", "add", "B", str(mate))
    cli("pull", "-q", "B", "main")
    assert cli("ls-files").out.splitlines() == ["a.csv"]
    r = cli.fail(8, "push", "B", "main")
    assert_one_error_line(r)
    assert "working repository" in r.err
