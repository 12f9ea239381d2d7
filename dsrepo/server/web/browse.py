"""Files and comparisons: the file browser, file views with previews, raw downloads with HTTP
ranges, and the comparison of two versions (the ``diff --stat`` view)."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Commit, TreeEntry
from dsrepo.server.web.blobio import Unsatisfiable, open_reader, parse_range, stream
from dsrepo.server.web.changes import summarize
from dsrepo.server.web.pages import COUNT_BUDGET, Ctx, Missing, commit_of
from dsrepo.server.web.render import IMAGE_TYPES, preview, suffix
from dsrepo.server.web.templating import STATIC
from dsrepo.server.web.trees import count_files, entries_page, entry_count, lookup, tree_bytes
from dsrepo.server.web.urls import compare_revs, rev_and_path

TREE_PAGE = 500
"""Entries per page of a folder (a million-entry folder reads only the shards of one page)."""
COMPARE_PAGE = 500
FOLDER_COUNT_BUDGET = 20_000
"""Tree entries decoded at most to count a folder's files (past it, a lower bound is shown)."""


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) for each folder on the way to ``path``."""
    parts = path.split("/") if path else []
    return [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]


@dataclass(frozen=True, slots=True)
class Located:
    """What a ``{prefix}{rev}/{path}`` URL names: entry None is the version's root folder."""

    rev: str
    path: str
    entry: TreeEntry | None
    id: ObjectId
    commit: Commit


def _locate(cx: Ctx, prefix: str) -> Located:
    rev, path = rev_and_path(cx.request, prefix)
    oid = commit_of(cx.repo, rev)
    commit = cx.repo.get_commit(oid)
    entry = lookup(cx.repo.store, commit.tree, path) if path else None
    if path and entry is None:
        raise Missing(f"{path!r} does not exist in {rev}")
    return Located(rev, path, entry, oid, commit)


def tree(cx: Ctx) -> Response:
    at = _locate(cx, "/tree/")
    rev, path, entry = at.rev, at.path, at.entry
    if entry is not None and entry.kind != EntryKind.TREE:
        return RedirectResponse(cx.u.blob(rev, path), status_code=302)
    store = cx.repo.store
    tree_id = entry.id if entry is not None else at.commit.tree
    pg = cx.pager(TREE_PAGE, entry_count(store, tree_id))
    entries, total = entries_page(store, tree_id, pg.start, TREE_PAGE)
    context = {
        "title": f"{path or '/'} at {rev}",
        "rev": rev,
        "id": at.id,
        "path": path,
        "crumbs": _crumbs(path),
        "entries": entries,
        "total": total,
        "folder_bytes": entry.size if entry is not None else tree_bytes(store, tree_id),
        "files": count_files(store, tree_id, FOLDER_COUNT_BUDGET),
        "pg": pg,
        "TREE": EntryKind.TREE,
        "SYMLINK": EntryKind.SYMLINK,
    }
    return cx.render("tree.html", context)


def blob(cx: Ctx) -> Response:
    at = _locate(cx, "/blob/")
    rev, path, entry = at.rev, at.path, at.entry
    if entry is None or entry.kind == EntryKind.TREE:
        return RedirectResponse(cx.u.tree(rev, path), status_code=302)
    repo = cx.repo
    chunks = len(repo.store.get_manifest(entry.manifest).chunks) if entry.manifest else 1
    with open_reader(repo, entry, path) as reader:
        shown = preview(reader, entry.name, entry.kind)
    context = {
        "title": f"{path} at {rev}",
        "rev": rev,
        "id": at.id,
        "path": path,
        "crumbs": _crumbs(path),
        "entry": entry,
        "chunks": chunks,
        "kind": entry.kind.name.lower(),
        "preview": shown,
    }
    return cx.render("blob.html", context)


# ---------------------------------------------------------------- raw downloads

# Types a browser could run script in are served as plain text; images keep their own type.
_ACTIVE = ("text/html", "application/xhtml+xml", "text/xml", "application/xml", "text/javascript")


def _content_type(name: str) -> str:
    ext = suffix(name)
    if ext in IMAGE_TYPES:
        return IMAGE_TYPES[ext]
    if ext == ".parquet":
        return "application/vnd.apache.parquet"
    guessed = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
    if guessed.startswith(_ACTIVE) or guessed.endswith(("+xml", "javascript")):
        return "text/plain; charset=utf-8"
    if guessed.startswith("text/"):
        return f"{guessed}; charset=utf-8"
    return guessed


def raw(cx: Ctx) -> Response:
    """The file's bytes, verified, streamed one chunk at a time. ``Range: bytes=A-B`` (also
    ``A-`` and ``-N``) gives 206 with ``Content-Range``; a range past the end gives 416.
    ``HEAD`` gives the headers only (length, ``Accept-Ranges``, ``ETag`` = the content id)."""
    at = _locate(cx, "/raw/")
    rev, path, entry = at.rev, at.path, at.entry
    if entry is None or entry.kind == EntryKind.TREE:
        raise Missing(f"{path or '/'!r} is a folder in {rev}, not a file")
    request = cx.request
    etag = f'"{entry.id.hex()}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        "Content-Disposition": (
            f"{'attachment' if request.query_params.get('download') else 'inline'}; "
            f"filename*=UTF-8''{quote(entry.name, safe='')}"
        ),
    }
    media = _content_type(entry.name)
    if etag in _etags(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=headers)
    if_range = request.headers.get("if-range")
    try:
        span = (
            None
            if if_range and if_range != etag
            else parse_range(request.headers.get("range"), entry.size)
        )
    except Unsatisfiable:
        headers["Content-Range"] = f"bytes */{entry.size}"
        return Response(status_code=416, headers=headers)
    start, end = span if span is not None else (0, entry.size)
    headers["Content-Length"] = str(end - start)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{entry.size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media)
    reader = open_reader(cx.repo, entry, path)
    return StreamingResponse(
        stream(reader, start, end),
        status_code=status,
        headers=headers,
        media_type=media,
    )


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {t.strip().removeprefix("W/") for t in header.split(",")}


# ---------------------------------------------------------------- compare


def compare(cx: Ctx) -> Response:
    revs = compare_revs(cx.request)
    if revs is None:
        raise Missing("a comparison is /compare/A...B")
    a, b = revs
    repo = cx.repo
    ida, idb = commit_of(repo, a), commit_of(repo, b)
    summary = summarize(
        repo.store, repo.get_commit(ida).tree, repo.get_commit(idb).tree, count_budget=COUNT_BUDGET
    )
    pg = cx.pager(COMPARE_PAGE, len(summary.listed.changes))
    context = {
        "title": f"Compare {a}...{b}",
        "a": a,
        "b": b,
        "ida": ida,
        "idb": idb,
        "summary": summary,
        "changes": summary.listed.changes[pg.start : pg.end],
        "pg": pg,
    }
    return cx.render("compare.html", context)


def compare_form(cx: Ctx) -> Response:
    """``/compare?a=A&b=B`` (the compare form) redirects to ``/compare/A...B``."""
    q = cx.request.query_params
    a, b = q.get("a", "").strip(), q.get("b", "").strip()
    if a and b:
        return RedirectResponse(cx.u.compare(a, b), status_code=303)
    context = {"title": "Compare", "a": a, "b": b, "summary": None}
    return cx.render("compare.html", context)


def static(request: Request) -> Response:
    item = STATIC.get(str(request.path_params.get("name", "")))
    if item is None:
        return Response("not found", status_code=404, media_type="text/plain")
    body, media = item
    return Response(body, media_type=media, headers={"Cache-Control": "public, max-age=3600"})
