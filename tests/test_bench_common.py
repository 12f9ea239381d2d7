"""benchmarks/common.py's deferred deletes: a tree moves into the trash while the disk keeps
``keep_free`` bytes free, and is deleted at once (the next timed step then waits) past that."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common


@pytest.fixture
def trash(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "trash"
    common.empty_trash()
    common._last_delete.clear()


def _tree(root: Path) -> Path:
    root.mkdir()
    for i in range(3):
        (root / f"f{i}").write_bytes(b"x")
    return root


def test_a_deleted_tree_waits_in_the_trash_while_the_disk_has_room(
    tmp_path: Path, trash: Path
) -> None:
    common.defer_deletes(trash, keep_free=0)
    common.rmtree(_tree(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    assert [p.name.endswith("-a") for p in trash.iterdir()] == [True]
    common.empty_trash()
    assert not trash.exists()
    assert common._last_delete  # the next timed step waits


def test_past_the_free_space_floor_a_tree_is_deleted_at_once(tmp_path: Path, trash: Path) -> None:
    common.defer_deletes(trash, keep_free=shutil.disk_usage(tmp_path).total + 1)
    common.rmtree(_tree(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    assert list(trash.iterdir()) == []
