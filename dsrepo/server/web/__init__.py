"""The read-only web view of a repository: server-rendered pages (placeholder until built)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


def routes(open_repo: Callable[[], Repository]) -> list[Any]:
    """The web view's starlette routes; ``open_repo`` gives a read-only Repository per request."""
    return []
