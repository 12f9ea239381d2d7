"""Fixtures for the web view: a repository with branches (one with ``/`` in its name), tags,
an octopus merge, nested metadata, hostile file names and a sharded folder; and the web view's
routes in a minimal Starlette app served by uvicorn on 127.0.0.1 (a free port), in a thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dsrepo import Repository

HOSTILE = "<img src=x onerror=alert(1)> & %2F #?.txt"
"""A file name that is markup, has a percent escape, a fragment and a query mark in it."""
BIG_FOLDER = 5000
"""Files in ``many/``: above the 4096-entry shard threshold, so its tree is sharded."""
START = 1_762_000_000
"""The sample's first version is an hour after this (2025-11-01 12:26:40 UTC)."""
LARGE = 3 * 1024 * 1024 + 12345
"""Size of ``big/large.bin``: several chunks, so it has a manifest."""


def pseudo_random(n: int) -> bytes:
    """``n`` incompressible, reproducible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(counter.to_bytes(8, "little")).digest()
        counter += 1
    return bytes(out[:n])


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid PNG of one colour (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def write(root: Path, rel: str, data: bytes | str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)


@dataclass
class Sample:
    """The sample repository and the ids of its interesting versions."""

    root: Path
    ids: dict[str, str] = field(default_factory=dict)


def build_sample(root: Path) -> Sample:
    """History (oldest first): ``raw`` on main (tag v1, annotated); ``feature/x`` adds a file;
    ``b1``, ``b2``, ``b3`` each change something; an octopus merge of b1 b2 b3 into main (tag
    v2); then ``feature/x`` merged into main (a two-parent merge); then a rename; then
    ``many/`` with :data:`BIG_FOLDER` files (tag ``light``, lightweight)."""
    repo = Repository.init(root)
    out = Sample(root)
    clock = [START]

    def tick() -> None:  # each version an hour after the last (the caller restores the variable)
        clock[0] += 3600
        os.environ["DSREPO_AUTHOR_DATE"] = str(clock[0])

    try:
        write(root, "README.md", "# Cats\n\nA dataset of cats.\n")
        write(root, "labels/train.csv", "id,label,score\n1,cat,0.91\n2,dog,0.42\n3,cat,0.77\n")
        write(root, "images/c01/cat.png", png(32, 24, (200, 120, 40)))
        write(root, "meta/info.json", json.dumps({"classes": ["cat", "dog"], "version": 1}))
        write(root, "data/blob.bin", bytes(range(256)) * 64)
        write(root, "data/empty.txt", b"")
        write(root, f"odd/{HOSTILE}", "hostile name\n")
        write(root, "big/large.bin", pseudo_random(LARGE))
        _parquet(root / "tables" / "t.parquet")
        repo.add(".")
        meta = {
            "source": "camera-1",
            "rows": 1204,
            "split": {"train": 0.8, "eval": {"seed": 7, "frac": 0.2}},
            "owner": "<b>mallory</b>",
            "git": {
                "commit": "0123456789abcdef0123456789abcdef01234567",
                "branch": "main",
                "dirty": False,
            },
        }
        tick()
        out.ids["raw"] = repo.commit("raw images\n\nFirst import from the camera.", meta).id.hex()
        tick()
        repo.tag("v1", message="first release <i>x</i>")
        repo.switch("feature/x", create=True)
        write(root, "labels/extra.csv", "id,label\n9,cat\n")
        repo.add("labels/extra.csv")
        tick()
        out.ids["feature"] = repo.commit("feature: extra labels").id.hex()
        repo.switch("main")
        for n, rel in (("b1", "images/c02/a.png"), ("b2", "labels/eval.csv"), ("b3", "notes.txt")):
            repo.switch(n, create=True)
            write(root, rel, png(8, 8, (0, 0, 255)) if rel.endswith(".png") else f"{n}\n")
            repo.add(rel)
            tick()
            out.ids[n] = repo.commit(f"{n}: add {rel}").id.hex()
            repo.switch("main")
        write(root, "README.md", "# Cats\n\nA dataset of cats, cleaned.\n")
        (root / "data" / "blob.bin").unlink()
        tick()
        out.ids["main2"] = repo.commit("clean README, drop blob", all=True).id.hex()
        tick()
        merged = repo.merge("b1", "b2", "b3", message="octopus: b1 b2 b3")
        assert merged.commit is not None
        out.ids["octopus"] = merged.commit.hex()
        tick()
        repo.tag("v2", message="second release")
        tick()
        merged2 = repo.merge("feature/x", message="merge feature/x")
        assert merged2.commit is not None
        out.ids["merge"] = merged2.commit.hex()
        repo.mv("notes.txt", "docs/notes.txt")
        tick()
        out.ids["renamed"] = repo.commit("move notes", {"rows": 1300}).id.hex()
        for i in range(BIG_FOLDER):
            write(root, f"many/f{i:05d}.txt", f"file {i}\n")
        repo.add("many")
        tick()
        out.ids["bulk"] = repo.commit("bulk: many small files").id.hex()
        tick()
        repo.tag("light")  # a lightweight tag
    finally:
        repo.close()
    return out


def _parquet(path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"id": [1, 2, 3], "name": ["a", "<b>", "c"], "score": [0.5, 1.5, 2.5]})
    pq.write_table(table, path)


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
    base = tmp_path_factory.mktemp("web")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DSREPO_AUTHOR_NAME", "Ada Lovelace")
        mp.setenv("DSREPO_AUTHOR_EMAIL", "ada@example.com")
        mp.setenv("DSREPO_AUTHOR_DATE", str(START))
        mp.setenv("DSREPO_CONFIG_GLOBAL", str(base / "gconfig"))
        yield build_sample(base / "data")


@dataclass
class Served:
    url: str
    sample: Sample
    ranges: list[str] = field(default_factory=list)
    """Every Range header the server was sent, in order."""

    def get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of a request (redirects not followed)."""

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        req = urllib.request.Request(self.url + path, headers=headers or {}, method=method)
        try:
            with opener.open(req, timeout=30) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()

    def page(self, path: str) -> str:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        return body.decode()


@pytest.fixture(scope="session")
def served(sample: Sample) -> Iterator[Served]:
    import uvicorn
    from starlette.applications import Starlette

    from dsrepo.server.web import routes

    repo = Repository.open(sample.root)
    app = Starlette(routes=routes(lambda: repo))
    ranges: list[str] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        """The app, noting each Range header it is sent (to see how clients read files)."""
        if scope["type"] == "http":
            value = dict(scope["headers"]).get(b"range")
            if value is not None:
                ranges.append(value.decode())
        await app(scope, receive, send)

    config = uvicorn.Config(
        recording, host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}", sample, ranges)
    finally:
        server.should_exit = True
        thread.join(10)
        repo.close()
