"""Dataset workflows through the Python API: add by pattern, verify, search, ..."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from dsrepo import (
    ConfigError,
    LogFilter,
    PathError,
    RefExists,
    RemoteError,
    Repository,
    RepositoryError,
    TagExists,
    parse_date,
)
from tests.dvcs.conftest import write


def _staged(repo: Repository) -> list[str]:
    return sorted(repo.worktree.index.entries)


# ---- 1. add by pattern, ignored files


def test_add_globs_match_like_git_pathspecs(repo: Repository) -> None:
    root = repo.root
    for rel in ("a.csv", "sub/b.csv", "c.txt", "images/x.jpg", "images/d/e/y.jpg", "images/z.png"):
        write(root, rel, rel)
    repo.add("*.csv")
    assert _staged(repo) == ["a.csv", "sub/b.csv"]  # '*' crosses directories, as in git
    repo.add("images/**/*.jpg")  # '**/' also matches no directory
    assert _staged(repo) == ["a.csv", "images/d/e/y.jpg", "images/x.jpg", "sub/b.csv"]
    with pytest.raises(PathError, match="did not match"):
        repo.add("*.txt", cwd=root / "sub")  # relative to cwd: sub/*.txt
    (root / "a.csv").unlink()
    repo.add("*.csv")  # a deleted match is staged as deleted
    assert "a.csv" not in _staged(repo)


def test_add_refuses_an_ignored_path_unless_forced(repo: Repository) -> None:
    root = repo.root
    write(root, ".dsrepoignore", "*.log\n")
    write(root, "run.log", "1")
    with pytest.raises(RepositoryError, match="ignored") as info:
        repo.add("run.log")
    assert info.value.exit_code == 1
    assert _staged(repo) == []
    repo.add("run.log", force=True)
    assert _staged(repo) == ["run.log"]
    write(root, "run.log", "2")  # tracked, though ignored: status and add see its changes
    assert repo.status().modified == ("run.log",)
    repo.add(".")
    assert repo.status().modified == ()


# ---- 2. verify a copy


def test_verify_lists_missing_extra_modified(repo: Repository, tmp_path: Path) -> None:
    root = repo.root
    for rel in ("a.bin", "d/b.bin", "d/c.bin"):
        p = write(root, rel, rel * 100)
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))  # old: not racily clean
    os.symlink("a.bin", root / "link")
    repo.add(".")
    repo.commit("one")
    same = repo.verify(root)
    assert same.ok and same.checked == 4
    assert same.hashed == 0  # the stat cache answered for every file
    copy = tmp_path / "copy"
    repo.checkout("HEAD", into=copy)
    assert repo.verify(copy, "HEAD").ok
    (copy / "d" / "b.bin").unlink()
    write(copy, "a.bin", "changed")
    write(copy, "extra.txt", "x")
    r = repo.verify(copy)
    assert (r.missing, r.extra, r.modified) == (("d/b.bin",), ("extra.txt",), ("a.bin",))
    assert r.rows() == [("M", "a.bin"), ("D", "d/b.bin"), ("?", "extra.txt")]
    with pytest.raises(PathError):
        repo.verify(tmp_path / "nowhere")


@pytest.mark.parametrize("seed", range(6))
def test_verify_joins_both_walks_whatever_the_names(
    repo: Repository, tmp_path: Path, seed: int
) -> None:
    """The version and the directory are walked in component order and joined as they come:
    names that sort differently as plain strings (``a``, ``a-b``, ``a.b``, ``a/x``), a folder
    where the version has a file and the other way round, must give what comparing both
    sides whole gives."""
    rng = random.Random(seed)
    names = ["a", "a-b", "a.b", "a0", "b", "é", "z"]
    paths = sorted({"/".join(rng.choices(names, k=rng.randint(1, 3))) for _ in range(25)})
    files = [p for p in paths if not any(q.startswith(p + "/") for q in paths)]
    for p in files:
        write(repo.root, p, p * 3)
    repo.add(".")
    repo.commit("one")
    copy = tmp_path / "copy"
    repo.checkout("HEAD", into=copy)
    for p in rng.sample(files, 3):
        action = rng.choice(["gone", "edit", "dir"])
        if action == "gone":
            (copy / p).unlink()
        elif action == "edit":
            write(copy, p, "edited")
        else:  # a folder where the version has a file
            (copy / p).unlink()
            write(copy, p + "/inside", "x")
    write(copy, rng.choice(names) + ".extra", "x")
    r = repo.verify(copy)
    have = {
        str(f.relative_to(copy).as_posix()): f.read_bytes() for f in copy.rglob("*") if f.is_file()
    }
    want = {p: (p * 3).encode() for p in files}
    assert r.missing == tuple(sorted(p for p in want if p not in have))
    assert r.extra == tuple(sorted(p for p in have if p not in want))
    assert r.modified == tuple(sorted(p for p in want if p in have and have[p] != want[p]))
    assert r.checked == len(want)


# ---- 3. search


def test_search_by_message_author_date_and_metadata(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repo.root
    write(root, "a", "1")
    repo.add(".")
    monkeypatch.setenv("DSREPO_AUTHOR_DATE", "1700000000")
    raw = repo.commit("raw export", metadata={"rows": 100, "stats": {"mean": 0.5}, "src": "s3://b"})
    monkeypatch.delenv("DSREPO_AUTHOR_DATE")
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "Bob")
    write(root, "a", "2")
    repo.add(".")
    cleaned = repo.commit("Cleaned labels", metadata={"rows": 90, "src": "warehouse"})
    repo.branch("exp")
    repo.switch("exp")
    write(root, "a", "3")
    repo.add(".")
    exp = repo.commit("experiment", metadata={"rows": 5000})
    repo.switch("main")

    def ids(where: LogFilter, all_refs: bool = False) -> list[object]:
        return [e.id for e in repo.search(where=where, all_refs=all_refs)]

    assert ids(LogFilter(grep=["clean"])) == []
    assert ids(LogFilter(grep=["clean"], ignore_case=True)) == [cleaned.id]
    assert ids(LogFilter(author=["Bob"])) == [cleaned.id]
    assert ids(LogFilter(meta=["rows>=100"])) == [raw.id]
    assert ids(LogFilter(meta=["rows>=100"]), all_refs=True) == [exp.id, raw.id]
    assert ids(LogFilter(meta=["rows=90"])) == [cleaned.id]
    assert ids(LogFilter(meta=["src~^s3://"])) == [raw.id]
    assert ids(LogFilter(meta=["stats.mean<1"])) == [raw.id]
    assert ids(LogFilter(meta=["stats"])) == [raw.id]
    assert ids(LogFilter(until=parse_date("2023-11-15"))) == [raw.id]
    assert ids(LogFilter(since=parse_date("1.day"))) == [cleaned.id]
    with pytest.raises(ConfigError):
        LogFilter(meta=["rows>many"]).compile()
    with pytest.raises(ConfigError):
        parse_date("someday")


# ---- 4. sync a folder that lives elsewhere


def test_sync_stages_an_outside_folder_and_commits(repo: Repository, tmp_path: Path) -> None:
    ext = tmp_path / "ext"
    write(ext, "a.txt", "one")
    write(ext, "sub/b.txt", "two")
    write(ext, "big.bin", os.urandom(2_000_000))
    first = repo.sync(ext, "first", {"source": "ext"})
    assert (first.added, first.deleted) == (["a.txt", "big.bin", "sub/b.txt"], [])
    assert first.commit is not None
    assert first.commit.commit.metadata == {"source": "ext"}
    assert not (repo.root / "a.txt").exists()  # nothing copied into the working copy
    packs_before = repo.count_objects()
    (ext / "sub" / "b.txt").rename(ext / "b.txt")
    write(ext, "a.txt", "changed")
    (ext / "big.bin").unlink()
    write(ext, "c.txt", "new")
    second = repo.sync(ext, "second")
    assert second.added == ["c.txt"]
    assert second.modified == ["a.txt"]
    assert second.deleted == ["big.bin"]
    assert second.renamed == [("sub/b.txt", "b.txt")]
    assert repo.verify(ext).ok
    grown = repo.count_objects()
    assert grown.pack_bytes - packs_before.pack_bytes < 100_000  # only what is new was stored
    again = repo.sync(ext, "third")
    assert not again.changed and again.commit is None and again.bytes_hashed == 0
    with pytest.raises(PathError):
        repo.sync(repo.root)


# ---- 5. notes


def test_notes_attach_metadata_without_changing_the_commit(
    repo: Repository, tmp_path: Path
) -> None:
    write(repo.root, "a", "1")
    repo.add(".")
    c = repo.commit("one", {"rows": 3})
    assert repo.note() is None
    stats = {"age": {"mean": 31.5, "std": 4.2}}
    repo.add_note("HEAD", "checked", {"stats": stats, "reviewed": True})
    assert repo.head_commit() == c.id
    with pytest.raises(RefExists):
        repo.add_note("HEAD", "again")
    note = repo.edit_note("HEAD", metadata={"reviewed": None, "by": "bob"})
    assert (note.message, dict(note.metadata)) == ("checked", {"stats": stats, "by": "bob"})
    assert repo.note(c.id.hex()) == note
    assert set(repo.notes()) == {c.id}
    # search sees a note's metadata
    assert [e.id for e in repo.search(where=LogFilter(meta=["by=bob"]))] == [c.id]
    assert repo.fsck().problems == []
    # notes travel: push the ref, fetch (and clone) take it when it fast-forwards
    remote = tmp_path / "remote"
    repo.remote_add("origin", str(remote))
    repo.push("origin", ["main", "refs/notes/commits"])
    other = Repository.clone(str(remote), tmp_path / "other")
    try:
        assert other.note("HEAD") == note
        repo.edit_note("HEAD", "re-checked")
        repo.push("origin", ["refs/notes/commits"])
        other.fetch("origin")
        got = other.note("HEAD")
        assert got is not None and got.message == "re-checked"
    finally:
        other.close()
    repo.remove_note("HEAD")
    assert repo.note() is None


# ---- 6. squash


def test_squash_makes_one_version_of_a_range(repo: Repository) -> None:
    ids = []
    for i in range(4):
        write(repo.root, f"f{i}", str(i))
        repo.add(".")
        ids.append(repo.commit(f"v{i}", {"step": i, f"k{i}": True}).id)
    tree = repo.get_commit(ids[-1]).tree
    info = repo.squash("HEAD~3..HEAD", "v1-v3", {"by": "me"})
    assert repo.head_commit() == info.id
    c = info.commit
    assert (c.tree, c.parents) == (tree, (ids[0],))
    assert c.metadata["step"] == 3 and c.metadata["k1"] and c.metadata["by"] == "me"
    assert c.metadata["squashed"] == [i.hex() for i in reversed(ids[1:])]
    assert repo.status().clean
    assert repo.get_commit(ids[-1]).message == "v3\n"  # the old versions are still stored
    assert any(e.old == ids[-1] for e in repo.reflog("main"))
    other = repo.squash(f"{ids[0].hex()}..{ids[2].hex()}", "side", branch="side")
    assert repo.head_commit() == info.id  # B was not the tip: only the new branch names it
    assert repo.resolve("side").id == other.id
    with pytest.raises(RepositoryError, match="not an ancestor"):
        repo.squash("HEAD..HEAD~1", "x")


# ---- 7. published tags


def test_published_tags_are_immutable(repo: Repository, tmp_path: Path) -> None:
    write(repo.root, "a", "1")
    repo.add(".")
    first = repo.commit("one").id
    write(repo.root, "a", "2")
    repo.add(".")
    repo.commit("two")
    repo.tag("v1", "HEAD~1")
    with pytest.raises(RefExists):
        repo.tag("v1")  # any tag: moving it needs force
    assert repo.config.local is not None
    repo.config.local.set("tag.immutable", "v*, release-*")
    with pytest.raises(RefExists, match="published"):
        repo.tag("v1", force=True)
    with pytest.raises(RefExists, match="published"):
        repo.delete_tag("v1")
    repo.remote_add("origin", str(tmp_path / "remote"))
    repo.push("origin", ["main"], tags=True)
    assert repo.delete_tag("v1", force=True) == first
    repo.tag("v1")
    moved = repo.push("origin", ["v1"], force=True)  # never moved on the remote, even forced
    assert isinstance(moved.error(), TagExists)
    deleted = repo.push("origin", delete=["refs/tags/v1"], force=True)
    assert isinstance(deleted.error(), TagExists)


# ---- 8. a teammate's working repository as a remote


def test_working_repository_as_remote(repo: Repository, tmp_path: Path) -> None:
    mate = Repository.init(tmp_path / "dsB")
    try:
        write(mate.root, "labels.csv", "1")
        mate.add(".")
        one = mate.commit("from B").id
        repo.remote_add("B", str(mate.root))
        repo.fetch("B")
        assert repo.resolve("B/main").id == one
        repo.pull("B", "main")
        assert repo.head_commit() == one
        write(repo.root, "more.csv", "2")
        repo.add(".")
        repo.commit("mine")
        with pytest.raises(RemoteError, match="working repository"):
            repo.push("B", ["main"])
        assert mate.head_commit() == one  # untouched
        assert mate.status().clean
    finally:
        mate.close()
