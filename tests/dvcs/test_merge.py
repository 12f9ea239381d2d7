"""Tests for dsrepo.dvcs.merge: the per-path rule, strategies, file/directory clashes."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsrepo.dvcs.merge import (
    BOTH_ADDED,
    BOTH_MODIFIED,
    FILE_DIRECTORY,
    MODIFY_DELETE,
    MergeResult,
    PathConflict,
    Strategy,
    merge_path,
    merge_snapshots,
)

OURS, THEIRS, FIRST, LAST = Strategy.OURS, Strategy.THEIRS, Strategy.FIRST, Strategy.LAST
ALL_STRATEGIES = [OURS, THEIRS, FIRST, LAST]

Snap = Mapping[str, int]


def f(content: str) -> tuple[str, str]:
    """A file value as the caller builds them: kind and content id."""
    return ("file", content)


def brief(records: Sequence[PathConflict[int]]) -> list[tuple[str, str]]:
    return [(record.path, record.reason) for record in records]


# --- merge_path: the rule for one path ------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "versions", "expected"),
    [
        (1, [1, 1], 1),  # nobody changed it
        (1, [1], 1),
        (1, [2], 2),
        (1, [1, 2], 2),  # one side modified
        (1, [2, 1], 2),
        (1, [2, 2], 2),  # both made the same change
        (1, [None, 1], None),  # one side deleted a path unchanged elsewhere
        (1, [1, None, 1], None),
        (1, [None, None], None),  # identical deletions agree
        (None, [None, 5], 5),  # added on one side only
        (None, [5, None, None], 5),
        (None, [5, 5], 5),  # identical additions agree
        (None, [None, None], None),
        (1, [1, 2, 2], 2),
    ],
)
def test_merge_path_clean(base: int | None, versions: list[int | None], expected: int) -> None:
    assert merge_path(base, versions) == (expected, None)
    for strategy in ALL_STRATEGIES:  # a strategy never changes a clean merge
        assert merge_path(base, versions, strategy) == (expected, None)


@pytest.mark.parametrize(
    ("base", "versions", "reason", "ours", "theirs", "first", "last"),
    [
        (None, [5, 6], BOTH_ADDED, 5, 6, 5, 6),
        (1, [2, 3], BOTH_MODIFIED, 2, 3, 2, 3),
        (1, [2, None], MODIFY_DELETE, 2, None, 2, None),
        (1, [None, 2], MODIFY_DELETE, None, 2, None, 2),
        # ours left it unchanged: OURS still takes ours
        (1, [1, 2, 3], BOTH_MODIFIED, 1, 3, 2, 3),
        (1, [1, None, 3], MODIFY_DELETE, 1, 3, None, 3),
        # the last head did not change it: THEIRS and LAST take the last head that did
        (1, [2, 3, 1], BOTH_MODIFIED, 2, 3, 2, 3),
        (1, [None, 3, 1, 1], MODIFY_DELETE, None, 3, None, 3),
        (1, [1, 2, 3, 1], BOTH_MODIFIED, 1, 3, 2, 3),
        (None, [None, 4, 5, None], BOTH_ADDED, None, 5, 4, 5),
        (1, [2, 2, 3], BOTH_MODIFIED, 2, 3, 2, 3),
    ],
)
def test_merge_path_conflicts(
    base: int | None,
    versions: list[int | None],
    reason: str,
    ours: int | None,
    theirs: int | None,
    first: int | None,
    last: int | None,
) -> None:
    assert merge_path(base, versions) == (None, reason)  # nothing picked without a strategy
    assert merge_path(base, versions, OURS) == (ours, reason)
    assert merge_path(base, versions, THEIRS) == (theirs, reason)
    assert merge_path(base, versions, FIRST) == (first, reason)
    assert merge_path(base, versions, LAST) == (last, reason)


# --- merge_snapshots: small explicit cases --------------------------------------------------


def test_clean_merge_of_independent_changes() -> None:
    base = {"a": f("1"), "b": f("1"), "c": f("1"), "d/x": f("1")}
    ours = {"a": f("2"), "b": f("1"), "c": f("1"), "d/x": f("1")}
    theirs = {"a": f("1"), "b": f("1"), "d/x": f("1"), "d/y": f("9"), "0": f("z")}
    result = merge_snapshots(base, [ours, theirs])
    assert result.merged == {"0": f("z"), "a": f("2"), "b": f("1"), "d/x": f("1"), "d/y": f("9")}
    assert list(result.merged) == ["0", "a", "b", "d/x", "d/y"]
    assert result.conflicts == () and result.resolved == () and result.clean
    assert merge_snapshots(base, [ours, theirs], OURS) == result


def test_deletion_and_identical_changes() -> None:
    base = {"a": 1, "b": 1, "c": 1}
    result = merge_snapshots(base, [{"a": 2, "b": 1}, {"a": 2, "c": 1}, {"a": 2, "b": 1, "c": 1}])
    assert result.merged == {"a": 2}
    assert result.clean


def test_conflicts_are_reported_and_left_out() -> None:
    base = {"keep": 0, "mod": 1, "moddel": 1}
    ours = {"keep": 0, "mod": 2, "moddel": 2, "added": 5}
    theirs = {"keep": 0, "mod": 3, "added": 6, "fine": 7}
    result = merge_snapshots(base, [ours, theirs])
    assert result.merged == {"fine": 7, "keep": 0}
    assert result.conflicts == (
        PathConflict("added", None, (5, 6), BOTH_ADDED),
        PathConflict("mod", 1, (2, 3), BOTH_MODIFIED),
        PathConflict("moddel", 1, (2, None), MODIFY_DELETE),
    )
    assert result.resolved == ()
    assert not result.clean

    by_strategy = {
        OURS: {"added": 5, "mod": 2, "moddel": 2},
        THEIRS: {"added": 6, "mod": 3},
        FIRST: {"added": 5, "mod": 2, "moddel": 2},
        LAST: {"added": 6, "mod": 3},
    }
    for strategy, picks in by_strategy.items():
        decided = merge_snapshots(base, [ours, theirs], strategy)
        assert decided.merged == {"fine": 7, "keep": 0, **picks}
        assert list(decided.merged) == sorted(decided.merged)
        assert decided.conflicts == ()
        assert decided.resolved == result.conflicts


def test_octopus_strategies() -> None:
    base = {"p": 1, "q": 1}
    heads = [{"p": 1, "q": 1}, {"p": 2, "q": 1}, {"p": 3, "q": 4}, {"p": 1, "q": 1}]
    assert merge_snapshots(base, heads).merged == {"q": 4}
    assert brief(merge_snapshots(base, heads).conflicts) == [("p", BOTH_MODIFIED)]
    assert merge_snapshots(base, heads, OURS).merged == {"p": 1, "q": 4}
    assert merge_snapshots(base, heads, FIRST).merged == {"p": 2, "q": 4}
    assert merge_snapshots(base, heads, LAST).merged == {"p": 3, "q": 4}
    assert merge_snapshots(base, heads, THEIRS).merged == {"p": 3, "q": 4}


def test_unrelated_histories() -> None:
    ours = {"a": 1, "shared/x": 2}
    theirs = {"b": 3, "shared/x": 2, "shared/y": 4}
    assert merge_snapshots({}, [ours, theirs]).merged == {
        "a": 1,
        "b": 3,
        "shared/x": 2,
        "shared/y": 4,
    }
    result = merge_snapshots({}, [ours, {"shared/x": 9}])
    assert result.merged == {"a": 1}
    assert result.conflicts == (PathConflict("shared/x", None, (2, 9), BOTH_ADDED),)


def test_single_head_and_identical_heads() -> None:
    base = {"a": 1, "b": 2}
    head = {"a": 1, "c/d": 3}
    assert merge_snapshots(base, [head]).merged == head
    assert merge_snapshots(base, [head, head, head]).merged == head
    assert merge_snapshots(head, [head, head]).merged == head
    assert merge_snapshots(base, [base, head]).merged == head
    assert merge_snapshots(base, [head, base]).merged == head
    with pytest.raises(ValueError):
        merge_snapshots(base, [])


def test_file_directory_without_strategy() -> None:
    result = merge_snapshots({}, [{"a": 1, "z": 0}, {"a/b": 2, "a/c": 3}])
    assert result.merged == {"z": 0}  # neither the file nor the directory
    assert result.conflicts == (PathConflict("a", None, (1, None), FILE_DIRECTORY),)


def test_file_directory_with_strategies() -> None:
    ours, theirs = {"a": 1, "z": 0}, {"a/b": 2, "a/c": 3}
    as_file = merge_snapshots({}, [ours, theirs], OURS)
    assert as_file.merged == {"a": 1, "z": 0}
    assert brief(as_file.resolved) == [
        ("a", FILE_DIRECTORY),
        ("a/b", FILE_DIRECTORY),
        ("a/c", FILE_DIRECTORY),
    ]
    assert as_file.resolved[1] == PathConflict("a/b", None, (None, 2), FILE_DIRECTORY)
    assert merge_snapshots({}, [ours, theirs], FIRST) == as_file
    as_dir = merge_snapshots({}, [ours, theirs], THEIRS)
    assert as_dir.merged == {"a/b": 2, "a/c": 3, "z": 0}
    assert brief(as_dir.resolved) == [("a", FILE_DIRECTORY)]
    assert merge_snapshots({}, [ours, theirs], LAST) == as_dir
    assert merge_snapshots({}, [theirs, ours], OURS).merged == {"a/b": 2, "a/c": 3, "z": 0}


def test_file_directory_when_ours_has_neither() -> None:
    heads = [{"z": 0}, {"z": 0, "a": 1}, {"z": 0, "a/b": 2}]
    assert merge_snapshots({}, heads).merged == {"z": 0}
    decided = merge_snapshots({}, heads, OURS)  # ours has nothing at "a": nothing is kept
    assert decided.merged == {"z": 0}
    assert brief(decided.resolved) == [("a", FILE_DIRECTORY), ("a/b", FILE_DIRECTORY)]
    assert merge_snapshots({}, heads, FIRST).merged == {"z": 0, "a": 1}
    assert merge_snapshots({}, heads, LAST).merged == {"z": 0, "a/b": 2}


def test_file_replacing_a_directory_with_conflicting_content() -> None:
    base = {"a/b": 1}
    ours = {"a/b": 2}  # modified inside the directory
    theirs = {"a": 5}  # replaced the directory by a file
    result = merge_snapshots(base, [ours, theirs])
    assert result.merged == {}
    assert brief(result.conflicts) == [("a", FILE_DIRECTORY), ("a/b", MODIFY_DELETE)]
    decided = merge_snapshots(base, [ours, theirs], OURS)
    assert decided.merged == {"a/b": 2}
    assert brief(decided.resolved) == [("a", FILE_DIRECTORY), ("a/b", MODIFY_DELETE)]
    decided = merge_snapshots(base, [ours, theirs], THEIRS)  # no clash once a/b is deleted
    assert decided.merged == {"a": 5}
    assert brief(decided.resolved) == [("a/b", MODIFY_DELETE)]
    # a file unchanged on one side, replaced by a directory on the other: clean
    assert merge_snapshots({"a": 1}, [{"a": 1}, {"a/b": 2}]).merged == {"a/b": 2}


def test_both_added_and_file_directory_on_one_path() -> None:
    result = merge_snapshots({}, [{"a": 1}, {"a": 2}, {"a/b": 3}])
    assert result.merged == {}
    assert brief(result.conflicts) == [("a", BOTH_ADDED), ("a", FILE_DIRECTORY)]
    assert merge_snapshots({}, [{"a": 1}, {"a": 2}, {"a/b": 3}], FIRST).merged == {"a": 1}
    assert merge_snapshots({}, [{"a": 1}, {"a/b": 3}, {"a": 2}], LAST).merged == {"a": 2}


def test_nested_file_directory_clashes() -> None:
    heads = [{"a": 1}, {"a/b": 2}, {"a/b/c": 3}]
    result = merge_snapshots({}, heads)
    assert result.merged == {}
    assert brief(result.conflicts) == [("a", FILE_DIRECTORY), ("a/b", FILE_DIRECTORY)]
    last = merge_snapshots({}, heads, LAST)
    assert last.merged == {"a/b/c": 3}
    assert brief(last.resolved) == [("a", FILE_DIRECTORY), ("a/b", FILE_DIRECTORY)]
    first = merge_snapshots({}, heads, FIRST)
    assert first.merged == {"a": 1}
    assert brief(first.resolved) == [
        ("a", FILE_DIRECTORY),
        ("a/b", FILE_DIRECTORY),
        ("a/b/c", FILE_DIRECTORY),
    ]


def test_names_sorting_between_a_file_and_its_directory() -> None:
    # "a-b", "a.txt" and "a0" are neither "a" nor under "a/" although they sort among them
    ours = {"a": 1, "a-b": 1, "a.txt": 1, "ab/c": 1}
    theirs = {"a/b": 2, "a0": 3, "a-b/c/d": 4}
    result = merge_snapshots({}, [ours, theirs])
    assert result.merged == {"a.txt": 1, "ab/c": 1, "a0": 3}
    assert brief(result.conflicts) == [("a", FILE_DIRECTORY), ("a-b", FILE_DIRECTORY)]
    decided = merge_snapshots({}, [ours, theirs], OURS)
    assert decided.merged == {"a": 1, "a-b": 1, "a.txt": 1, "a0": 3, "ab/c": 1}
    assert brief(decided.resolved) == [
        ("a", FILE_DIRECTORY),
        ("a-b", FILE_DIRECTORY),
        ("a-b/c/d", FILE_DIRECTORY),
        ("a/b", FILE_DIRECTORY),
    ]


def test_result_is_sorted_whatever_the_input_order() -> None:
    paths = [f"d{i % 7}/f{i:03d}" for i in range(200)]
    random.Random(1).shuffle(paths)
    base = {p: 0 for p in paths}
    ours = {**base, "zz": 1}
    theirs = {p: 0 for p in reversed(paths)} | {"d0/new": 2}
    del theirs[paths[0]]
    result = merge_snapshots(base, [ours, theirs])
    assert list(result.merged) == sorted(set(paths) - {paths[0]} | {"zz", "d0/new"})


def test_large_snapshots_are_fast_enough() -> None:
    n = 100_000
    base = {f"images/c{i % 100:02d}/{i:06d}.bin": f(str(i)) for i in range(n)}
    ours = dict(base)
    theirs = {p: f(v[1]) for p, v in base.items()}  # equal values, distinct objects
    ours["images/c00/000000.bin"] = f("changed")
    del theirs["images/c01/000001.bin"]
    theirs["new/file"] = f("new")
    result = merge_snapshots(base, [ours, theirs])
    assert result.clean and len(result.merged) == n
    assert result.merged["images/c00/000000.bin"] == f("changed")


# --- property tests -------------------------------------------------------------------------

NAMES = ["a", "b", "a/x", "a/y", "a/x/z", "c/d", "c/d/e", "c/f", "c", "e/g"]
VALUES = st.integers(0, 3)


def is_valid_tree(snapshot: Mapping[str, object]) -> bool:
    return not any(path.startswith(other + "/") for path in snapshot for other in snapshot)


def make_valid(snapshot: dict[str, int], prefer_files: bool) -> dict[str, int]:
    """Drop paths until no file is also a directory: shallow paths win or deep ones do."""
    kept: dict[str, int] = {}
    for path in sorted(snapshot, key=lambda p: p.count("/"), reverse=not prefer_files):
        if prefer_files:
            clash = any(path.startswith(other + "/") for other in kept)
        else:
            clash = any(other.startswith(path + "/") for other in kept)
        if not clash:
            kept[path] = snapshot[path]
    return dict(sorted(kept.items()))


@st.composite
def snapshot_from(draw: st.DrawFn, base: dict[str, int]) -> dict[str, int]:
    """``base`` after a few random edits: modify, delete, add; then made a valid tree."""
    head = dict(base)
    for _ in range(draw(st.integers(0, 5))):
        path = draw(st.sampled_from(NAMES))
        if path in head and draw(st.booleans()):
            del head[path]
        else:
            head[path] = draw(VALUES)
    return make_valid(head, draw(st.booleans()))


@st.composite
def merges(draw: st.DrawFn, unrelated: bool = False) -> tuple[dict[str, int], list[dict[str, int]]]:
    if unrelated:
        base: dict[str, int] = {}
    else:
        raw = draw(st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=6))
        base = make_valid(raw, draw(st.booleans()))
    heads = draw(st.lists(snapshot_from(base), min_size=1, max_size=4))
    return base, heads


def fd_involved(path: str, result: MergeResult[int]) -> bool:
    """Whether a file/directory record covers ``path`` (the path itself or a directory of it)."""
    return any(
        record.reason == FILE_DIRECTORY
        and (path == record.path or path.startswith(record.path + "/"))
        for record in result.conflicts + result.resolved
    )


def check_common(base: Snap, heads: Sequence[Snap], result: MergeResult[int]) -> None:
    merged = result.merged
    assert is_valid_tree(merged)
    assert list(merged) == sorted(merged)
    everything = set(base).union(*heads)
    for path in everything:
        b = base.get(path)
        versions = tuple(head.get(path) for head in heads)
        # nothing appears from nowhere: every merged value is some head's version
        if path in merged:
            assert merged[path] in versions
        changers = [i for i, v in enumerate(versions) if v != b]
        if not changers:
            assert merged.get(path) == b
        elif len({versions[i] for i in changers}) == 1 and not fd_involved(path, result):
            assert merged.get(path) == versions[changers[0]]
    for record in result.conflicts + result.resolved:
        assert record.base == base.get(record.path)
        assert record.versions == tuple(head.get(record.path) for head in heads)
        if record.reason == FILE_DIRECTORY:
            # a file that some head has, and either a directory in another head (the clash
            # itself) or a path dropped from under a clashing file
            assert any(record.path in head for head in heads)
            assert any(p.startswith(record.path + "/") for head in heads for p in head) or any(
                other.reason == FILE_DIRECTORY and record.path.startswith(other.path + "/")
                for other in result.resolved
            )
        else:
            changed = {v for v in record.versions if v != record.base}
            assert len(changed) >= 2
            assert merge_path(record.base, record.versions)[1] == record.reason
    for seq in (result.conflicts, result.resolved):
        keys = [(record.path, record.reason) for record in seq]
        assert keys == sorted(set(keys))


@settings(max_examples=150, deadline=None)
@given(merges())
def test_property_without_strategy(case: tuple[dict[str, int], list[dict[str, int]]]) -> None:
    base, heads = case
    result = merge_snapshots(base, heads)
    check_common(base, heads, result)
    assert result.resolved == ()
    for record in result.conflicts:  # conflicted paths (and what a clash covers) are left out
        assert record.path not in result.merged
        if record.reason == FILE_DIRECTORY:
            assert not any(p.startswith(record.path + "/") for p in result.merged)
    for path in set(base).union(*heads):
        value, reason = merge_path(base.get(path), [head.get(path) for head in heads])
        if reason is not None:
            assert (path, reason) in brief(result.conflicts)
        elif not fd_involved(path, result):
            assert result.merged.get(path) == value
    # only conflicts depend on the strategy
    if result.clean:
        for strategy in ALL_STRATEGIES:
            assert merge_snapshots(base, heads, strategy) == result
    # the order of the merged-in heads does not matter without a strategy
    swapped = merge_snapshots(base, [heads[0], *reversed(heads[1:])])
    assert swapped.merged == result.merged
    assert brief(swapped.conflicts) == brief(result.conflicts)


@settings(max_examples=150, deadline=None)
@given(merges(), st.sampled_from(ALL_STRATEGIES))
def test_property_with_strategy(
    case: tuple[dict[str, int], list[dict[str, int]]], strategy: Strategy
) -> None:
    base, heads = case
    result = merge_snapshots(base, heads, strategy)
    check_common(base, heads, result)
    assert result.conflicts == ()
    # deterministic, whatever the insertion order of the inputs
    shuffled = [dict(reversed(list(head.items()))) for head in heads]
    again = merge_snapshots(dict(reversed(list(base.items()))), shuffled, strategy)
    assert again == result and list(again.merged) == list(result.merged)
    # off the file/directory clashes, every path is decided by merge_path with the strategy
    undecided = merge_snapshots(base, heads)
    for path in set(base).union(*heads):
        versions = [head.get(path) for head in heads]
        value, reason = merge_path(base.get(path), versions, strategy)
        if not fd_involved(path, result):
            assert result.merged.get(path) == value
        if reason is not None:
            assert (path, reason) in brief(result.resolved)
            assert (path, reason) in brief(undecided.conflicts)


@settings(max_examples=100, deadline=None)
@given(merges())
def test_property_self_merges(case: tuple[dict[str, int], list[dict[str, int]]]) -> None:
    base, heads = case
    head = heads[-1]
    for strategy in [None, *ALL_STRATEGIES]:
        assert merge_snapshots(base, [head], strategy).merged == head
        assert merge_snapshots(base, [head, head, head], strategy).merged == head
        assert merge_snapshots(head, [head, head], strategy).merged == head
        assert merge_snapshots(base, [base, head], strategy).merged == head
        assert merge_snapshots(base, [head, base, head], strategy).merged == head


@settings(max_examples=150, deadline=None)
@given(merges(unrelated=True))
def test_property_unrelated_histories(case: tuple[dict[str, int], list[dict[str, int]]]) -> None:
    _, heads = case
    union: dict[str, int] = {}
    collide = False
    for head in heads:
        for path, value in head.items():
            collide |= union.setdefault(path, value) != value
    result = merge_snapshots({}, heads)
    check_common({}, heads, result)
    if not collide and is_valid_tree(union):
        assert result.clean
        assert result.merged == union
    else:
        assert not result.clean
        assert all(r.reason in (BOTH_ADDED, FILE_DIRECTORY) for r in result.conflicts)
