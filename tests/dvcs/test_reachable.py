"""What push and fetch consider sending: only what changed since a commit the other side has."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.dvcs import integrity
from dsrepo.dvcs.reachability import reachable_objects
from dsrepo.objects.ids import hash_data
from dsrepo.objects.model import ObjectType
from dsrepo.objects.transfer import Located


def test_a_small_change_walks_only_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "t")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "t@x")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "g"))
    repo = Repository.init(tmp_path / "w")
    for d in ("a", "b"):
        (repo.root / d).mkdir()
        for i in range(50):
            (repo.root / d / f"{i}.txt").write_text(f"{d}{i}")
    repo.add(".")
    first = repo.commit("v1").id
    (repo.root / "b" / "7.txt").write_text("changed")
    repo.add(".")
    second = repo.commit("v2").id

    meta, chunks = reachable_objects(repo, [second], {first.hex()})
    assert list(chunks) == [hash_data(b"changed")]
    trees = [oid for oid, t in meta if t == ObjectType.TREE]
    assert len(trees) == 2  # the new root and the new b/, never the unchanged a/
    assert (second, ObjectType.COMMIT) in meta and (first, ObjectType.COMMIT) not in meta

    everything, all_chunks = reachable_objects(repo, [second], set())
    # with nothing known complete: both versions of b/, a/ once (same id); callers dedupe chunks
    assert len(set(all_chunks)) == 101 and len(everything) == 2 + 5


def test_the_walk_hands_on_every_chunk_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Push reuses the locations the walk looked up (all of them, packed, even when it lists no
    chunk ids: ``data=False``), and a push walk fills no ``visited`` set."""
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "t")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "t@x")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "g"))
    repo = Repository.init(tmp_path / "w")
    for i in range(30):
        (repo.root / f"{i}.txt").write_text(f"file {i}")
    (repo.root / "copy.txt").write_text("file 0")  # one chunk met twice
    repo.add(".")
    tip = repo.commit("v1").id

    located = Located()
    _, chunks = reachable_objects(repo, [tip], set(), located=located)
    assert sorted(located.ids()) == sorted(set(chunks)) and len(set(chunks)) == 30
    again = Located()
    _, none = reachable_objects(repo, [tip], set(), data=False, located=again)
    assert len(none) == 0 and sorted(again.ids()) == sorted(located.ids())
    want = repo.store.locate_many(list(set(chunks)))
    for pack, got, distinct in located.packs():
        assert {oid: loc for oid, loc in got.members(pack, distinct)} == {
            oid: loc for oid, loc in want.items() if loc.pack == pack
        }

    for keep in (True, False):
        closure = integrity.Closure(repo.store, keep_visited=keep)
        closure.add_root("main", tip)
        closure.run()
        closure.check_chunks()
        assert (set(chunks) <= closure.visited) is keep
    # fetch's check of what it receives needs the chunk list, not a visited set of every chunk
    checked = integrity.check_closure(repo.store, [("main", tip)])
    assert sorted(checked.chunks) == sorted(chunks)
    assert not set(chunks) & checked.visited
