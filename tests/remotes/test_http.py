"""The HTTP backend against a live ``dsrepo serve`` application (uvicorn on 127.0.0.1, a real
socket, one server per test): the whole conformance kit, over a store served as a plain key/value
backend (a real server's repository checks refuse the kit's arbitrary keys and values: those
checks are tested in tests/server)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from dsrepo.remotes.base import Backend
from dsrepo.remotes.errors import (
    BackendError,
    InvalidKey,
    KeyConflict,
    KeyNotFound,
    PermanentBackendError,
    TransientBackendError,
)
from dsrepo.remotes.http import (
    AuthenticationFailed,
    HttpBackend,
    PermissionDenied,
    RefUpdateRefused,
    UploadRefused,
    find_token,
)
from dsrepo.remotes.testing import BackendConformance
from dsrepo.server.config import ServeConfig
from tests.server.live import LiveServer


class TestHttpBackend(BackendConformance):
    @pytest.fixture(autouse=True)
    def _server(self, tmp_path: Path) -> Iterator[None]:
        with LiveServer(tmp_path / "served", ServeConfig(plain_store=True), init=True) as server:
            self.server = server
            yield

    def make_backend(self, tmp_path: Path) -> Backend:
        return HttpBackend(self.server.url, self.server.token("write"))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidKey),
        (401, AuthenticationFailed),
        (403, PermissionDenied),
        (404, KeyNotFound),
        (409, RefUpdateRefused),
        (412, KeyConflict),
        (413, PermanentBackendError),
        (422, UploadRefused),
        (429, TransientBackendError),
        (500, TransientBackendError),
        (502, TransientBackendError),
        (503, TransientBackendError),
        (507, PermanentBackendError),
    ],
)
def test_status_codes_map_to_backend_errors(status: int, expected: type[BackendError]) -> None:
    backend = HttpBackend("http://127.0.0.1:1/")
    body = json.dumps({"error": "the reason\nand more", "kind": "x"}).encode()
    err = backend._error(urllib3.HTTPResponse(body=body, status=status), "get 'k'", "k")
    assert type(err) is expected
    assert "\n" not in str(err)
    assert err.transient == (expected is TransientBackendError)
    assert (
        backend._error(urllib3.HTTPResponse(body=b"<html>", status=status), "x").__class__
        is expected
    )


def test_unreachable_server_is_transient_and_one_line() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    backend = HttpBackend(url, connect_timeout=1)
    start = time.monotonic()
    with pytest.raises(TransientBackendError, match="Connection refused") as info:
        backend.get("format")
    assert time.monotonic() - start < 5
    assert "\n" not in str(info.value) and url in str(info.value)


def test_tokens_and_credentials_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    monkeypatch.delenv("DSREPO_TOKEN", raising=False)
    monkeypatch.setenv("DSREPO_CREDENTIALS", str(creds))
    assert find_token("https://data.example.org/cats/") == (None, "")
    creds.write_text(
        "# comment\n"
        "https://data.example.org/ short\n"
        "https://data.example.org/cats longest\n"
        "https://other.example.org/ other\n"
        "malformed line here\n"
    )
    assert find_token("https://data.example.org/cats/") == ("longest", str(creds))
    assert find_token("https://data.example.org/dogs/") == ("short", str(creds))
    assert find_token("https://data.example.org/catsup/") == ("short", str(creds))
    assert find_token("http://data.example.org/") == (None, "")
    monkeypatch.setenv("DSREPO_TOKEN", "from-env")
    assert find_token("https://data.example.org/cats/") == ("from-env", "DSREPO_TOKEN")
