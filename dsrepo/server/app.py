"""The ``dsrepo serve`` application: the remote API under ``/api/v1`` and the web view at ``/``,
behind one access check, run by uvicorn.

Access: a request carries a token as ``Authorization: Bearer TOKEN`` (or as the password of HTTP
Basic, so a browser can log in to the web view). GET and HEAD need a read or write token, other
methods a write token. With ``anonymous_read`` reads need no token; a token that is sent must
still be valid. A missing or wrong token is answered 401, a read token writing 403.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dsrepo.errors import DsrepoError
from dsrepo.remotes.directory import DirectoryBackend
from dsrepo.server.config import Layout, ServeConfig, Served, load_config, locate
from dsrepo.server.receive import PlainStore, open_store
from dsrepo.server.remote_api import api_routes, error_response
from dsrepo.server.tokens import TOKENS_FILE, TokenStore

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8465
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _token(scope: Scope) -> str | None:
    """The token a request carries: ``Bearer TOKEN``, or HTTP Basic with the token as password
    (or as user name when the password is empty)."""
    for name, value in scope.get("headers", []):
        if name != b"authorization":
            continue
        kind, _, rest = str(value.decode("latin-1")).strip().partition(" ")
        if kind.lower() == "bearer":
            return rest.strip()
        if kind.lower() == "basic":
            try:
                user, _, password = base64.b64decode(rest.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return ""
            return password or user
        return ""
    return None


class AuthMiddleware:
    """Bearer (or Basic) tokens with read or write scope; anonymous reads when enabled."""

    def __init__(self, app: ASGIApp, tokens: TokenStore, anonymous_read: bool) -> None:
        self.app = app
        self.tokens = tokens
        self.anonymous_read = anonymous_read

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        write = scope["method"] not in READ_METHODS
        token = _token(scope)
        refusal: Response | None = None
        api = str(scope.get("path", "")).startswith("/api/")
        challenge = 'Bearer realm="dsrepo"' if api else 'Basic realm="dsrepo", charset="UTF-8"'
        if token is None:
            if write or not self.anonymous_read:
                what = "writing" if write else "reading"
                refusal = error_response(
                    401, f"{what} needs a token", "auth", **{"WWW-Authenticate": challenge}
                )
        else:
            try:
                info = self.tokens.verify(token)
            except Exception:
                info = None
            if info is None:
                refusal = error_response(
                    401, "invalid or revoked token", "auth", **{"WWW-Authenticate": challenge}
                )
            elif write and not info.can_write:
                refusal = error_response(
                    403, f"token {info.name!r} has read scope; writing needs a write token", "scope"
                )
            else:
                scope["dsrepo.token"] = info.name
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _web_routes(served: Served) -> list[BaseRoute]:
    """The web view for a repository; a bare remote has no working copy to open, so it gets a
    one-line page naming itself."""
    if served.layout == Layout.REPOSITORY:
        from dsrepo.dvcs.repository import Repository
        from dsrepo.server.web import routes

        def open_repo() -> Repository:
            return Repository.open(served.root, search_parents=False)

        return list(routes(open_repo))

    async def about(request: Request) -> Response:
        return PlainTextResponse(f"dsrepo remote {served.root.name}: use it as a remote URL\n")

    return [Route("/", about)]


def create_app(
    repo_root: str | Path,
    config: ServeConfig | None = None,
    *,
    init: bool = False,
    on_startup: Callable[[], None] | None = None,
) -> Starlette:
    """The application serving the repository (or bare remote directory) at ``repo_root``.
    ``config`` defaults to the server's ``config.toml``; ``init`` serves a missing or empty
    folder as a new remote; ``on_startup`` is called once the server is about to serve."""
    served = locate(repo_root, init=init)
    config = config or load_config(served)
    tokens = TokenStore(served.state_dir / TOKENS_FILE)
    store: PlainStore = open_store(served, DirectoryBackend(served.store), config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if on_startup is not None:
            on_startup()
        try:
            yield
        finally:
            store.close()

    routes: list[BaseRoute] = [Mount("/api/v1", routes=api_routes(store, config.max_upload_bytes))]
    if not config.plain_store:
        routes.extend(_web_routes(served))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(AuthMiddleware, tokens=tokens, anonymous_read=config.anonymous_read)
        ],
        lifespan=lifespan,
    )
    app.state.served = served
    app.state.config = config
    app.state.store = store
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio disables Nagle (TCP_NODELAY) only on sockets whose proto
    # says TCP, and without it every response with a body waits for a delayed ACK (~40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(app: ASGIApp, *, log_level: str = "warning", access_log: bool = False) -> Any:
    """A uvicorn server for ``app`` (run it with ``.run(sockets=[bind(...)])``). SIGINT and
    SIGTERM stop it gracefully and ``run`` returns (uvicorn itself would raise the signal again
    after shutting down, so a server stopped on purpose would exit 130 or die of SIGTERM)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            stops = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_keep_alive=30,
        server_header=False,
    )
    return Server(config)


def serve(
    path: str | Path = ".",
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    anonymous_read: bool | None = None,
    init: bool = False,
    access_log: bool = False,
    ready: Callable[[str, Served, ServeConfig], None] | None = None,
) -> None:
    """Serve ``path`` on ``host:port`` until SIGINT or SIGTERM; ``ready(url, served, config)``
    is called once the server is about to serve."""
    served = locate(path, init=init)
    config = load_config(served).with_overrides(anonymous_read=anonymous_read or None)
    TokenStore(served.state_dir / TOKENS_FILE).list()  # a damaged tokens file fails here, clearly
    sock = bind(host, port)

    def started() -> None:  # signal handlers are in place: SIGINT/SIGTERM now stop cleanly
        if ready is not None:
            ready(url_of(sock), served, config)

    try:
        app = create_app(served.root, config, init=init, on_startup=started)
        server = make_server(
            app, log_level="info" if access_log else "warning", access_log=access_log
        )
        server.run(sockets=[sock])
        if not server.started:
            raise DsrepoError(f"the server for {served.root} failed to start (see above)")
    finally:
        sock.close()
