"""The web view's URL scheme: building links and reading revisions and paths back out of them.

A revision is always **one path segment**, percent-encoded with nothing left safe: ``/`` becomes
``%2F`` (``feature/x`` → ``feature%2Fx``), ``^`` ``%5E``, ``@`` ``%40``; ``~`` and ``.`` stay. The
rest of the URL after it is the path inside the version, each name percent-encoded on its own,
joined by ``/``. A tree name never contains ``/`` or NUL, so the path decodes unambiguously.

ASGI servers hand applications a *decoded* ``path`` (where ``%2F`` and ``/`` look the same), so the
revision is read from ``raw_path`` (the bytes as received). When a server gives no ``raw_path``,
or a proxy decoded the URL on the way, the first segment of the decoded path is taken as the
revision (branch names with ``/`` then need their ids instead).
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlencode

from starlette.requests import Request


def enc_rev(rev: str) -> str:
    """A revision as one URL path segment."""
    return quote(rev, safe="")


def enc_path(path: str) -> str:
    """A path inside a version: every name encoded, joined by ``/``."""
    return "/".join(quote(part, safe="") for part in path.strip("/").split("/")) if path else ""


def _raw_tail(request: Request, prefix: str) -> str | None:
    """What follows ``prefix`` (e.g. ``/tree/``) in the URL as received, still percent-encoded;
    None when the raw path is not available or does not have that shape."""
    raw = request.scope.get("raw_path")
    if not isinstance(raw, bytes | bytearray):
        return None
    text = bytes(raw).decode("utf-8", "replace")
    root = request.scope.get("root_path") or ""
    for start in (quote(root) + prefix, prefix):
        if text.startswith(start):
            return text[len(start) :]
    return None


def rev_and_path(request: Request, prefix: str) -> tuple[str, str]:
    """The revision and the path of a URL ``{prefix}{rev}/{path}``."""
    raw = _raw_tail(request, prefix)
    if raw is not None:
        seg, _, rest = raw.partition("/")
        return unquote(seg), unquote(rest).strip("/")
    decoded = str(request.path_params.get("rest", ""))
    rev, _, path = decoded.partition("/")
    return rev, path.strip("/")


def compare_revs(request: Request) -> tuple[str, str] | None:
    """The two revisions of ``/compare/{a}...{b}``. A ref name never contains ``..`` (nor does an
    id or a ``~N``/``^N`` suffix), so the first ``...`` separates them."""
    raw = _raw_tail(request, "/compare/")
    if raw is None:
        raw = str(request.path_params.get("rest", ""))
    a, sep, b = raw.partition("...")
    if not sep or not a or not b or "/" in a or "/" in b.rstrip("/"):
        return None
    return unquote(a), unquote(b.rstrip("/"))


class Urls:
    """Link builders for templates, under the application's mount point ``base``."""

    def __init__(self, base: str = "") -> None:
        self.base = quote(base.rstrip("/"))

    def home(self) -> str:
        return f"{self.base}/"

    def log(self, rev: str | None = None, page: int = 1) -> str:
        url = f"{self.base}/log" + (f"/{enc_rev(rev)}" if rev else "")
        return url + (f"?page={page}" if page > 1 else "")

    def version(self, rev: str) -> str:
        return f"{self.base}/v/{enc_rev(rev)}"

    def tree(self, rev: str, path: str = "", page: int = 1) -> str:
        p = enc_path(path)
        url = f"{self.base}/tree/{enc_rev(rev)}" + (f"/{p}" if p else "")
        return url + (f"?page={page}" if page > 1 else "")

    def blob(self, rev: str, path: str) -> str:
        return f"{self.base}/blob/{enc_rev(rev)}/{enc_path(path)}"

    def raw(self, rev: str, path: str, download: bool = False) -> str:
        url = f"{self.base}/raw/{enc_rev(rev)}/{enc_path(path)}"
        return url + ("?download=1" if download else "")

    def compare(self, a: str, b: str, page: int = 1) -> str:
        url = f"{self.base}/compare/{enc_rev(a)}...{enc_rev(b)}"
        return url + (f"?page={page}" if page > 1 else "")

    def compare_form(self, a: str = "", b: str = "") -> str:
        params = {k: v for k, v in (("a", a), ("b", b)) if v}
        return f"{self.base}/compare" + (f"?{urlencode(params)}" if params else "")

    def search(self, q: str = "", page: int = 1) -> str:
        params: dict[str, str | int] = {"q": q} if q else {}
        if page > 1:
            params["page"] = page
        return f"{self.base}/search" + (f"?{urlencode(params)}" if params else "")

    def static(self, name: str) -> str:
        return f"{self.base}/static/{quote(name)}"
