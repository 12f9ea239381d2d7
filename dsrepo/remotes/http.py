"""A backend on a ``dsrepo serve`` server: the :class:`Backend` contract over HTTP(S).

The protocol (``/api/v1``, documented in docs/serve.md) is one request per verb::

    GET    keys?prefix=P&start_after=S&limit=N   JSON {"keys": [[key, size, mtime], ...]}
    HEAD   o/KEY                                  200 with Content-Length (and X-Dsrepo-Mtime)
    GET    o/KEY   [Range: bytes=A-B]             200 / 206, 416 past the end, 404
    PUT    o/KEY                                  put (replace)
    PUT    o/KEY   If-None-Match: *               put-if-absent: 201 created, 412 exists
    PUT    o/KEY   If-Match: "BLAKE3(expected)"   compare-and-swap: 204, 412 lost
    DELETE o/KEY   [If-Match / If-None-Match: *]  delete, or compare-and-swap to absent

Errors carry ``{"error": "one line", "kind": ...}``: 400 invalid key, 401 no or wrong token,
403 not allowed, 404 missing, 409 ref update refused (protected ref, incomplete target), 412
precondition failed (a conditional write lost), 413 too large, 422 upload refused (a pack that
fails verification), 5xx and lost connections transient (retried by ``RetryingBackend``).

The bearer token comes from ``DSREPO_TOKEN`` or the credentials file (``URL TOKEN`` lines,
the longest URL prefix wins), never from a repository's config. Connections are pooled and the
pool is made anew in a forked child (sockets are not shared across processes).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any, cast
from urllib.parse import quote, urlencode

import urllib3
from blake3 import blake3

from dsrepo import environment
from dsrepo.remotes.base import Backend, Capabilities, KeyInfo
from dsrepo.remotes.errors import (
    BackendError,
    InvalidKey,
    KeyConflict,
    KeyNotFound,
    PermanentBackendError,
    TransientBackendError,
)
from dsrepo.remotes.keys import validate_key, validate_prefix

API = "api/v1/"
MTIME = "X-Dsrepo-Mtime"
PAGE = 1000
"""The most keys the server lists per request."""


class AuthenticationFailed(PermanentBackendError):
    """The server wants a token (none was found) or refused the one sent (HTTP 401)."""


class PermissionDenied(PermanentBackendError):
    """The token is valid but does not allow this (HTTP 403): a read token writing, or a key
    the server manages itself."""


class RefUpdateRefused(PermanentBackendError):
    """The server refused to move a ref (HTTP 409): a protected tag or branch, or a target
    whose objects are not all on the server."""

    exit_code = 5


class UploadRefused(PermanentBackendError):
    """The server refused an upload (HTTP 422): a pack that fails verification against its
    index, an index without its pack, a malformed value."""

    exit_code = 7


def etag(value: bytes) -> str:
    """The precondition naming a value: its BLAKE3, quoted (an HTTP entity tag)."""
    return f'"{blake3(value).hexdigest()}"'


def find_token(url: str) -> tuple[str | None, str]:
    """(token, where it came from) for ``url``: ``DSREPO_TOKEN``, else the credentials file's
    line whose URL is the longest prefix of ``url``; (None, "") when neither has one."""
    token = environment.token()
    if token:
        return token, "DSREPO_TOKEN"
    path = environment.credentials_path()
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None, ""
    want = url.rstrip("/") + "/"
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        words = line.split()
        if len(words) != 2 or words[0].startswith("#"):
            continue
        prefix = words[0].rstrip("/") + "/"
        if want.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), words[1])
    return (best[1], str(path)) if best else (None, "")


def _reason(exc: BaseException) -> str:
    """The most specific one-line reason in an exception chain (an OSError's strerror)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        nxt = getattr(current, "reason", None)
        current = (
            nxt if isinstance(nxt, BaseException) else current.__cause__ or current.__context__
        )
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class HttpBackend(Backend):
    """The backend served at ``url`` (``http://HOST:PORT/`` or ``https://...``)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        token_source: str = "",
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
        connections: int = 32,
    ) -> None:
        self.url = url.rstrip("/") + "/"
        self.token = token
        self.token_source = token_source
        self.capabilities = Capabilities(conditional_writes=True, range_reads=True)
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._connections = connections
        self._lock = threading.Lock()
        self._pool: urllib3.PoolManager | None = None
        self._pid = 0

    # ------------------------------------------------------------ transport

    def _http(self) -> urllib3.PoolManager:
        pid = os.getpid()
        with self._lock:
            if self._pool is None or self._pid != pid:  # new, or inherited through fork
                self._pool = urllib3.PoolManager(
                    num_pools=4, maxsize=self._connections, block=True, retries=False
                )
                self._pid = pid
            return self._pool

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | Iterator[bytes] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        hdrs = dict(headers or {})
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        try:
            return self._http().request(
                method,
                self.url + API + path,
                headers=hdrs,
                body=body,
                redirect=False,
                retries=False,
                timeout=self._timeout,
            )
        except urllib3.exceptions.SSLError as exc:
            raise PermanentBackendError(
                f"{what} at {self.url}: TLS error: {_reason(exc)}"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise TransientBackendError(f"{what} at {self.url} failed: {_reason(exc)}") from None

    def _error(self, resp: urllib3.BaseHTTPResponse, what: str, key: str = "") -> BackendError:
        status = resp.status
        message = ""
        try:
            payload = json.loads(resp.data or b"{}")
            if isinstance(payload, dict):
                message = str(payload.get("error", ""))
        except ValueError:
            pass
        message = message.splitlines()[0] if message else f"HTTP {status} {resp.reason or ''}"
        if status == 401:
            if self.token:
                return AuthenticationFailed(
                    f"authentication failed for {self.url}: the server refused the token from "
                    f"{self.token_source or 'the caller'}"
                )
            return AuthenticationFailed(
                f"authentication failed for {self.url}: set DSREPO_TOKEN or add a token to "
                f"{_credentials_hint()}"
            )
        if status == 403:
            return PermissionDenied(f"{what} at {self.url}: permission denied: {message}")
        if status == 400:
            return InvalidKey(message)
        if status == 404:
            return KeyNotFound(f"key {key!r} not found at {self.url}")
        if status == 409:
            return RefUpdateRefused(f"{self.url} refused {what}: {message}")
        if status == 412:
            return KeyConflict(f"{what} at {self.url} lost: {message}")
        if status == 422:
            return UploadRefused(f"{self.url} refused {what}: {message}")
        if status == 429 or (status >= 500 and status not in (501, 505, 507)):
            return TransientBackendError(f"{what} at {self.url} failed: {message}")
        return PermanentBackendError(f"{what} at {self.url} failed: {message}")

    @staticmethod
    def _object(key: str) -> str:
        return "o/" + quote(validate_key(key), safe="/")

    # ------------------------------------------------------------ the Backend verbs

    def stat(self, key: str) -> KeyInfo:
        resp = self._request("HEAD", self._object(key), f"stat {key!r}")
        if resp.status != 200:
            raise self._error(resp, f"stat {key!r}", key)
        return KeyInfo(
            key, int(resp.headers.get("Content-Length", "0")), _mtime(resp.headers.get(MTIME))
        )

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._object(key)
        if length == 0:
            self.stat(key)
            return b""
        headers: dict[str, str] = {}
        ranged = offset > 0 or length is not None
        if ranged:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        resp = self._request("GET", path, f"get {key!r}", headers=headers)
        if resp.status == 206:
            return bytes(resp.data)
        if resp.status == 200:
            data = bytes(resp.data)
            if not ranged:
                return data
            # a proxy that dropped the Range header: cut the range here
            return data[offset:] if length is None else data[offset : offset + length]
        if resp.status == 416:
            return b""
        raise self._error(resp, f"get {key!r}", key)

    def _put(
        self, key: str, parts: Sequence[bytes | memoryview], headers: dict[str, str], what: str
    ) -> urllib3.BaseHTTPResponse:
        """PUT the concatenation of ``parts``, streamed piece by piece (no joined copy)."""
        views = [memoryview(p).cast("B") for p in parts]
        size = sum(v.nbytes for v in views)
        # memoryviews go to the socket as they are (typed as bytes: urllib3 accepts any buffer)
        body: bytes | Iterator[bytes] = (
            cast(Iterator[bytes], (v for v in views if v.nbytes)) if size else b""
        )
        return self._request(
            "PUT",
            self._object(key),
            what,
            headers={**headers, "Content-Length": str(size)},
            body=body,
        )

    def put(self, key: str, data: bytes) -> None:
        resp = self._put(key, [data], {}, f"put {key!r}")
        if resp.status not in (200, 201, 204):
            raise self._error(resp, f"put {key!r}", key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.put_parts_if_absent(key, [data])

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        resp = self._put(key, parts, {"If-None-Match": "*"}, f"put {key!r}")
        if resp.status in (200, 201, 204):
            return True
        if resp.status == 412:
            return False
        raise self._error(resp, f"put {key!r}", key)

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        validate_prefix(prefix)
        out: list[KeyInfo] = []
        after = start_after
        while len(out) < limit:
            want = min(PAGE, limit - len(out))
            query: dict[str, Any] = {"prefix": prefix, "limit": want}
            if after is not None:
                query["start_after"] = after
            resp = self._request("GET", "keys?" + urlencode(query), f"list {prefix!r}")
            if resp.status != 200:
                raise self._error(resp, f"list {prefix!r}")
            try:
                page = [
                    KeyInfo(str(item[0]), int(item[1]), _mtime(item[2] if len(item) > 2 else None))
                    for item in json.loads(resp.data)["keys"]
                ]
            except (ValueError, KeyError, TypeError):
                raise TransientBackendError(
                    f"list {prefix!r} at {self.url}: malformed answer"
                ) from None
            out.extend(page)
            if len(page) < want:
                break
            after = page[-1].key
        return out

    def delete(self, key: str) -> None:
        resp = self._request("DELETE", self._object(key), f"delete {key!r}")
        if resp.status not in (200, 204, 404):
            raise self._error(resp, f"delete {key!r}", key)

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        condition = {"If-None-Match": "*"} if expected is None else {"If-Match": etag(expected)}
        what = f"update of {key!r}"
        if new is None:
            resp = self._request("DELETE", self._object(key), what, headers=condition)
        else:
            resp = self._put(key, [new], condition, what)
        if resp.status not in (200, 201, 204):
            raise self._error(resp, what, key)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.clear()

    def describe(self) -> str:
        return self.url


def _mtime(value: object) -> float | None:
    try:
        return None if value is None else float(str(value))
    except ValueError:
        return None


def _credentials_hint() -> str:
    path = str(environment.credentials_path())
    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if path.startswith(home + os.sep) else path
