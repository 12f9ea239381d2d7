"""The remote API (``/api/v1``): the backend contract over HTTP, as
:class:`dsrepo.remotes.http.HttpBackend` speaks it (the protocol is in that module's docstring and
in docs/serve.md). Access was decided by the auth middleware before a request gets here; each
verb runs on a worker thread (the store does blocking file I/O) and every error becomes a JSON
body ``{"error": "one line", "kind": ...}`` with its status.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dsrepo.errors import DsrepoError
from dsrepo.remotes.errors import (
    BackendError,
    InvalidKey,
    KeyConflict,
    KeyNotFound,
    PermanentBackendError,
)
from dsrepo.server.receive import Forbidden, PlainStore, RefRefused, UploadInvalid

T = TypeVar("T")
MAX_LIST = 1000
MTIME_HEADER = "X-Dsrepo-Mtime"
"""A HEAD answer's modification time: seconds since the epoch, by the server's clock."""
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
_NO_STORE = {"Cache-Control": "no-store"}


def error_response(status: int, message: str, kind: str, **headers: str) -> JSONResponse:
    line = message.splitlines()[0] if message else kind
    return JSONResponse(
        {"error": line, "kind": kind}, status_code=status, headers={**_NO_STORE, **headers}
    )


class _TooLarge(Exception):
    pass


def _status(exc: DsrepoError) -> tuple[int, str]:
    if isinstance(exc, InvalidKey):
        return 400, "invalid-key"
    if isinstance(exc, Forbidden):
        return 403, "forbidden"
    if isinstance(exc, KeyNotFound):
        return 404, "not-found"
    if isinstance(exc, RefRefused):
        return 409, "refused"
    if isinstance(exc, KeyConflict):
        return 412, "conflict"
    if isinstance(exc, UploadInvalid):
        return 422, "invalid"
    if isinstance(exc, PermanentBackendError):
        return 507, "storage"
    if isinstance(exc, BackendError) and not exc.transient:
        return 500, "storage"
    return 503, "unavailable"


async def _run(fn: Callable[[], T]) -> T | Response:
    try:
        return await run_in_threadpool(fn)
    except DsrepoError as exc:
        status, kind = _status(exc)
        return error_response(status, str(exc), kind)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _tag(header: str) -> str:
    """``"hex"`` (or ``W/"hex"``) → ``hex``."""
    value = header.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def api_routes(store: PlainStore, max_upload: int) -> list[BaseRoute]:
    """The routes of ``/api/v1`` over ``store``."""

    async def list_keys(request: Request) -> Response:
        q = request.query_params
        limit_text = q.get("limit", str(MAX_LIST))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIST:
            return error_response(400, f"limit must be 1 to {MAX_LIST}", "bad-request")
        prefix, after, limit = q.get("prefix", ""), q.get("start_after"), int(limit_text)
        result = await _run(lambda: store.list(prefix, after, limit))
        if isinstance(result, Response):
            return result
        return JSONResponse({"keys": [[i.key, i.size, i.mtime] for i in result]}, headers=_NO_STORE)

    async def read(request: Request, key: str) -> Response:
        if request.method == "HEAD":
            info = await _run(lambda: store.stat(key))
            if isinstance(info, Response):
                return info
            headers = {"Content-Length": str(info.size), **_NO_STORE}
            if info.mtime is not None:
                headers[MTIME_HEADER] = repr(info.mtime)
            return Response(headers=headers)
        m = _RANGE.fullmatch(request.headers.get("range", "").strip())
        if m is None:
            data = await _run(lambda: store.get(key))
            if isinstance(data, Response):
                return data
            return Response(data, headers=_NO_STORE, media_type="application/octet-stream")
        start = int(m.group(1))
        length = int(m.group(2)) - start + 1 if m.group(2) else None
        if length is not None and length <= 0:
            return error_response(400, "invalid range", "bad-request")
        data = await _run(lambda: store.get(key, start, length))
        if isinstance(data, Response):
            return data
        if not data:
            return Response(status_code=416, headers={"Content-Range": "bytes */*", **_NO_STORE})
        end = start + len(data) - 1
        return Response(
            data,
            status_code=206,
            headers={"Content-Range": f"bytes {start}-{end}/*", **_NO_STORE},
            media_type="application/octet-stream",
        )

    async def write(request: Request, key: str) -> Response:
        if_match = request.headers.get("if-match")
        if_none_match = request.headers.get("if-none-match", "").strip()
        if request.method == "DELETE":
            if if_match is not None:
                tag = _tag(if_match)
                done: Any = await _run(lambda: store.swap(key, tag, None))
            elif if_none_match == "*":
                done = await _run(lambda: store.swap(key, None, None))
            else:
                done = await _run(lambda: store.delete(key))
            return done if isinstance(done, Response) else Response(status_code=204)
        try:
            data = await _body(request, max_upload)
        except _TooLarge:
            return error_response(
                413, f"upload larger than the server's limit ({max_upload} bytes)", "too-large"
            )
        if if_match is not None:
            tag = _tag(if_match)
            done = await _run(lambda: store.swap(key, tag, data))
        elif if_none_match == "*":
            created = await _run(lambda: store.put_if_absent(key, data))
            if isinstance(created, Response):
                return created
            if not created:
                return error_response(412, f"{key!r} already exists", "exists")
            return Response(status_code=201)
        elif if_none_match:
            return error_response(400, "If-None-Match accepts only '*'", "bad-request")
        else:
            done = await _run(lambda: store.put(key, data))
        return done if isinstance(done, Response) else Response(status_code=204)

    async def obj(request: Request) -> Response:
        key = str(request.path_params["key"])
        if request.method in ("GET", "HEAD"):
            return await read(request, key)
        return await write(request, key)

    handler: Callable[[Request], Awaitable[Response]] = obj
    return [
        Route("/keys", list_keys, methods=["GET"]),
        Route("/o/{key:path}", handler, methods=["GET", "HEAD", "PUT", "DELETE"]),
    ]
