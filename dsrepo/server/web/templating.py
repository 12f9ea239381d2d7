"""The Jinja2 environment (autoescape on for every template), its filters, and page responses.

Every value a page shows goes through Jinja's escaping; the only markup passed through whole is
built here or in ``graph_svg``/``render`` from escaped text. Pages carry a strict Content Security
Policy (no script at all, styles and images from this server only), so markup slipping through
could still not run anything.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dsrepo.objects.ids import ObjectId
from dsrepo.objects.model import Signature
from dsrepo.server.web.render import pygments_css
from dsrepo.server.web.urls import Urls

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def human_size(n: int) -> str:
    """``1.5 MiB``; bytes below 1 KiB as ``123 B``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def when(sig: Signature) -> str:
    """A signature's time in its own zone: ``2026-11-02 14:03:00 +0100``."""
    zone = dt.timezone(dt.timedelta(minutes=sig.tz_minutes))
    stamp = dt.datetime.fromtimestamp(sig.time, zone)
    return f"{stamp:%Y-%m-%d %H:%M:%S} {sig.format_tz()}"


def hexid(oid: ObjectId | bytes) -> str:
    return bytes(oid).hex()


def short(oid: ObjectId | bytes | str) -> str:
    return (oid if isinstance(oid, str) else bytes(oid).hex())[:12]


def subject(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else ""


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def signed(n: int) -> str:
    return ("+" if n >= 0 else "\N{MINUS SIGN}") + human_size(abs(n))


ENV = Environment(
    loader=PackageLoader("dsrepo.server.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(
    size=human_size,
    when=when,
    hexid=hexid,
    short=short,
    subject=subject,
    json=as_json,
    signed=signed,
    num=lambda n: f"{n:,}",
)


def _static() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("dsrepo.server.web").joinpath("static")
    css = folder.joinpath("style.css").read_text("utf-8") + "\n" + pygments_css() + "\n"
    return {
        "style.css": (css.encode(), "text/css; charset=utf-8"),
        "favicon.svg": (folder.joinpath("favicon.svg").read_bytes(), "image/svg+xml"),
    }


STATIC = _static()


@dataclass(frozen=True, slots=True)
class Pager:
    """Page ``page`` (from 1) of ``total`` items, ``per_page`` a page."""

    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max((self.total + self.per_page - 1) // self.per_page, 1)

    @property
    def start(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def end(self) -> int:
        return min(self.start + self.per_page, self.total)


def page_number(request: Request) -> int:
    try:
        return max(int(request.query_params.get("page", "1")), 1)
    except ValueError:
        return 1


def pager(request: Request, per_page: int, total: int) -> Pager:
    p = Pager(page_number(request), per_page, total)
    return Pager(min(p.page, p.pages), per_page, total)


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    started: float | None = None,
) -> HTMLResponse:
    """A page: ``template`` rendered with ``context`` plus ``u`` (link builders), ``request``."""
    u = Urls(str(request.scope.get("root_path") or ""))
    html = ENV.get_template(template).render({**context, "u": u})
    headers = dict(PAGE_HEADERS)
    if started is not None:
        headers["Server-Timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
    return HTMLResponse(html, status_code=status, headers=headers)
