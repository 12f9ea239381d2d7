"""The Python API (``from dsrepo import Repository``): lifecycle, the porcelain verbs, refs and
reflogs, git provenance, and the stat-cache rules of ``status``."""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from dsrepo import Repository
from dsrepo.dvcs import worktree as worktree_mod
from dsrepo.dvcs.errors import (
    AlreadyARepository,
    MergeConflictError,
    NotARepository,
    PathError,
    RefConflict,
)
from dsrepo.dvcs.lock import index_lock
from dsrepo.dvcs.merge import Strategy
from dsrepo.dvcs.worktree import Status
from dsrepo.objects.errors import FileChanged
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import ObjectType
from tests.dvcs.conftest import write
from tests.snapshots import snapshot

MiB = 1024 * 1024


# ---------------------------------------------------------------- lifecycle


def test_init_and_open_searching_upward(tmp_path: Path, identity: Path) -> None:
    root = tmp_path / "data"
    repo = Repository.init(root, branch="trunk")
    assert (root / ".dsrepo" / "format").is_file()
    assert repo.head_branch() == "refs/heads/trunk"
    assert repo.head_commit() is None
    repo.close()
    with pytest.raises(AlreadyARepository):
        Repository.init(root)
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    with Repository.open(deep) as opened:
        assert opened.root == root.absolute()
    with pytest.raises(NotARepository):
        Repository.open(deep, search_parents=False)
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotARepository):
        Repository.open(tmp_path / "plain")


def test_add_from_a_subdirectory(repo: Repository) -> None:
    write(repo.root, "sub/x.txt", "x")
    write(repo.root, "y.txt", "y")
    result = repo.add("x.txt", cwd=repo.root / "sub")
    assert result.added == ["sub/x.txt"]
    assert repo.status().untracked == ("y.txt",)


# ---------------------------------------------------------------- the verbs


def test_add_commit_log_diff_ls(repo: Repository) -> None:
    root = repo.root
    write(root, "a.txt", "alpha")
    write(root, "dir/b.bin", b"\x00\x01\x02")
    result = repo.add()
    assert sorted(result.added) == ["a.txt", "dir/b.bin"]
    assert result.bytes_hashed == 8
    first = repo.commit("first", {"source": "unit"})
    assert repo.head_commit() == first.id
    assert first.commit.parents == ()
    assert first.commit.metadata["source"] == "unit"
    assert first.commit.message == "first\n"

    write(root, "a.txt", "alpha 2")
    (root / "dir/b.bin").unlink()
    write(root, "c.txt", "gamma")
    result = repo.add(".")
    assert (result.added, result.updated, result.removed) == (["c.txt"], ["a.txt"], ["dir/b.bin"])
    second = repo.commit("second")
    assert second.commit.parents == (first.id,)

    log = repo.log()
    assert [e.id for e in log] == [second.id, first.id]
    assert [e.id for e in repo.log(max_count=1)] == [second.id]
    assert [e.id for e in repo.log(paths=["dir"])] == [second.id, first.id]
    assert [e.id for e in repo.log(paths=["c.txt"])] == [second.id]

    d = repo.diff("HEAD~1", "HEAD")
    assert [(c.status, c.path) for c in d.changes] == [
        ("M", "a.txt"),
        ("A", "c.txt"),
        ("D", "dir/b.bin"),
    ]
    assert (d.bytes_added, d.bytes_removed, d.bytes_modified) == (5, 3, 7)
    assert repo.diff().changes == []  # worktree == index

    files = repo.ls("HEAD")
    assert [(f.path, f.size, f.kind) for f in files] == [
        ("a.txt", 7, EntryKind.FILE),
        ("c.txt", 5, EntryKind.FILE),
    ]
    assert files[0].content_id == blake3(b"alpha 2").digest()
    assert [f.path for f in repo.ls("HEAD~1", "dir/*")] == ["dir/b.bin"]


def test_open_file_streams_a_multi_chunk_file(repo: Repository) -> None:
    data = random.Random(7).randbytes(3 * MiB)
    write(repo.root, "big.bin", data)
    repo.add()
    repo.commit("big")
    (repo.root / "big.bin").unlink()  # no checkout needed: read from the store
    [info] = repo.ls("HEAD")
    assert info.chunks > 1
    with repo.open_file("HEAD", "big.bin") as f:
        head = f.read(1000)
        rest = f.read()
    assert head + rest == data
    with repo.open_file("HEAD", "big.bin") as f:
        pieces = []
        while piece := f.read(65_537):
            pieces.append(piece)
    assert b"".join(pieces) == data
    write(repo.root, "d/x", "x")
    repo.add()
    repo.commit("dir")
    with pytest.raises(PathError):
        repo.open_file("HEAD", "d")


def test_checkout_into_and_only(repo: Repository, tmp_path: Path) -> None:
    write(repo.root, "img/a.png", b"png-a")
    write(repo.root, "img/b.png", b"png-b")
    write(repo.root, "labels.csv", "a,1\n")
    repo.add()
    v1 = repo.commit("v1").id
    write(repo.root, "labels.csv", "a,2\n")
    repo.add()
    repo.commit("v2")
    out = tmp_path / "out"
    result = repo.checkout(v1.hex(), into=out)
    assert snapshot(out) == {"img/a.png": b"png-a", "img/b.png": b"png-b", "labels.csv": b"a,1\n"}
    assert sorted(result.written) == ["img/a.png", "img/b.png", "labels.csv"]
    assert (repo.root / "labels.csv").read_text() == "a,2\n"
    only = tmp_path / "only"
    repo.checkout("HEAD", into=only, only="img/*.png")
    assert snapshot(only) == {"img/a.png": b"png-a", "img/b.png": b"png-b"}
    again = repo.checkout("HEAD", into=only, only=["img/*"])
    assert again.written == [] and again.kept == 2
    # into the working copy, with only: restores those paths, HEAD stays
    tip = repo.head_commit()
    repo.checkout(v1.hex(), only=["labels.csv"])
    assert (repo.root / "labels.csv").read_text() == "a,1\n"
    assert repo.head_commit() == tip
    # a full checkout moves HEAD (detached)
    repo.checkout("HEAD", only=["labels.csv"])
    repo.checkout(v1.hex())
    assert repo.head_commit() == v1 and repo.head_branch() is None


def test_merge_with_a_strategy(repo: Repository) -> None:
    write(repo.root, "x.txt", "base")
    repo.add()
    repo.commit("base")
    repo.branch("other")
    write(repo.root, "x.txt", "ours")
    repo.add()
    ours = repo.commit("ours").id
    repo.checkout("other")
    write(repo.root, "x.txt", "theirs")
    repo.add()
    theirs = repo.commit("theirs").id
    repo.checkout("main")
    with pytest.raises(MergeConflictError) as exc:
        repo.merge("other")
    assert "x.txt" in str(exc.value)
    assert repo.head_commit() == ours
    outcome = repo.merge("other", strategy="theirs", metadata={"why": "test"})
    assert outcome.kind == "merged"
    assert [c.path for c in outcome.resolved] == ["x.txt"]
    assert (repo.root / "x.txt").read_text() == "theirs"
    merged = repo.store.get_commit(outcome.commit)  # type: ignore[arg-type]
    assert merged.parents == (ours, theirs)
    assert merged.metadata["why"] == "test"
    assert merged.metadata["merge"]["strategy"] == "theirs"
    assert repo.merge("other", strategy=Strategy.OURS).kind == "up-to-date"


def test_status_fields(repo: Repository) -> None:
    st = repo.status()
    assert isinstance(st, Status) and dataclasses.is_dataclass(st)
    assert (st.branch, st.head, st.clean, st.untracked) == ("refs/heads/main", None, True, ())
    write(repo.root, "a", "a")
    write(repo.root, "b", "b")
    write(repo.root, "c", "c")
    repo.add()
    c1 = repo.commit("v1").id
    write(repo.root, "a", "a2")  # modified
    (repo.root / "b").unlink()  # deleted
    write(repo.root, "n", "new")  # untracked
    write(repo.root, "s", "staged")
    repo.add("s")
    write(repo.root, "c", "c2")
    repo.add("c")
    st = repo.status()
    assert st.head == c1 and st.branch == "refs/heads/main"
    assert st.staged_added == ("s",)
    assert st.staged_modified == ("c",)
    assert st.staged_deleted == ()
    assert st.modified == ("a",)
    assert st.deleted == ("b",)
    assert st.untracked == ("n",)
    assert st.merging == ()
    assert not st.clean
    repo.rm("b")
    assert repo.status().staged_deleted == ("b",)


# ---------------------------------------------------------------- refs and reflogs


def test_ref_update_with_a_stale_expected_value_conflicts(repo: Repository) -> None:
    write(repo.root, "a", "a")
    repo.add()
    c1 = repo.commit("one").id
    write(repo.root, "a", "b")
    repo.add()
    c2 = repo.commit("two").id
    who = repo.reflog_identity()
    repo.refs.update("refs/heads/topic", c1, None, who=who, message="create")
    with pytest.raises(RefConflict):
        repo.refs.update("refs/heads/topic", c2, c2, who=who, message="stale")  # holds c1
    with pytest.raises(RefConflict):
        repo.refs.update("refs/heads/topic", c2, None, who=who, message="expects absent")
    assert repo.refs.resolve("refs/heads/topic") == c1
    repo.refs.update("refs/heads/topic", c2, c1, who=who, message="ok")
    assert repo.refs.resolve("refs/heads/topic") == c2
    # deleting with a stale value fails too
    with pytest.raises(RefConflict):
        repo.refs.update("refs/heads/topic", None, c1, who=who)
    assert repo.refs.resolve("refs/heads/topic") == c2


def test_reflog_records_commits(repo: Repository) -> None:
    ids = []
    for i in range(3):
        write(repo.root, "f", str(i))
        repo.add()
        ids.append(repo.commit(f"commit {i}").id)
    log = repo.refs.reflog("refs/heads/main")
    assert [(e.old, e.new) for e in log] == [(None, ids[0]), (ids[0], ids[1]), (ids[1], ids[2])]
    assert log[0].message == "commit (initial): commit 0"
    assert log[2].message == "commit: commit 2"
    assert "Repo Tester <repo@example.com>" in log[0].who
    assert [e.new for e in repo.refs.reflog("HEAD")] == ids
    repo.branch("side")
    repo.checkout("side")
    assert repo.refs.reflog("HEAD")[-1].message == "checkout: moving to side"


# ---------------------------------------------------------------- git provenance


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Git User",
        "GIT_AUTHOR_EMAIL": "git@example.com",
        "GIT_COMMITTER_NAME": "Git User",
        "GIT_COMMITTER_EMAIL": "git@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_commits_record_the_code_git_commit(tmp_path: Path, identity: Path) -> None:
    code = tmp_path / "project"
    code.mkdir()
    git(code, "init", "-q", "-b", "dev")
    (code / "train.py").write_text("print('v1')\n")
    git(code, "add", "train.py")
    git(code, "commit", "-q", "-m", "code v1")
    sha = git(code, "rev-parse", "HEAD")
    repo = Repository.init(code / "data")
    write(repo.root, "x.csv", "1\n")
    repo.add()
    meta = repo.commit("data v1").commit.metadata
    assert meta["git"]["commit"] == sha
    assert meta["git"]["dirty"] is False
    assert meta["git"]["branch"] == "dev"
    (code / "train.py").write_text("print('v2, not committed')\n")
    write(repo.root, "x.csv", "2\n")
    repo.add()
    meta = repo.commit("data v2").commit.metadata
    assert meta["git"]["commit"] == sha
    assert meta["git"]["dirty"] is True
    repo.close()


def test_no_git_metadata_outside_a_git_repository(repo: Repository) -> None:
    if any((d / ".git").exists() for d in [repo.root, *repo.root.parents]):
        pytest.skip("the temporary directory is inside a git repository")
    write(repo.root, "x", "x")
    repo.add()
    assert "git" not in repo.commit("v1").commit.metadata


# ---------------------------------------------------------------- status: the stat cache


def old_files(root: Path, names: list[str]) -> None:
    old = time.time_ns() - 3600 * 10**9
    for n in names:
        write(root, n, f"content of {n}\n" * 10)
        os.utime(root / n, ns=(old, old))


def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = worktree_mod.hash_file

    def counting(path: str, small: int) -> object:
        calls.append(path)
        return real(path, small)

    monkeypatch.setattr(worktree_mod, "hash_file", counting)
    return calls


def test_status_does_not_rehash_unchanged_files(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"f{i}.txt" for i in range(20)]
    old_files(repo.root, names)
    repo.add()
    repo.commit("v1")
    calls = count_hashes(monkeypatch)
    assert repo.status().clean
    assert calls == []
    with Repository.open(repo.root) as fresh:  # a new process: the index file is the cache
        assert fresh.status().clean
    assert calls == []
    # a changed stat gets hashed once, then the refreshed entry is trusted again
    os.utime(repo.root / "f3.txt", ns=(time.time_ns() - 7200 * 10**9,) * 2)
    assert repo.status().clean
    assert [Path(c).name for c in calls] == ["f3.txt"]
    calls.clear()
    with Repository.open(repo.root) as fresh:
        assert fresh.status().clean
    assert calls == []
    # a real modification is found
    write(repo.root, "f5.txt", "changed\n")
    assert repo.status().modified == ("f5.txt",)


@pytest.mark.parametrize("racy", [True, False])
def test_racy_git_rule(repo: Repository, monkeypatch: pytest.MonkeyPatch, racy: bool) -> None:
    """A same-size rewrite that leaves the stat identical (it happened in the same timestamp tick
    as the hashing) is only detectable by the racy rule: an entry whose mtime is not older than
    the index file is re-hashed. Without the rule (mtime older than the index) it goes unseen,
    which is what makes the racy case worth the re-hash."""
    old_files(repo.root, ["r.txt", "other.txt"])
    repo.add()
    repo.commit("v1")
    path = repo.root / "r.txt"
    original = path.read_bytes()
    changed = original.replace(b"content", b"CONTENT")
    assert len(changed) == len(original)
    index_file = repo.dsdir / "index"
    stamp = index_file.stat().st_mtime_ns
    path.write_bytes(changed)
    os.utime(path, ns=(stamp, stamp))  # mtime == the index's mtime
    st = os.lstat(path)
    # record the new stat in the index as if the old content had been hashed at this stat
    with index_lock(repo.dsdir).held():
        wt = repo.worktree
        e = wt.index.entries["r.txt"]
        wt.index.set(
            dataclasses.replace(
                e, size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, ino=st.st_ino
            )
        )
        wt.index.save()
    index_time = stamp if racy else stamp + 10 * 10**9
    os.utime(index_file, ns=(index_time, index_time))
    calls = count_hashes(monkeypatch)
    with Repository.open(repo.root) as fresh:
        st2 = fresh.status()
    if racy:
        assert st2.modified == ("r.txt",)
        assert [Path(c).name for c in calls] == ["r.txt"]
    else:
        assert st2.modified == ()
        assert calls == []


def test_a_file_changing_during_add_stages_nothing(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(repo.root, "stable.txt", "s")
    big = write(repo.root, "big.bin", random.Random(1).randbytes(2 * MiB))
    real_fstat = os.fstat
    seen: dict[int, int] = {}

    class Moved:
        def __init__(self, st: os.stat_result) -> None:
            self.st_size = st.st_size
            self.st_mtime_ns = st.st_mtime_ns + 1
            self.st_ctime_ns = st.st_ctime_ns

    def fstat(fd: int) -> object:
        st = real_fstat(fd)
        if st.st_size == big.stat().st_size:
            seen[fd] = seen.get(fd, 0) + 1
            if seen[fd] > 1:
                return Moved(st)
        return st

    with monkeypatch.context() as m:
        m.setattr(os, "fstat", fstat)
        with pytest.raises(FileChanged):
            repo.add()
    assert repo.worktree.index.entries == {}
    with Repository.open(repo.root) as fresh:
        assert set(fresh.status().untracked) == {"big.bin", "stable.txt"}
        # chunks of the torn read may be stored (named by their own bytes), but no manifest
        # describes the torn content as a file
        types = {loc.type for _, loc in fresh.store.index.iter_objects()}
        assert ObjectType.MANIFEST not in types
    repo.add()
    assert sorted(repo.worktree.index.entries) == ["big.bin", "stable.txt"]


def test_a_damaged_merge_head_is_named_and_abort_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsrepo import Repository, StateError

    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "T")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "t@example.com")
    repo = Repository.init(tmp_path / "r")
    (repo.root / "a.txt").write_text("a")
    repo.add(".")
    repo.commit("one")
    (repo.dsdir / "MERGE_HEAD").write_text("not an id\n")
    for call in (repo.status, lambda: repo.commit("two", allow_empty=True)):
        with pytest.raises(StateError, match="MERGE_HEAD is damaged"):
            call()
    repo.merge_abort()
    assert not (repo.dsdir / "MERGE_HEAD").exists()
    assert repo.status().clean


def test_bulk_verbs_run_with_the_collector_paused_and_leave_it_running(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit of a million files builds millions of objects that reference counting frees;
    cyclic collections in between only cost time (dsrepo.gcpause)."""
    import gc

    from dsrepo.dvcs import commits, treecache

    seen: list[bool] = []
    real = treecache.write_index_tree

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(commits, "write_index_tree", spy)
    (repo.root / "a.txt").write_text("a")
    gc.enable()
    repo.add("a.txt")
    repo.commit("first")
    assert seen == [False] and gc.isenabled()
