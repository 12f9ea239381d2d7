"""Fallback copy of the shared peer workload generator.

``gen`` and ``mutate`` are copied from ``/work/shared/bench/peer_bench.py`` (the side-by-side
benchmark of git, git-lfs, DVC and Oxen), reformatted only, so ``benchmarks/run.py`` works where
``../shared`` is absent. ``run.py`` prefers the shared original when it exists; keep the two
byte-for-byte equivalent in behaviour (same seeds, same order of random draws) so the numbers of
both benchmarks describe the same data.
"""

from __future__ import annotations

import os
import random


def gen(root: str, n_small: int, big_mib: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    for i in range(n_small):
        d = os.path.join(root, "images", f"c{i % 50:02d}")
        os.makedirs(d, exist_ok=True)
        size = rnd.randint(4096, 60000)
        with open(os.path.join(d, f"img{i:06d}.bin"), "wb") as f:
            f.write(rnd.randbytes(size))
    os.makedirs(os.path.join(root, "tables"), exist_ok=True)
    for j in range(2):
        with open(os.path.join(root, "tables", f"big{j}.bin"), "wb") as f:
            for _ in range(big_mib):
                f.write(rnd.randbytes(1 << 20))


def mutate(root: str, seed: int = 11) -> None:
    """1% of small files rewritten, 1% added, 1% deleted; 1 MiB inserted in the middle of big0."""
    rnd = random.Random(seed)
    files = sorted(
        os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(root, "images")) for f in fs
    )
    k = max(1, len(files) // 100)
    for p in rnd.sample(files, k):
        with open(p, "wb") as f:
            f.write(rnd.randbytes(rnd.randint(4096, 60000)))
    for p in rnd.sample(files, k):
        if os.path.exists(p):
            os.remove(p)
    for i in range(k):
        with open(os.path.join(root, "images", "c00", f"new{i:05d}.bin"), "wb") as f:
            f.write(rnd.randbytes(20000))
    big = os.path.join(root, "tables", "big0.bin")
    with open(big, "rb") as f:
        data = f.read()
    mid = len(data) // 2
    with open(big, "wb") as f:
        f.write(data[:mid] + rnd.randbytes(1 << 20) + data[mid:])
