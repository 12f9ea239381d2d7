"""Render times of the web view's pages on a generated repository (a script, not a test).

    .venv/bin/python benchmarks/web_pages.py WORKDIR [--files 30000] [--repeat 5]

Builds (through the object store, without a working copy: seconds, not minutes) a repository of
``--files`` small files: half in one flat folder (a sharded tree), half spread over 100 folders of
a nested layout; then four more versions, each rewriting 1% of the files, removing 0.5% and adding
0.5%, and a two-parent merge. Serves the web view with uvicorn on 127.0.0.1 and prints, for each
page, the first (cold: empty object cache) and the median of ``--repeat`` later request times,
measured by the client, and the median with the web view's own caches (change summaries, file
counts) emptied before each request. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsrepo import Repository
from dsrepo.dvcs.commits import write_tree
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Commit, Signature, TreeEntry


def build(root: Path, n: int) -> Repository:
    repo = Repository.init(root)
    store = repo.store
    rng = random.Random(7)
    files: dict[str, TreeEntry] = {}

    def put(path: str, data: bytes) -> None:
        ref = store.write_bytes(data)
        files[path] = TreeEntry(path.rsplit("/", 1)[-1], EntryKind.FILE, ref.size, ref.content_id)

    for i in range(n // 2):
        put(f"flat/img{i:07d}.jpg", f"image {i} ".encode() * rng.randint(1, 40))
    for i in range(n - n // 2):
        put(f"nested/p{i % 10}/q{i % 100:02d}/r{i:07d}.txt", f"row {i}\n".encode() * 8)
    put("labels.csv", b"id,label\n" + b"".join(f"{i},cat\n".encode() for i in range(5000)))
    put("meta.json", b'{"source": "bench", "rows": %d}' % n)
    t = 1_762_000_000
    parents: tuple = ()
    heads = []
    for v in range(5):
        t += 3600
        sig = Signature("Bench", "bench@example.com", t)
        if v:
            paths = sorted(files)
            for p in rng.sample(paths, len(paths) // 100):
                put(p, f"v{v} {p}".encode())
            for p in rng.sample(paths, len(paths) // 200):
                files.pop(p, None)
            for i in range(n // 200):
                put(f"flat/new{v}-{i:06d}.jpg", f"new {v} {i}".encode())
        tree = write_tree(store, files)
        cid = store.put(
            Commit(tree, parents, sig, sig, f"version {v}\n", {"v": v, "files": len(files)})
        )
        parents = (cid,)
        heads.append(cid)
    side = store.put(
        Commit(store.get_commit(heads[3]).tree, (heads[2],), sig, sig, "side\n", {"side": True})
    )
    merge = store.put(
        Commit(store.get_commit(heads[4]).tree, (heads[4], side), sig, sig, "merge side\n", {})
    )
    store.flush()
    repo.refs.update("refs/heads/main", merge, None, who=sig, message="bench")
    repo.refs.update("refs/heads/side", side, None, who=sig, message="bench")
    repo.refs.update("refs/tags/v1", heads[0], None, who=sig, message="bench")
    return repo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--files", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    root = args.workdir / f"web-{args.files}"
    t0 = time.perf_counter()
    if not (root / ".dsrepo").exists():
        build(root, args.files).close()
    print(f"repository: {root} ({args.files:,} files), ready in {time.perf_counter() - t0:.1f} s")

    import uvicorn
    from starlette.applications import Starlette

    from dsrepo.server.web import routes

    repo = Repository.open(root)
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=routes(lambda: repo)), host="127.0.0.1", port=0, log_level="warning"
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    v0 = repo.resolve("main~5").id.hex()
    pages = [
        ("home", "/"),
        ("history", "/log"),
        ("version (merge)", "/v/main"),
        ("version (first: all files added)", f"/v/{v0}"),
        ("folder: root", "/tree/main"),
        (f"folder: flat ({args.files // 2:,} entries), page 1", "/tree/main/flat"),
        ("folder: flat, last page", "/tree/main/flat?page=999999"),
        ("file in the flat folder", "/blob/main/flat/img0001234.jpg"),
        ("CSV preview", "/blob/main/labels.csv"),
        ("raw, range in the flat folder", "/raw/main/flat/img0001234.jpg"),
        ("compare v1...main", "/compare/v1...main"),
        ("search key=value", "/search?q=v%3D3"),
    ]
    from dsrepo.server.web import changes, trees

    def forget() -> None:
        """Empty the web view's own caches (summaries, file counts), not the object cache."""
        changes._RECENT._items.clear()
        trees._MEMO._counts.clear()

    def get(path: str) -> float:
        req = urllib.request.Request(base + path, headers={"Range": "bytes=0-99"})
        start = time.perf_counter()
        with urllib.request.urlopen(req, timeout=600) as resp:
            resp.read()
        return (time.perf_counter() - start) * 1000

    print(
        "cold: the first request (nothing decoded yet); warm: median of later ones; "
        "recomputed: median with the web view's summary and count caches emptied"
    )
    print(f"{'page':44} {'cold ms':>8} {'warm ms':>8} {'recomputed ms':>14}")
    for name, path in pages:
        cold = get(path)
        warm = statistics.median(get(path) for _ in range(args.repeat))
        again = []
        for _ in range(args.repeat):
            forget()
            again.append(get(path))
        print(f"{name:44} {cold:8.1f} {warm:8.1f} {statistics.median(again):14.1f}")
    server.should_exit = True
    repo.close()


if __name__ == "__main__":
    main()
