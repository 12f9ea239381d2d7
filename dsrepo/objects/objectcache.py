"""The store's cache of decoded structured objects (trees, manifests, commits, tags).

Least recently used first out, bounded by *weight*, not count: a tree weighs one plus its
entries, a manifest one plus its chunks, anything else one. A count bound let a walk over a
million files in 10,000 folders keep 8,192 trees of 100 entries each (~200 MB at ~250 B a
decoded entry); the weight bound keeps any mix under ``MAX_WEIGHT`` (~25 MB), which still
holds every folder of a 100k-file tree.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from dsrepo.objects.ids import ObjectId
from dsrepo.objects.model import Manifest, Structured, Tree

MAX_WEIGHT = 100_000
"""Weight (tree entries, manifest chunks, one per object) the cache holds at most."""


def _weight(obj: Structured) -> int:
    if isinstance(obj, Tree):
        return 1 + len(obj.entries)
    return 1 + len(obj.chunks) if isinstance(obj, Manifest) else 1


class ObjectCache:
    """A thread-safe LRU map of id -> decoded object, bounded by weight."""

    def __init__(self, max_weight: int = MAX_WEIGHT) -> None:
        self.max_weight = max_weight
        self._items: OrderedDict[ObjectId, Structured] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, oid: ObjectId) -> Structured | None:
        with self._lock:
            hit = self._items.get(oid)
            if hit is not None:
                self._items.move_to_end(oid)
            return hit

    def put(self, oid: ObjectId, obj: Structured) -> None:
        with self._lock:
            old = self._items.pop(oid, None)
            if old is not None:
                self._weight -= _weight(old)
            self._items[oid] = obj
            self._weight += _weight(obj)
            while self._weight > self.max_weight and len(self._items) > 1:
                self._weight -= _weight(self._items.popitem(last=False)[1])

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._weight = 0

    def __len__(self) -> int:
        return len(self._items)
