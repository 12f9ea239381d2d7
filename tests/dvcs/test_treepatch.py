"""``patch_tree`` makes exactly the tree a full rebuild of the changed snapshot makes."""

from __future__ import annotations

import random

import pytest

from dsrepo.dvcs.commits import write_tree
from dsrepo.dvcs.errors import PathError
from dsrepo.dvcs.treepatch import patch_tree
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.ids import hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import TreeEntry
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.memory import MemoryBackend


def _store() -> ObjectStore:
    backend = MemoryBackend()
    ObjectStore.initialize(backend, RepoFormat(ChunkerParams()))
    return ObjectStore(backend, LocationIndex(None), RepoFormat(ChunkerParams()))


def _file(tag: str, executable: bool = False) -> TreeEntry:
    kind = EntryKind.EXECUTABLE if executable else EntryKind.FILE
    return TreeEntry("x", kind, len(tag), hash_data(tag.encode()))


def _flat(files: dict[str, TreeEntry]) -> dict[str, TreeEntry]:
    return {p: TreeEntry(p.rpartition("/")[2], e.kind, e.size, e.id) for p, e in files.items()}


@pytest.mark.parametrize("seed", range(40))
def test_patching_equals_rebuilding(seed: int) -> None:
    rng = random.Random(seed)
    store = _store()
    names = ["a", "a.b", "b", "c", "d-e", "é"]
    before: dict[str, TreeEntry] = {}
    for _ in range(rng.randint(0, 12)):
        p = "/".join(rng.choices(names, k=rng.randint(1, 3)))
        if not any(q.startswith(p + "/") or p.startswith(q + "/") for q in before):
            before[p] = _file(f"{p} {rng.random()}", rng.random() < 0.2)
    after = dict(before)
    changes: dict[str, TreeEntry | None] = {}
    for p in rng.sample(sorted(before), min(len(before), rng.randint(0, 4))):
        if rng.random() < 0.5:
            changes[p] = after[p] = _file(f"edited {p}")
        else:
            changes[p] = None
            del after[p]
    for _ in range(rng.randint(0, 4)):  # additions, maybe a file where a folder was or back
        p = "/".join(rng.choices(names, k=rng.randint(1, 3)))
        for q in [q for q in after if q.startswith(p + "/") or p.startswith(q + "/")]:
            changes[q] = None
            del after[q]
        changes[p] = after[p] = _file(f"new {p}")
    base = write_tree(store, _flat(before))
    assert patch_tree(store, base, changes) == write_tree(store, _flat(after))
    assert patch_tree(store, None, {p: e for p, e in after.items()}) == write_tree(
        store, _flat(after)
    )


def test_a_path_beyond_the_limits_is_refused() -> None:
    store = _store()
    with pytest.raises(PathError, match="cannot record"):
        patch_tree(store, None, {"/".join(["d"] * 300): _file("deep")})
