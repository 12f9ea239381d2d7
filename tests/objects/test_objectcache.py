"""The store's decoded-object cache is bounded by weight (tree entries), not by count."""

from __future__ import annotations

import os

from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Commit, Signature, Tree, TreeEntry
from dsrepo.objects.objectcache import ObjectCache


def _tree(n: int) -> Tree:
    return Tree(
        tuple(TreeEntry(f"f{i:04d}", EntryKind.FILE, 1, ObjectId(os.urandom(32))) for i in range(n))
    )


def _oid() -> ObjectId:
    return ObjectId(os.urandom(32))


def test_big_trees_push_out_the_least_recently_used() -> None:
    cache = ObjectCache(max_weight=250)
    a, b, c = _oid(), _oid(), _oid()
    cache.put(a, _tree(100))
    cache.put(b, _tree(100))
    assert cache.get(a) is not None  # a is now the most recently used
    cache.put(c, _tree(100))  # 303 > 250: the least recently used (b) goes
    assert cache.get(b) is None and cache.get(a) is not None and cache.get(c) is not None
    assert len(cache) == 2


def test_one_object_heavier_than_the_bound_is_still_kept() -> None:
    cache = ObjectCache(max_weight=10)
    big = _oid()
    cache.put(big, _tree(50))
    assert cache.get(big) is not None
    small = _oid()
    sig = Signature("a", "a@b", 0)
    cache.put(small, Commit(_oid(), (), sig, sig, "m"))
    assert cache.get(big) is None and cache.get(small) is not None


def test_putting_an_id_again_does_not_count_it_twice() -> None:
    cache = ObjectCache(max_weight=101)
    oid = _oid()
    tree = _tree(100)
    for _ in range(5):
        cache.put(oid, tree)
    other = _oid()
    cache.put(other, _tree(0))  # 101 + 1 > 101: the tree goes, the new one stays
    assert cache.get(other) is not None and len(cache) == 1
    cache.clear()
    assert len(cache) == 0
