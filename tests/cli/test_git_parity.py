"""Behaviours a git user relies on, each found wrong once (docs review): kept fixed by these."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli


def _commit(cli: Cli, wc: Path, name: str, text: str, msg: str) -> None:
    (wc / name).parent.mkdir(parents=True, exist_ok=True)
    (wc / name).write_text(text)
    cli("add", name)
    cli("commit", "-m", msg)


def test_show_of_the_root_tree_lists_it(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "d/a.txt", "a", "one")
    _commit(cli, wc, "b.txt", "b", "two")
    assert cli("show", "HEAD:").out.split() == ["b.txt", "d/"]


def test_short_status_keeps_a_staged_deletion_beside_the_untracked_file(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "f.txt", "f", "one")
    cli("rm", "--cached", "f.txt")
    assert cli("status", "-s").out.splitlines() == ["D  f.txt", "?? f.txt"]


def test_restore_staged_unstages_a_new_file(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "f.txt", "f", "one")
    (wc / "new.txt").write_text("n")
    cli("add", "new.txt")
    cli("restore", "--staged", "new.txt")
    assert cli("status", "-s").out.splitlines() == ["?? new.txt"]
    assert (wc / "new.txt").read_text() == "n"


def test_update_ref_head_moves_the_current_branch(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "f.txt", "1", "one")
    first = cli("rev-parse", "HEAD").out.strip()
    _commit(cli, wc, "f.txt", "2", "two")
    cli("update-ref", "HEAD", first)
    assert cli("rev-parse", "main").out.strip() == first
    assert "On branch main" in cli("status").out


def test_update_ref_delete_accepts_a_revision_as_the_old_value(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "f.txt", "1", "one")
    cli("branch", "side")
    cli("update-ref", "-d", "refs/heads/side", "HEAD")
    cli.fail(4, "rev-parse", "side")


def test_checkout_head_does_not_detach(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "f.txt", "1", "one")
    (wc / "f.txt").write_text("local edit")
    cli("checkout", "--force", "HEAD")
    assert (wc / "f.txt").read_text() == "1"
    assert "On branch main" in cli("status").out


def test_short_ref_names_resolve_under_refs(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "f.txt", "1", "one")
    assert cli("rev-parse", "heads/main").out == cli("rev-parse", "main").out


def test_merge_keeps_unrelated_local_changes_and_refuses_touched_ones(cli: Cli, wc: Path) -> None:
    _commit(cli, wc, "a.txt", "a", "base")
    _commit(cli, wc, "b.txt", "b", "base2")
    cli("switch", "-c", "side", "HEAD~1")
    _commit(cli, wc, "a.txt", "a from side", "side edits a")
    cli("switch", "main")
    (wc / "a.txt").write_text("local edit of a")
    before = cli("rev-parse", "HEAD").out
    r = cli.fail(6, "merge", "side", "--no-ff")
    assert "a.txt" in r.err and cli("rev-parse", "HEAD").out == before
    assert (wc / "a.txt").read_text() == "local edit of a"
    cli("restore", "a.txt")
    (wc / "b.txt").write_text("local edit of b")  # a path the merge does not touch
    cli("merge", "side", "--no-ff")
    assert (wc / "a.txt").read_text() == "a from side"
    assert (wc / "b.txt").read_text() == "local edit of b"
    assert cli("status", "-s").out.splitlines() == [" M b.txt"]
