"""The whole workflow through the Python API alone: a script whose only dsrepo import is
``from dsrepo import Repository`` inits, commits, adds a remote, pushes, clones, fetches, pulls
and gets, and checks the typed results and the progress callbacks. It runs in a fresh
interpreter, so nothing else can have been imported for it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from dsrepo.remotes.s3_testserver import TEST_CREDENTIALS, MotoServer

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from dsrepo import Repository

    work, url = Path(sys.argv[1]), sys.argv[2]
    s3 = None
    if url.startswith("s3://"):
        from dsrepo import S3Options

        s3 = S3Options(endpoint_url=sys.argv[3])
    calls = []

    def progress(done, total):  # total 0: not known in advance (add)
        assert 0 <= done and (total == 0 or done <= total), (done, total)
        calls.append((done, total))

    a = Repository.init(work / "a")
    (a.root / "data").mkdir()
    for i in range(20):
        (a.root / "data" / f"f{i}.bin").write_bytes(bytes([i]) * (5000 + i))
    added = a.add(".", progress=progress)
    assert len(added.added) == 20, added
    v1 = a.commit("v1", {"rows": 20})
    assert v1.id.hex() == a.resolve("HEAD").id.hex()
    spec = a.remote_add("origin", url, endpoint_url=s3.endpoint_url if s3 else None)
    assert (spec.name, spec.url) == ("origin", url)
    assert [r.name for r in a.remotes()] == ["origin"]

    pushed = a.push("origin", progress=progress)
    assert pushed.ok and pushed.error() is None
    assert [(u.ref, u.status.value) for u in pushed.updates] == [("refs/heads/main", "ok")]
    assert pushed.upstream_set == "main" and pushed.stats.objects > 20
    assert calls and calls[-1][0] == calls[-1][1]

    calls.clear()
    b = Repository.clone(url, work / "b", s3=s3, progress=progress)
    assert sorted(p.name for p in (b.root / "data").iterdir()) == sorted(
        p.name for p in (a.root / "data").iterdir()
    )
    assert calls and calls[-1][0] == calls[-1][1]

    (b.root / "data" / "f0.bin").write_bytes(b"changed by b")
    b.add("data/f0.bin")
    v2 = b.commit("v2 from b")
    assert b.push().ok

    fetched = a.fetch()
    assert [(u.ref, u.new) for u in fetched.updated] == [("refs/remotes/origin/main", v2.id)]
    assert fetched.stats.objects > 0 and fetched.stats.requests > 0
    pulled = a.pull()
    assert pulled.kind.value == "fast-forward" and pulled.commit == v2.id
    assert (a.root / "data" / "f0.bin").read_bytes() == b"changed by b"

    calls.clear()
    got = Repository.get(url, work / "job", rev="main", s3=s3, progress=progress)
    assert got.commit == v2.id and len(got.written) == 20
    assert (work / "job" / "data" / "f0.bin").read_bytes() == b"changed by b"
    print("ok")
    """
)


def _run(tmp_path: Path, url: str, *extra: str) -> None:
    env = {
        **os.environ,
        **TEST_CREDENTIALS,
        "DSREPO_AUTHOR_NAME": "API",
        "DSREPO_AUTHOR_EMAIL": "api@example.com",
        "DSREPO_CACHE_DIR": str(tmp_path / "cache"),
        "DSREPO_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
    }
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), url, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_the_api_alone_over_a_directory_remote(tmp_path: Path) -> None:
    _run(tmp_path, str(tmp_path / "remote"))


def test_the_api_alone_over_s3(tmp_path: Path, moto_server: MotoServer) -> None:
    bucket = moto_server.create_bucket()
    _run(tmp_path, f"s3://{bucket}/ds", moto_server.endpoint_url)
