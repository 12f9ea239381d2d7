"""``dsrepo serve`` and ``dsrepo serve token`` as commands: the real server process started and
stopped, one-line errors, tokens printed once and stored hashed; the client over HTTPS (TLS with
a private certificate authority, trusted through SSL_CERT_FILE); the client after a fork."""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.remotes.http import HttpBackend
from dsrepo.server.app import bind, create_app
from tests.cli.conftest import Cli, assert_one_error_line
from tests.server.conftest import Serve, commit_file
from tests.server.live import ServeProcess, dsrepo_executable


def test_token_commands(cli: Cli, tmp_path: Path) -> None:
    cli("init", "-q", str(tmp_path / "repo"))
    r = cli("serve", "token", "create", "--scope", "read", "--name", "ci", str(tmp_path / "repo"))
    token = r.out.strip()
    assert token.startswith("dsr_") and len(r.out.splitlines()) == 1
    assert "not shown again" in r.err
    stored = tmp_path / "repo" / ".dsrepo" / "serve" / "tokens.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    text = stored.read_text()
    assert token.rsplit("_", 1)[1] not in text and json.loads(text)["tokens"][0]["name"] == "ci"
    listed = cli("serve", "token", "list", str(tmp_path / "repo")).out
    assert listed.startswith("ci\tread\t") and token[4:16] in listed
    r = cli.run(
        "serve", "token", "create", "--scope", "read", "--name", "ci", str(tmp_path / "repo")
    )
    assert r.code == 1 and "already exists" in r.err, r
    assert cli.run("serve", "token", "create", "--scope", "admin", str(tmp_path / "repo")).code == 2
    r = cli.run("serve", "token", "revoke", "nobody", str(tmp_path / "repo"))
    assert_one_error_line(r)
    assert (
        cli("serve", "token", "revoke", "ci", str(tmp_path / "repo")).out
        == "revoked read token 'ci'\n"
    )
    assert cli("serve", "token", "list", str(tmp_path / "repo")).out == ""


def test_serve_refuses_what_it_cannot_serve(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hi")
    r = cli.run("serve", str(tmp_path / "plain"))
    assert r.code == 3, r
    assert_one_error_line(r)
    r = cli.run("serve", "--init", str(tmp_path / "plain"))
    assert r.code == 3 and "holds other files" in r.err, r
    cli("init", "-q", str(tmp_path / "repo"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        r = cli.run("serve", "--port", port, str(tmp_path / "repo"))
    assert r.code == 1, r
    assert_one_error_line(r)
    assert "cannot listen on 127.0.0.1" in r.err


def test_the_real_server_process(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    origin = tmp_path / "origin"
    cli("init", "-q", str(origin))
    commit_file(cli, origin, "a.txt", "alpha\n", "first")
    token = cli("serve", "token", "create", "--scope", "read", str(origin)).out.strip()
    with ServeProcess(origin, "--access-log") as server:
        monkeypatch.setenv("DSREPO_TOKEN", token)
        cli("clone", "-q", server.url, str(tmp_path / "copy"))
        assert (tmp_path / "copy" / "a.txt").read_text() == "alpha\n"
        started = time.monotonic()
    assert time.monotonic() - started < 20
    assert server.proc.returncode == 0
    # SIGTERM stops it as well
    proc = subprocess.Popen(
        [dsrepo_executable(), "serve", "--port", "0", str(origin)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and "http://127.0.0.1:" in proc.stdout.readline()
    proc.terminate()
    assert proc.wait(timeout=20) == 0


def test_https_with_a_private_authority(
    cli: Cli, serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a TLS proxy gives the client: https:// with certificate verification."""
    cert, key = _self_signed(tmp_path)
    plain = serve()
    token = plain.token("write")
    app = create_app(plain.root)
    import uvicorn

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", ssl_certfile=str(cert), ssl_keyfile=str(key))
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the TLS server did not start"
            time.sleep(0.01)
        url = f"https://localhost:{port}/"
        monkeypatch.setenv("DSREPO_TOKEN", token)
        work = tmp_path / "w"
        cli("init", "-q", str(work))
        commit_file(cli, work, "a.txt", "secret data\n", "first")
        os.chdir(work)
        r = cli.run("push", url, "main")  # the authority is not trusted yet
        assert r.code == 8 and "TLS error" in r.err, r
        assert_one_error_line(r)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        cli("push", url, "main")
        with Repository.clone(url, tmp_path / "copy") as copy:
            assert (copy.root / "a.txt").read_text() == "secret data\n"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    return cert_path, key_path


def test_client_is_fork_safe(serve: Serve) -> None:
    server = serve()
    backend = HttpBackend(server.url, server.token("read"))
    assert backend.list() == []  # a pooled connection now exists
    pid = os.fork()
    if pid == 0:  # the child must open its own connections, not share the parent's socket
        try:
            code = 0 if backend.list() == [] and backend._pid == os.getpid() else 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.list() == []
    backend.close()


def test_config_toml(cli: Cli, tmp_path: Path) -> None:
    from dsrepo.server.config import load_config, locate

    cli("init", "-q", str(tmp_path / "repo"))
    served = locate(tmp_path / "repo")
    served.state_dir.mkdir()
    (served.state_dir / "config.toml").write_text(
        'anonymous_read = true\nfast_forward_only = ["main", "release/*"]\nprotected_tags = []\n'
        "max_upload_mib = 64\n"
    )
    config = load_config(served)
    assert config.anonymous_read and config.max_upload_bytes == 64 << 20
    assert config.is_fast_forward_only("release/2") and not config.is_fast_forward_only("dev")
    assert not config.is_protected_tag("v1")
    (served.state_dir / "config.toml").write_text("fast_forward_only = 'main'\n")
    r = cli.run("serve", "--port", "0", str(tmp_path / "repo"))
    assert r.code == 2 and "must be a list of patterns" in r.err, r
    assert_one_error_line(r)
    (served.state_dir / "config.toml").write_text("anonymous_reads = true\n")
    r = cli.run("serve", "--port", "0", str(tmp_path / "repo"))
    assert r.code == 2 and "unknown setting 'anonymous_reads'" in r.err, r
