"""The history pages: home, history (graph), a version, search. Files and comparisons are in
:mod:`dsrepo.server.web.browse`; both run inside :meth:`Site.page`, which opens the repository
for the request and turns a revision or path that does not exist into a 404 page.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from dsrepo.dvcs.errors import PathError, UnknownRevision
from dsrepo.dvcs.revisions import resolve_commit
from dsrepo.errors import DsrepoError
from dsrepo.objects.errors import AmbiguousId, InvalidId, ObjectNotFound
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.model import Commit
from dsrepo.server.web import timeline
from dsrepo.server.web.changes import summarize
from dsrepo.server.web.graph_svg import Node, render_svg, row_height
from dsrepo.server.web.templating import Pager, pager, render, subject
from dsrepo.server.web.trees import count_files, tree_bytes
from dsrepo.server.web.urls import Urls, rev_and_path

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

LOG_PAGE = 50
SEARCH_PAGE = 50
HOME_LATEST = 15
VERSION_CHANGES = 100
"""Changes listed per parent on a version page (the compare page lists them all, paginated)."""
COUNT_BUDGET = 100_000
"""Tree entries a page decodes at most to count files (past it a lower bound ``≥ N`` is shown;
exact counts of subtrees are remembered, so the next view gets further)."""

NOT_FOUND = (UnknownRevision, PathError, ObjectNotFound, InvalidId, AmbiguousId)


class Missing(Exception):
    """A page for something that does not exist (404)."""


def commit_of(repo: Repository, rev: str) -> ObjectId:
    """The commit a revision from a URL names. A ``:`` would make it a path: refused."""
    if not rev or ":" in rev:
        raise Missing(f"not a revision: {rev!r}")
    return resolve_commit(repo, rev)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Skip what fails to resolve (a tag of a tree has no commit: shown without one)."""
    with contextlib.suppress(DsrepoError, Missing):
        yield


@dataclass
class Ctx:
    """One request: the repository it reads, link builders, the site's caches."""

    request: Request
    repo: Repository
    site: Site
    started: float = field(default_factory=time.perf_counter)

    @property
    def u(self) -> Urls:
        return Urls(str(self.request.scope.get("root_path") or ""))

    def pager(self, per_page: int, total: int) -> Pager:
        return pager(self.request, per_page, total)

    def render(self, template: str, context: Mapping[str, Any], status: int = 200) -> HTMLResponse:
        return render(self.request, template, context, status=status, started=self.started)

    def graph(self, heads: list[ObjectId]) -> timeline.Graph:
        return self.site.graphs.get(self.repo, heads)


Handler = Callable[[Ctx], Response]


class Site:
    """Shared by every page: the repository (opened once) and the graph cache."""

    def __init__(self, open_repo: Callable[[], Repository]) -> None:
        self.open_repo = open_repo
        self.graphs = timeline.GraphCache()
        self._repo: Repository | None = None
        self._lock = threading.Lock()

    def repo(self) -> Repository:
        """The repository, opened on the first request and kept: its cache of decoded trees is
        what makes a page viewed again fast. Packs that arrived since the last request (a push
        through the remote API) are added to its location index first (a listing of packs)."""
        with self._lock:
            if self._repo is None:
                self._repo = self.open_repo()
            repo = self._repo
        repo.store.sync_index()
        return repo

    def page(self, handler: Handler) -> Callable[[Request], Response]:
        """A starlette endpoint around ``handler``: opens the repository, maps a missing
        revision or path to 404 and any other dsrepo error (damaged storage...) to 500."""

        @functools.wraps(handler)
        def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                return handler(Ctx(request, self.repo(), self, started))
            except (Missing, *NOT_FOUND) as exc:
                context = {"title": "Not found", "error": str(exc)}
                return render(request, "error.html", context, status=404)
            except DsrepoError as exc:
                context = {"title": "Error", "error": str(exc)}
                return render(request, "error.html", context, status=500)

        return endpoint


# ---------------------------------------------------------------- home


def home(cx: Ctx) -> Response:
    repo = cx.repo
    deco = repo.decorations()
    branches = [
        {"name": b.name, "id": b.target, "commit": repo.get_commit(b.target), "current": b.current}
        for b in repo.branches()
    ]
    tags = []
    for t in sorted(repo.tags(), key=lambda t: -(t.tag.tagger.time if t.tag is not None else 0)):
        target: ObjectId | None = None
        with quiet():
            target = commit_of(repo, f"refs/tags/{t.name}")
        tags.append({"name": t.name, "tag": t.tag, "target": target})
    latest = []
    heads = timeline.all_heads(repo)
    if heads:
        for h in cx.graph(heads).order[:HOME_LATEST]:
            oid = from_hex(h)
            latest.append({"id": oid, "commit": repo.get_commit(oid), "labels": deco.get(oid, [])})
    context = {"title": "Versions", "branches": branches, "tags": tags, "latest": latest}
    return cx.render("home.html", context)


# ---------------------------------------------------------------- history


def log_all(cx: Ctx) -> Response:
    return _log(cx, "")


def log_rev(cx: Ctx) -> Response:
    return _log(cx, rev_and_path(cx.request, "/log/")[0])


def _log(cx: Ctx, rev: str) -> Response:
    repo = cx.repo
    heads = [commit_of(repo, rev)] if rev else timeline.all_heads(repo)
    title = f"History of {rev}" if rev else "History"
    if not heads:
        context = {"title": title, "rev": rev, "items": [], "svg": "", "pg": cx.pager(LOG_PAGE, 0)}
        return cx.render("log.html", context)
    graph = cx.graph(heads)
    pg = cx.pager(LOG_PAGE, len(graph.order))
    first = graph.row_of[graph.order[pg.start]]
    last = graph.row_of[graph.order[pg.end]] if pg.end < len(graph.order) else len(graph.rows)
    rows = graph.rows[first:last]
    deco = repo.decorations()
    u = cx.u
    commits: dict[str, Commit] = {c: repo.get_commit(from_hex(c)) for _, c in rows if c}

    def node(h: str) -> Node:
        c = commits[h]
        return Node(u.version(h), f"{h[:12]} {subject(c.message)}", len(c.parents) > 1)

    svg = render_svg(
        rows,
        node,
        before=graph.rows[first - 1][0] if first > 0 else None,
        after=graph.rows[last][0] if last < len(graph.rows) else None,
    )
    items = []
    for _, h in rows:
        item: dict[str, Any] = {"height": row_height(h)}
        if h is not None:
            oid = from_hex(h)
            item.update(id=oid, commit=commits[h], labels=deco.get(oid, []))
        items.append(item)
    return cx.render("log.html", {"title": title, "rev": rev, "items": items, "svg": svg, "pg": pg})


# ---------------------------------------------------------------- a version


def version(cx: Ctx) -> Response:
    repo, store = cx.repo, cx.repo.store
    rev = rev_and_path(cx.request, "/v/")[0]
    oid = commit_of(repo, rev)
    c = repo.get_commit(oid)
    parents = []
    for i, p in enumerate(c.parents or (None,)):
        pc = repo.get_commit(p) if p is not None else None
        s = summarize(store, pc.tree if pc is not None else None, c.tree, count_budget=COUNT_BUDGET)
        parents.append(
            {
                "n": i + 1,
                "id": p,
                "commit": pc,
                "summary": s,
                "changes": s.listed.changes[:VERSION_CHANGES],
            }
        )
    meta = dict(c.metadata)
    git = meta.pop("git", None)
    context = {
        "title": f"Version {oid.hex()[:12]}",
        "rev": rev,
        "id": oid,
        "commit": c,
        "labels": repo.decorations().get(oid, []),
        "parents": parents,
        "metadata": meta,
        "git": git if isinstance(git, dict) else None,
        "files": count_files(store, c.tree, COUNT_BUDGET),
        "bytes": tree_bytes(store, c.tree),
    }
    return cx.render("version.html", context)


# ---------------------------------------------------------------- search


def search(cx: Ctx) -> Response:
    repo = cx.repo
    q = cx.request.query_params.get("q", "").strip()
    hits: list[timeline.Hit] = []
    heads = timeline.all_heads(repo) if q else []
    if heads:
        tag_text: dict[ObjectId, str] = {}
        for t in repo.tags():
            if t.tag is not None:
                with quiet():
                    target = commit_of(repo, f"refs/tags/{t.name}")
                    tag_text[target] = f"{tag_text.get(target, '')} {t.tag.message}".strip()
        hits = timeline.search(repo, cx.graph(heads), q, repo.decorations(), tag_text)
    pg = cx.pager(SEARCH_PAGE, len(hits))
    context = {
        "title": f"Search: {q}" if q else "Search",
        "q": q,
        "hits": hits[pg.start : pg.end],
        "count": len(hits),
        "pg": pg,
    }
    return cx.render("search.html", context)
