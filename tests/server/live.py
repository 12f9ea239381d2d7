"""A ``dsrepo serve`` application on 127.0.0.1, port 0, over real sockets: uvicorn in a thread
(:class:`LiveServer`) or the real ``dsrepo serve`` in a subprocess (:class:`ServeProcess`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from dsrepo.server.app import bind, create_app, make_server, url_of
from dsrepo.server.config import ServeConfig
from dsrepo.server.tokens import TokenStore


class LiveServer:
    """``create_app(root, config)`` served by uvicorn on a thread; ``url`` once started."""

    def __init__(
        self,
        root: Path,
        config: ServeConfig | None = None,
        *,
        init: bool = False,
        wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    ):
        self.app = create_app(root, config, init=init)
        self.root = root
        self.sock = bind("127.0.0.1", 0)
        self.url = url_of(self.sock)
        self.server: Any = make_server(wrap(self.app) if wrap else self.app)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def tokens(self) -> TokenStore:
        return TokenStore(self.app.state.served.state_dir / "tokens.json")

    def token(self, scope: str = "write", name: str | None = None) -> str:
        return self.tokens.create(scope, name)[0]

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


def dsrepo_executable() -> str:
    return str(Path(sys.executable).with_name("dsrepo"))


class ServeProcess:
    """``dsrepo serve ROOT --port 0 ...`` as a child process; ``url`` read from its first line."""

    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [dsrepo_executable(), "serve", str(root), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "http://" not in line:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise RuntimeError(f"dsrepo serve did not start: {line!r} {err!r}")
        self.url = line[line.index("http://") :].split()[0]

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
