"""The history graph as SVG, drawn from the layout of ``log --graph`` (``dvcs.graph.render_graph``).

``render_graph`` gives one text row per commit (``*`` in its lane) or connector, lane ``k`` at
character ``2k``. Each character becomes a stroke in its cell: ``|`` a vertical line, ``/`` and
``\\`` a diagonal between the lanes on either side, ``_`` a line along the bottom, ``-`` and ``.``
the top of an octopus merge; ``*`` a node (a ring for a merge) joined to whatever touches it
above and below, wrapped in a link to its version. Commit rows are :data:`COMMIT_ROW` pixels
high, connector rows :data:`CONNECTOR_ROW`; the page lays its rows out with the same heights.
Every text in the SVG (titles) is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

COMMIT_ROW = 28
CONNECTOR_ROW = 12
LANE = 16
"""Pixels between lanes (two characters of the text layout)."""
PAD = 10
RADIUS = 5
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


@dataclass(frozen=True, slots=True)
class Node:
    href: str
    title: str
    merge: bool


def _x(pos: int) -> float:
    return PAD + pos * LANE / 2


def _color(lane: int) -> str:
    return COLORS[lane % len(COLORS)]


def _chars(prefix: str | None) -> dict[int, str]:
    return {} if prefix is None else {i: c for i, c in enumerate(prefix) if c != " "}


def row_height(commit: str | None) -> int:
    return COMMIT_ROW if commit is not None else CONNECTOR_ROW


def render_svg(
    rows: Sequence[tuple[str, str | None]],
    node: Callable[[str], Node],
    before: str | None = None,
    after: str | None = None,
) -> Markup:
    """The SVG for ``rows`` (one page of ``render_graph``'s output). ``before`` and ``after`` are
    the prefixes of the rows just outside the page, so lines continue across page breaks."""
    width = max((len(p) for p, _ in rows), default=1)
    height = sum(row_height(c) for _, c in rows)
    lines: list[str] = []
    nodes: list[str] = []

    def seg(x1: float, ya: float, x2: float, yb: float, lane: int) -> None:
        lines.append(f'<path d="M{x1:g} {ya:g}L{x2:g} {yb:g}" stroke="{_color(lane)}"/>')

    y0 = 0
    prefixes = [before, *(p for p, _ in rows), after]
    for r, (prefix, commit) in enumerate(rows):
        h = row_height(commit)
        y1, yc = y0 + h, y0 + h / 2
        above, here, below = _chars(prefixes[r]), _chars(prefix), _chars(prefixes[r + 2])

        for p, c in sorted(here.items()):
            if c == "|":
                seg(_x(p), y0, _x(p), y1, p // 2)
            elif c == "/":
                seg(_x(p + 1), y0, _x(p - 1), y1, (p - 1) // 2)
            elif c == "\\":
                seg(_x(p - 1), y0, _x(p + 1), y1, (p + 1) // 2)
            elif c == "_":
                seg(_x(p - 1), y1, _x(p + 1), y1, (p - 1) // 2)
            elif c == "-":
                seg(_x(p - 1), yc, _x(p + 1), yc, p // 2)
                if below.get(p + 1) == "\\":  # a parent of an octopus leaves from here
                    seg(_x(p), yc, _x(p), y1, (p + 2) // 2)
            elif c == ".":
                seg(_x(p - 1), yc, _x(p), yc, (p + 1) // 2)
                seg(_x(p), yc, _x(p), y1, (p + 1) // 2)
            elif c == "*" and commit is not None:
                lane = p // 2
                if (
                    above.get(p) in ("|", "*", ".")
                    or above.get(p + 1) == "/"
                    or above.get(p - 1) in ("\\",)
                ):
                    seg(_x(p), y0, _x(p), yc, lane)
                if (
                    below.get(p) in ("|", "*")
                    or below.get(p - 1) == "/"
                    or below.get(p + 1) == "\\"
                ):
                    seg(_x(p), yc, _x(p), y1, lane)
                n = node(commit)
                fill = "#fff" if n.merge else _color(lane)
                nodes.append(
                    f'<a href="{escape(n.href)}"><circle cx="{_x(p):g}" cy="{yc:g}" r="{RADIUS}" '
                    f'fill="{fill}" stroke="{_color(lane)}" stroke-width="{3 if n.merge else 1.5}">'
                    f"<title>{escape(n.title)}</title></circle></a>"
                )
        y0 = y1
    w = int(_x(width) + PAD)
    svg = (
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" '
        f'viewBox="0 0 {w} {height}" role="img" aria-label="commit graph">'
        f'<g fill="none" stroke-width="2" stroke-linecap="round">{"".join(lines)}</g>'
        f"{''.join(nodes)}</svg>"
    )
    return Markup(svg)
