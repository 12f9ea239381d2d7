"""The read-only web view of a repository: server-rendered pages (Jinja2, autoescaped), no script.

URLs (``REV`` is one path segment, percent-encoded: ``feature/x`` is ``feature%2Fx``; ``PATH`` is
the path inside the version, each name percent-encoded; see :mod:`.urls`)::

    /                           branches, tags (message, tagger, date), the latest versions
    /log        /log/REV        history of every branch and tag, or of REV: SVG graph, ?page=N
    /v/REV                      a version: message, author, dates, metadata, parents, code
                                commit, totals, and the changes against each parent
    /tree/REV/PATH              a folder at REV, 500 entries a page (?page=N); size, content id
    /blob/REV/PATH              a file: size, content id, chunks, and a preview
    /raw/REV/PATH               the file's bytes (HTTP Range, HEAD, ETag = content id;
                                ?download=1 for an attachment)
    /compare/A...B              what changed from A to B (diff --stat), ?page=N
    /compare?a=A&b=B            the compare form (redirects to /compare/A...B)
    /search?q=TEXT              versions by message, tag, branch, metadata key or value;
                                q=KEY=VALUE matches one metadata key (dotted for nesting)
    /static/style.css           the stylesheet

A revision that does not exist, or a path not in it, is a 404 page; damaged storage is a 500
page naming the object. Every page is built from what it shows: a folder of a million files
reads one page of its shards, a version's file count stops at a budget (shown as ``≥ N``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


def routes(open_repo: Callable[[], Repository]) -> list[BaseRoute]:
    """The web view's starlette routes, to mount at ``/``.

    ``open_repo`` is called once, at the first request; the web view keeps that Repository for
    as long as the routes live (its cache of decoded trees is what makes pages fast) and never
    closes it: the caller may close it when the application stops. Before each request, packs
    added since (pushes) are synced into its location index. The web view never writes to the
    repository, except that a partial clone fetches a file's missing chunks when it is viewed."""
    from dsrepo.server.web import browse, pages

    site = pages.Site(open_repo)
    page = site.page
    return [
        Route("/", page(pages.home), name="web:home"),
        Route("/log", page(pages.log_all), name="web:log"),
        Route("/log/{rest:path}", page(pages.log_rev), name="web:log-rev"),
        Route("/v/{rest:path}", page(pages.version), name="web:version"),
        Route("/tree/{rest:path}", page(browse.tree), name="web:tree"),
        Route("/blob/{rest:path}", page(browse.blob), name="web:blob"),
        Route("/raw/{rest:path}", page(browse.raw), name="web:raw"),
        Route("/compare", page(browse.compare_form), name="web:compare-form"),
        Route("/compare/{rest:path}", page(browse.compare), name="web:compare"),
        Route("/search", page(pages.search), name="web:search"),
        Route("/static/{name}", browse.static, name="web:static"),
    ]
