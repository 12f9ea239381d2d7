"""A local S3 for tests and benchmarks: moto's server in a subprocess on a free port.

::

    with MotoServer() as server:
        bucket = server.create_bucket()          # a fresh bucket with a random name
        backend = S3Backend(bucket, client=server.client())

The child serves moto's S3 WSGI app (the one ``python -m moto.server`` serves) with three
changes: it binds port 0 and reports the port it got, so parallel test workers never collide;
it keeps HTTP/1.1 connections alive (werkzeug's development server does not, which made moto
several times slower); and it runs one request at a time. moto checks ``If-None-Match`` and
``If-Match`` and then writes, as two steps, so concurrent requests could both pass the check;
serialized, conditional writes are atomic as on real S3.

Run ``python -m dsrepo.remotes.s3_testserver`` to start one by hand; it prints its address.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import IO, Any

from dsrepo import environment

TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_READY = "dsrepo-moto-listening "


def make_client(endpoint_url: str, config: Any = None) -> Any:
    """A boto3 S3 client for ``endpoint_url`` with dummy credentials (moto accepts any).

    ``config`` is an optional ``botocore.config.Config``; the default is
    :func:`dsrepo.remotes.s3.client_config`.
    """
    import boto3

    from dsrepo.remotes.s3 import client_config

    return boto3.session.Session(
        aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=TEST_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=endpoint_url, config=config or client_config())


class MotoServer:
    """A moto server subprocess on 127.0.0.1; use as a context manager or call start/stop."""

    def __init__(self, startup_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._client: Any = None
        self._client_lock = threading.Lock()

    def client(self) -> Any:
        """A boto3 S3 client for this server, made once and shared (boto3 clients are
        thread-safe; building one takes a fraction of a second). Closed by :meth:`stop`."""
        with self._client_lock:
            if self._client is None:
                self._client = make_client(self.endpoint_url)
            return self._client

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name by default) and return its name."""
        name = name or f"test-{secrets.token_hex(8)}"
        self.client().create_bucket(Bucket=name)
        return name

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("MotoServer is not running")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        if self._proc is not None:
            return self
        env = environment.child_environment(TEST_CREDENTIALS)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dsrepo.remotes.s3_testserver", "--exit-on-stdin-eof"],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            self.port = self._read_port(self._proc)
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self, proc: subprocess.Popen[str]) -> int:
        assert proc.stdout is not None
        found: list[int] = []

        def read() -> None:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.startswith(_READY):
                found.append(int(line[len(_READY) :].split(":")[-1]))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        if not found:
            raise RuntimeError(
                f"moto server did not start within {self.startup_timeout:.0f}s "
                f"(exit code {proc.poll()}): {self._stderr_tail()}"
            )
        return found[0]

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.endpoint_url}/moto-api/"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no env proxies
        while True:
            try:
                with opener.open(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer will do
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto server at {self.endpoint_url} does not answer"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server. Idempotent."""
        proc, self._proc = self._proc, None
        stderr, self._stderr = self._stderr, None
        client, self._client = self._client, None
        if client is not None:
            client.close()
        self.port = None
        if stderr is not None:
            stderr.close()
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _WSGIHandler(BaseHTTPRequestHandler):
    """A minimal HTTP/1.1 front for a WSGI app: persistent connections, no Nagle delay.

    werkzeug's development server closes every connection after one response; with a new TCP
    connection and thread per request, moto answered several times slower.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1  # buffer each response; BaseHTTPRequestHandler flushes it
    app: Callable[[dict[str, Any], Any], Iterable[bytes]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_expect_100(self) -> bool:
        ok = super().handle_expect_100()
        self.wfile.flush()  # botocore waits for "100 Continue" before it sends a body
        return ok

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.connection.getsockname()[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH", "TRANSFER_ENCODING"):
                environ[key] = value
                continue
            key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("TRANSFER_ENCODING", None)
        return environ

    def _handle(self) -> None:
        body = self._read_body()
        response: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            response[:] = [status, headers]
            return None

        data = b"".join(self.app(self._environ(body), start_response))
        status, headers = response
        code = int(status.split(" ", 1)[0])
        self.send_response(code, status.partition(" ")[2])
        has_length = False
        for name, value in headers:
            lower = name.lower()
            if lower in ("connection", "transfer-encoding", "date", "server"):
                continue
            has_length = has_length or lower == "content-length"
            self.send_header(name, value)
        no_body = self.command == "HEAD" or code in (204, 304) or code < 200
        if not has_length and not no_body:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not no_body:
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = _handle


def _serve(argv: list[str]) -> None:
    """Child process: serve moto's S3 on 127.0.0.1, one request at a time.

    With ``--exit-on-stdin-eof`` the server exits when its parent closes our stdin (or dies).
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    # Only S3 is served: skip moto's per-request service detection, which costs milliseconds.
    s3_app = create_backend_app("s3")
    moto_api = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        app = moto_api if path.startswith("/moto-api") else s3_app
        with lock:
            # Build the whole response under the lock; moto computes it eagerly anyway.
            result = app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    handler = type("Handler", (_WSGIHandler,), {"app": staticmethod(serialized)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    port = server.server_address[1]
    environment.set_variable("MOTO_PORT", str(port))
    if "--exit-on-stdin-eof" in argv:

        def watch_parent() -> None:
            sys.stdin.read()
            os._exit(0)

        threading.Thread(target=watch_parent, daemon=True).start()
    print(f"{_READY}127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    _serve(sys.argv[1:])
