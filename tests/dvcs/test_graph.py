"""Tests for dsrepo.dvcs.graph: ancestry, merge bases, ordering and the ASCII graph."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsrepo.dvcs.graph import (
    ahead_behind,
    ancestors,
    is_ancestor,
    merge_bases,
    render_graph,
    topo_order,
)

Graph = Mapping[str, Sequence[str]]


def pf(graph: Graph) -> Callable[[str], Sequence[str]]:
    """A ``parents`` callback over a dict that also checks each commit is asked for once."""
    asked: set[str] = set()

    def parents(commit: str) -> Sequence[str]:
        assert commit not in asked, f"parents({commit}) called twice"
        asked.add(commit)
        return graph[commit]

    return parents


def plain(graph: Graph) -> Callable[[str], Sequence[str]]:
    return lambda commit: graph[commit]


# a - b - c - d
LINEAR: Graph = {"a": [], "b": ["a"], "c": ["b"], "d": ["c"]}
# a - b - c (main) ; b - x - y (topic)
FORK: Graph = {"a": [], "b": ["a"], "c": ["b"], "x": ["b"], "y": ["x"]}
# criss-cross: d = merge(b, c), e = merge(c, b)
CRISS: Graph = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["c", "b"]}
# three branches from base, each with its own commit, plus a later one on the first
OCTO: Graph = {
    "base": [],
    "p": ["base"],
    "q": ["base"],
    "r": ["base"],
    "p2": ["p"],
    "o": ["p2", "q", "r"],
}
UNRELATED: Graph = {"a": [], "b": ["a"], "x": [], "y": ["x"]}


# --- ancestors / is_ancestor ----------------------------------------------------------------


def test_ancestors_each_once() -> None:
    assert list(ancestors(pf(LINEAR), ["d"])) == ["d", "c", "b", "a"]
    assert sorted(ancestors(pf(CRISS), ["d", "e", "d"])) == ["a", "b", "c", "d", "e"]
    assert list(ancestors(pf(LINEAR), [])) == []


def test_ancestors_duplicate_parents() -> None:
    graph = {"a": [], "m": ["a", "a"]}
    assert list(ancestors(pf(graph), ["m"])) == ["m", "a"]


def test_ancestors_is_lazy() -> None:
    calls: list[str] = []

    def parents(commit: str) -> Sequence[str]:
        calls.append(commit)
        return LINEAR[commit]

    iterator = ancestors(parents, ["d"])
    assert next(iterator) == "d"
    assert next(iterator) == "c"
    assert calls == ["d"]


def test_is_ancestor() -> None:
    p = plain(FORK)
    assert is_ancestor(p, "a", "c")
    assert is_ancestor(p, "b", "y")
    assert is_ancestor(p, "c", "c")
    assert not is_ancestor(p, "c", "a")
    assert not is_ancestor(p, "x", "c")
    assert not is_ancestor(p, "c", "y")
    assert not is_ancestor(plain(UNRELATED), "a", "y")


# --- merge bases ----------------------------------------------------------------------------


def test_merge_base_linear() -> None:
    assert merge_bases(pf(LINEAR), ["d", "b"]) == ["b"]
    assert merge_bases(pf(LINEAR), ["b", "d"]) == ["b"]
    assert merge_bases(pf(LINEAR), ["c"]) == ["c"]
    assert merge_bases(pf(LINEAR), ["c", "c"]) == ["c"]


def test_merge_base_fork() -> None:
    assert merge_bases(pf(FORK), ["c", "y"]) == ["b"]
    assert merge_bases(pf(FORK), ["y", "c"]) == ["b"]
    assert merge_bases(pf(FORK), ["c", "x", "y"]) == ["b"]


def test_merge_base_criss_cross_has_two() -> None:
    assert merge_bases(pf(CRISS), ["d", "e"]) == ["b", "c"]
    assert merge_bases(pf(CRISS), ["e", "d"]) == ["b", "c"]


def test_merge_base_octopus() -> None:
    assert merge_bases(pf(OCTO), ["p2", "q", "r"]) == ["base"]
    assert merge_bases(pf(OCTO), ["p2", "p"]) == ["p"]
    assert merge_bases(pf(OCTO), ["o", "q"]) == ["q"]
    # a common ancestor of all three is not the base of two of them
    graph = {"base": [], "s": ["base"], "a": ["s"], "b": ["s"], "c": ["base"]}
    assert merge_bases(pf(graph), ["a", "b"]) == ["s"]
    assert merge_bases(pf(graph), ["a", "b", "c"]) == ["base"]


def test_merge_base_unrelated() -> None:
    assert merge_bases(pf(UNRELATED), ["b", "y"]) == []
    assert merge_bases(pf(UNRELATED), ["a", "x"]) == []


def test_merge_base_needs_commits() -> None:
    with pytest.raises(ValueError):
        merge_bases(pf(LINEAR), [])


def test_cycle_is_reported() -> None:
    with pytest.raises(ValueError, match="cycle"):
        merge_bases(plain({"a": ["b"], "b": ["a"]}), ["a"])


# --- ahead / behind -------------------------------------------------------------------------


def test_ahead_behind() -> None:
    assert ahead_behind(pf(LINEAR), "d", "d") == (0, 0)
    assert ahead_behind(pf(LINEAR), "d", "b") == (2, 0)
    assert ahead_behind(pf(LINEAR), "b", "d") == (0, 2)
    assert ahead_behind(pf(FORK), "c", "y") == (1, 2)
    assert ahead_behind(pf(CRISS), "d", "e") == (1, 1)
    assert ahead_behind(pf(UNRELATED), "b", "y") == (2, 2)


# --- topological order ----------------------------------------------------------------------


def test_topo_order_linear() -> None:
    assert topo_order(pf(LINEAR), ["d"]) == ["d", "c", "b", "a"]


def test_topo_order_keeps_lines_together() -> None:
    assert topo_order(pf(FORK), ["c", "y"]) == ["c", "y", "x", "b", "a"]
    assert topo_order(pf(FORK), ["y", "c"]) == ["y", "x", "c", "b", "a"]
    # a merge is followed by the branch it brought in, then by its first-parent line
    graph = {"a": [], "m1": ["a"], "s1": ["a"], "s2": ["s1"], "m": ["m1", "s2"]}
    assert topo_order(pf(graph), ["m"]) == ["m", "s2", "s1", "m1", "a"]


def test_topo_order_with_timestamps() -> None:
    stamps = {"a": 1, "b": 2, "x": 3, "c": 4, "y": 5}
    order = topo_order(pf(FORK), ["c", "y"], stamps.__getitem__)
    assert order == ["y", "c", "x", "b", "a"]
    # ties: smaller id first; children still before parents despite older timestamps
    same = dict.fromkeys(FORK, 7)
    assert topo_order(pf(FORK), ["c", "y"], same.__getitem__) == ["c", "y", "x", "b", "a"]
    skewed = {"a": 9, "b": 9, "c": 1, "x": 1, "y": 1}
    assert topo_order(pf(FORK), ["c", "y"], skewed.__getitem__) == ["c", "y", "x", "b", "a"]


def test_topo_order_head_that_is_an_ancestor() -> None:
    assert topo_order(pf(LINEAR), ["b", "d"]) == ["d", "c", "b", "a"]


def test_deep_history_no_recursion() -> None:
    depth = 50_000  # far beyond any recursion limit
    graph: dict[str, list[str]] = {"0": []}
    for i in range(1, depth):
        graph[str(i)] = [str(i - 1)]
    top = str(depth - 1)
    p = plain(graph)
    assert sum(1 for _ in ancestors(p, [top])) == depth
    assert is_ancestor(p, "0", top)
    assert merge_bases(p, [top, "5"]) == ["5"]
    assert ahead_behind(p, top, "0") == (depth - 1, 0)
    order = topo_order(p, [top])
    assert order[0] == top and order[-1] == "0" and len(order) == depth
    rows = render_graph(order, p)
    assert len(rows) == depth and all(prefix == "*" for prefix, _ in rows)


# --- rendering ------------------------------------------------------------------------------


def draw(graph: Graph, heads: Sequence[str]) -> str:
    """The graph as text, each line ``prefix`` padded to 8, then the commit (or nothing)."""
    order = topo_order(plain(graph), heads)
    rows = render_graph(order, plain(graph))
    check_drawing(order, graph, rows)
    return "\n".join(f"{prefix:8}{commit or ''}".rstrip() for prefix, commit in rows)


def lines(*rows: str) -> str:
    return "\n".join(rows)


def test_render_linear() -> None:
    assert draw(LINEAR, ["d"]) == lines(
        "*       d",
        "*       c",
        "*       b",
        "*       a",
    )


def test_render_fork() -> None:
    assert draw(FORK, ["c", "y"]) == lines(
        "*       c",
        "| *     y",
        "| *     x",
        "|/",
        "*       b",
        "*       a",
    )


def test_render_merge() -> None:
    graph = {"a": [], "m1": ["a"], "s1": ["a"], "m": ["m1", "s1"]}
    assert draw(graph, ["m"]) == lines(
        "*       m",
        "|\\",
        "| *     s1",
        "* |     m1",
        "|/",
        "*       a",
    )


def test_render_octopus() -> None:
    assert draw(OCTO, ["o"]) == lines(
        "*-.     o",
        "|\\ \\",
        "| | *   r",
        "| * |   q",
        "| |/",
        "* |     p2",
        "* |     p",
        "|/",
        "*       base",
    )


def test_render_octopus_of_four() -> None:
    graph = {"b": [], "w": ["b"], "x": ["b"], "y": ["b"], "z": ["b"], "o": ["w", "x", "y", "z"]}
    assert draw(graph, ["o"]) == lines(
        "*---.   o",
        "|\\ \\ \\",
        "| | | * z",
        "| | * | y",
        "| | |/",
        "| * |   x",
        "| |/",
        "* |     w",
        "|/",
        "*       b",
    )


def test_render_octopus_beside_another_lane() -> None:
    graph = {"b": [], "t": ["b"], "p": ["b"], "q": ["b"], "r": ["b"], "o": ["p", "q", "r"]}
    assert draw(graph, ["t", "o"]) == lines(
        "*       t",
        "| *-.   o",
        "| |\\ \\",
        "| | | * r",
        "|_|_|/",
        "| | *   q",
        "|_|/",
        "| *     p",
        "|/",
        "*       b",
    )
    # a lane on the right of the octopus first moves out of its way
    graph = {**graph, "m": ["o", "t"]}
    order = ["m", "o", "r", "q", "p", "t", "b"]
    rows = render_graph(order, plain(graph))
    check_drawing(order, graph, rows)
    assert [(prefix, commit) for prefix, commit in rows] == [
        ("*", "m"),
        ("|\\", None),
        ("|  \\", None),
        ("*-. |", "o"),
        ("|\\ \\ \\", None),
        ("| | * |", "r"),
        ("| * | |", "q"),
        ("| |/ /", None),
        ("* | |", "p"),
        ("|/ /", None),
        ("| *", "t"),
        ("|/", None),
        ("*", "b"),
    ]


def test_render_criss_cross() -> None:
    assert draw(CRISS, ["d", "e"]) == lines(
        "*       d",
        "|\\",
        "| | *   e",
        "| | |\\",
        "|_|_|/",
        "| |/",
        "* |     b",
        "| *     c",
        "|/",
        "*       a",
    )


def test_render_roots_and_unrelated_histories() -> None:
    graph = {"a": [], "b": [], "m": ["a", "b"]}
    assert draw(graph, ["m"]) == lines(
        "*       m",
        "|\\",
        "| *     b",
        "*       a",
    )
    assert draw(UNRELATED, ["b", "y"]) == lines(
        "*       b",
        "*       a",
        "",
        "*       y",
        "*       x",
    )
    # a root with lanes on its right: they move left under it
    graph = {"a": [], "x": [], "b": ["a"], "y": ["x"], "m": ["b", "y"]}
    assert draw(graph, ["m"]) == lines(
        "*       m",
        "|\\",
        "| *     y",
        "| *     x",
        "*       b",
        "*       a",
    )


def test_render_truncated_log_and_bad_order() -> None:
    rows = render_graph(["d", "c"], plain(LINEAR))
    assert rows == [("*", "d"), ("*", "c")]
    with pytest.raises(ValueError):
        render_graph(["c", "d"], plain(LINEAR))


def _taker(
    state: Mapping[int, frozenset[str]], used: set[int], text: str
) -> Callable[[int], frozenset[str]]:
    def take(position: int) -> frozenset[str]:
        assert position in state, f"line at {position} of {text!r} comes from nowhere"
        used.add(position)
        return state[position]

    return take


def check_drawing(
    order: Sequence[str], graph: Graph, rows: Sequence[tuple[str, str | None]]
) -> None:
    """Trace every line of the drawing and check it shows exactly the edges of ``graph``.

    A line carries the set of commits it comes from. ``|`` continues it, ``/`` and ``\\`` move it
    one lane, ``_`` runs along to the lane on the left where a ``/`` joins; a ``*`` collects the
    lines arriving at its position (each gives an edge child -> this commit) and starts the
    commit's own line (also from its ``-``/``.`` extension). No line may dangle.
    """
    listed = set(order)
    expected = sorted((c, p) for c in order for p in set(graph[c]) if p in listed)
    drawn: list[tuple[str, str]] = []
    state: dict[int, frozenset[str]] = {}
    previous = ""
    seen: list[str] = []
    for text, commit in rows:
        assert text == text.rstrip()
        assert set(text) <= set(" |*/\\_-."), text
        new: dict[int, set[str]] = {}
        used: set[int] = set()
        take = _taker(state, used, text)
        if commit is not None:
            seen.append(commit)
            assert text.count("*") == 1
            star = text.index("*")
            if star in state:
                drawn.extend((child, commit) for child in take(star))
            else:  # a new line of history starts here: nothing may seem to lead into it
                assert star >= len(previous) or previous[star] == " ", (previous, text)
            end = star
            while end + 1 < len(text) and text[end + 1] in "-.":
                end += 1
            if any(p in listed for p in graph[commit]):
                for position in range(star, end + 1, 2):
                    new[position] = {commit}
            for position, char in enumerate(text):
                if char == "|":
                    new.setdefault(position, set()).update(take(position))
                else:
                    assert char in "*-. ", text
        else:
            for position, char in enumerate(text):
                if char == "|":
                    new.setdefault(position, set()).update(take(position))
                elif char == "\\":
                    new.setdefault(position + 1, set()).update(take(position - 1))
                elif char == "/":
                    land = position - 1
                    while land >= 2 and text[land - 1] == "_":
                        land -= 2
                    new.setdefault(land, set()).update(take(position + 1))
        assert used == set(state), f"a line ends in the air at {text!r}"
        assert all(position % 2 == 0 for position in new)
        state = {position: frozenset(sources) for position, sources in new.items()}
        previous = text
    assert not state, "lines left open at the end"
    assert seen == list(order)
    assert sorted(drawn) == expected


# --- properties on random DAGs --------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """A random DAG: commit ``c{i}`` has up to 3 distinct parents among earlier commits."""
    n = draw(st.integers(1, 14))
    graph: dict[str, list[str]] = {}
    for i in range(n):
        picks = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        graph[f"c{i:02d}"] = [f"c{j:02d}" for j in picks]
    return graph


def reach(graph: Graph, commit: str) -> set[str]:
    seen = {commit}
    todo = [commit]
    while todo:
        for parent in graph[todo.pop()]:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


@settings(max_examples=150, deadline=None)
@given(dags(), st.data())
def test_properties_against_brute_force(graph: dict[str, list[str]], data: st.DataObject) -> None:
    names = sorted(graph)
    commits = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4))
    p = plain(graph)
    common = set.intersection(*(reach(graph, c) for c in commits))
    best = sorted(c for c in common if not any(c in reach(graph, o) - {o} for o in common))
    assert merge_bases(pf(graph), commits) == best

    a, b = commits[0], commits[-1]
    assert is_ancestor(p, a, b) == (a in reach(graph, b))
    ra, rb = reach(graph, a), reach(graph, b)
    assert ahead_behind(pf(graph), a, b) == (len(ra - rb), len(rb - ra))

    heads = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
    stamps = data.draw(st.dictionaries(st.sampled_from(names), st.integers(0, 3)))
    timestamp = data.draw(st.sampled_from([None, lambda c: stamps.get(c, 0)]))
    order = topo_order(pf(graph), heads, timestamp)
    assert sorted(order) == sorted(set.union(*(reach(graph, h) for h in heads)))
    position = {c: i for i, c in enumerate(order)}
    assert all(position[c] < position[q] for c in order for q in graph[c])

    rows = render_graph(order, p)
    check_drawing(order, graph, rows)
    # a truncated log draws cleanly too
    cut = order[: data.draw(st.integers(0, len(order)))]
    check_drawing(cut, graph, render_graph(cut, p))
