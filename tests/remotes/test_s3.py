"""The S3 backend against a real moto server over a socket (see conftest.moto_server)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from dsrepo.remotes.base import Backend
from dsrepo.remotes.errors import BackendError, PermanentBackendError, TransientBackendError
from dsrepo.remotes.s3 import S3Backend, client_config, probe_conditional_writes
from dsrepo.remotes.s3_testserver import MotoServer, make_client
from dsrepo.remotes.testing import BackendConformance


class TestS3Backend(BackendConformance):
    @pytest.fixture(autouse=True)
    def _server(self, moto_server: MotoServer) -> None:
        self.server = moto_server

    def make_backend(self, tmp_path: Path) -> Backend:
        bucket = self.server.create_bucket()
        return S3Backend(bucket, "some/prefix", client=self.server.client())


@pytest.fixture
def s3(moto_server: MotoServer) -> S3Backend:
    return S3Backend(moto_server.create_bucket(), "pre", client=moto_server.client())


def test_describe_and_prefix(s3: S3Backend) -> None:
    assert s3.describe() == f"s3://{s3.bucket}/pre"
    s3.put("a/b", b"x")
    raw = s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]
    assert [o["Key"] for o in raw] == ["pre/a/b"]
    s3.client.put_object(Bucket=s3.bucket, Key="pre/folder/", Body=b"")  # console-style marker
    s3.client.put_object(Bucket=s3.bucket, Key="other", Body=b"")
    assert [i.key for i in s3.list()] == ["a/b"]


def test_missing_bucket(moto_server: MotoServer) -> None:
    backend = S3Backend("no-such-bucket-here", client=moto_server.client())
    for call in (
        lambda: backend.get("k"),
        lambda: backend.stat("k"),
        lambda: backend.put("k", b"v"),
        lambda: backend.put_if_absent("k", b"v"),
        lambda: backend.list(),
        lambda: backend.compare_and_swap("k", b"a", b"b"),
    ):
        with pytest.raises(PermanentBackendError, match="'no-such-bucket-here' does not exist"):
            call()


def test_unreachable_endpoint_fails_fast() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = make_client(url, client_config(connect_timeout=1, read_timeout=1, max_attempts=1))
    backend = S3Backend("bucket", client=client)
    start = time.monotonic()
    with pytest.raises(TransientBackendError, match="'k'") as info:
        backend.get("k")
    assert time.monotonic() - start < 5
    assert "\n" not in str(info.value)
    client.close()


def test_missing_credentials(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    backend = S3Backend("bucket", endpoint_url=moto_server.endpoint_url, region="us-east-1")
    with pytest.raises(PermanentBackendError, match="AWS_ACCESS_KEY_ID"):
        backend.get("k")
    backend.close()


def test_unknown_profile() -> None:
    with pytest.raises(PermanentBackendError, match="no-such-profile"):
        S3Backend("bucket", profile="no-such-profile")


def test_probe_conditional_writes(s3: S3Backend) -> None:
    assert probe_conditional_writes(s3) is True
    assert s3.list("probe/") == []


def test_multipart_put(s3: S3Backend) -> None:
    s3.multipart_threshold = 6 * 1024 * 1024
    s3.part_size = 5 * 1024 * 1024
    data = bytes(range(256)) * (11 * 1024 * 1024 // 256 + 3)
    s3.put("big", data)
    assert s3.get("big") == data
    assert s3.get("big", 5 * 1024 * 1024 - 2, 4) == data[5 * 1024 * 1024 - 2 : 5 * 1024 * 1024 + 2]
    head = s3.client.head_object(Bucket=s3.bucket, Key="pre/big")
    assert head["ETag"].endswith('-3"')  # three parts
    uploads = s3.client.list_multipart_uploads(Bucket=s3.bucket)
    assert not uploads.get("Uploads")


def test_failed_multipart_is_aborted(s3: S3Backend) -> None:
    s3.multipart_threshold = 6 * 1024 * 1024
    s3.part_size = 1024 * 1024  # below S3's 5 MiB minimum: completing the upload fails
    with pytest.raises(BackendError):
        s3.put("big", b"x" * (7 * 1024 * 1024))
    assert not s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads")
    assert s3.list() == []
