"""Reading versions without a checkout: the seekable file over a stored file's chunks
(``Repository.open_file``, also in a partial clone), ``dsrepo.open`` on a repository, a directory
remote and an S3 remote, and ``FileDataset`` in forked workers and threads."""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import sys
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

import dsrepo
from dsrepo import (
    FileDataset,
    NotARepository,
    PathError,
    Repository,
    RepositoryError,
    S3Options,
    UnknownRevision,
)
from dsrepo.dvcs.bare import BareRepository
from dsrepo.objects.filereader import FileReader
from dsrepo.reading import shared
from tests.reading_fixtures import ROWS, World
from tests.reading_fixtures import reading_env_fixture as reading_env_fixture
from tests.reading_fixtures import world_fixture as world_fixture

MiB = 1 << 20


# ---------------------------------------------------------------- the seekable file


@pytest.fixture
def stored() -> Iterator[tuple[BareRepository, Any, bytes]]:
    data = random.Random(3).randbytes(3 * MiB + 12_345)
    bare = BareRepository.in_memory()
    ref = bare.store.write_bytes(data)
    bare.store.flush()
    yield bare, ref, data
    bare.close()


def test_file_reader_behaves_like_a_file(stored: tuple[BareRepository, Any, bytes]) -> None:
    bare, ref, data = stored
    assert ref.manifest is not None
    rng = random.Random(5)
    with FileReader(bare.store, ref) as f, io.BytesIO(data) as expected:
        assert f.readable() and f.seekable() and not f.writable()
        for _ in range(300):
            op = rng.random()
            if op < 0.3:
                where = rng.choice([0, 1, 2])
                offset = (
                    rng.randrange(-len(data), len(data) + 10)
                    if where
                    else rng.randrange(len(data) + 10)
                )
                if where == 1:
                    offset = rng.randrange(-f.tell(), 100_000)
                if where == 2:
                    offset = rng.randrange(-len(data), 10)
                assert f.seek(offset, where) == expected.seek(offset, where)
            else:
                n = rng.choice([1, 7, 4096, 65_536, 300_000])
                assert f.read(n) == expected.read(n)
            assert f.tell() == expected.tell()
        f.seek(1000)
        assert f.read() == data[1000:]
        assert f.read(10) == b""
        assert f.pread(len(data) - 5, 100) == data[-5:]
        assert f.pread(len(data) + 5, 100) == b""
        with pytest.raises(OSError):
            f.seek(-1)
    with pytest.raises(ValueError):
        f.read(1)


def test_a_small_read_fetches_only_its_chunks(stored: tuple[BareRepository, Any, bytes]) -> None:
    bare, ref, data = stored
    chunks = bare.store.get_manifest(ref.manifest).chunks
    starts = [0]
    for _, length in chunks:
        starts.append(starts[-1] + length)
    with FileReader(bare.store, ref) as f:
        middle = starts[len(chunks) // 2] + 10
        assert f.pread(middle, 100) == data[middle : middle + 100]
        assert f.chunks_fetched == 1
        assert f.pread(middle + 200, 100) == data[middle + 200 : middle + 300]
        assert f.chunks_fetched == 1  # kept
        boundary = starts[3] - 50
        assert f.pread(boundary, 100) == data[boundary : boundary + 100]
        assert f.chunks_fetched == 3  # the two chunks around the boundary
        f.seek(-8, 2)
        assert f.read() == data[-8:]
        assert f.chunks_fetched == 4


def test_repository_open_file_is_seekable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "T")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "t@example.com")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "g"))
    data = random.Random(9).randbytes(2 * MiB)
    with Repository.init(tmp_path / "r") as repo:
        (repo.root / "big.bin").write_bytes(data)
        (repo.root / "small.txt").write_text("small file\n")
        repo.add()
        repo.commit("files")
        repo.tag("v1")
        with repo.open_file("v1", "big.bin") as f:
            assert isinstance(f, io.BufferedReader) and f.seekable()
            f.seek(-8, io.SEEK_END)
            assert f.read() == data[-8:]
            f.seek(1_000_000)
            assert f.read(10) == data[1_000_000:1_000_010]
            assert f.raw.chunks_fetched <= 3  # type: ignore[attr-defined]
        with repo.open_file("HEAD", "small.txt") as f:
            f.seek(6)
            assert f.read() == b"file\n"
        with pytest.raises(PathError):
            repo.open_file("v1", "")
        with pytest.raises(UnknownRevision):
            repo.open_file("v1", "nope.bin")


def test_a_partial_clone_fetches_only_the_chunks_read_and_keeps_them(
    reading_env: World, tmp_path: Path
) -> None:
    w = reading_env
    with Repository.clone(str(w.dir_remote), tmp_path / "part", only="tables/labels.csv") as part:
        entry = part.resolve("v1:tables/train.parquet").entry
        assert entry is not None and entry.manifest is not None
        chunks = [c for c, _ in part.store.get_manifest(entry.manifest).chunks]
        assert part.store.missing(chunks) == set(chunks)
        with part.open_file("v1", "tables/train.parquet") as f:
            f.seek(-8, io.SEEK_END)
            assert f.read() == w.parquet["v1"][-8:]
        assert len(set(chunks) - part.store.missing(chunks)) == 1  # the last one, kept
        with part.open_file("v1", "tables/train.parquet") as f:
            f.seek(3_000_000)
            assert f.read(1000) == w.parquet["v1"][3_000_000:3_001_000]
        # the chunks under the 64 KiB that the buffered file read there, and nothing else
        lengths = [n for _, n in part.store.get_manifest(entry.manifest).chunks]
        starts = [sum(lengths[:i]) for i in range(len(lengths))]
        under = {
            c
            for c, s, n in zip(chunks, starts, lengths, strict=True)
            if s < 3_065_536 and s + n > 3_000_000
        }
        assert set(chunks) - part.store.missing(chunks) == under | {chunks[-1]}
        # a read-only handle on the partial clone fetches the same way
        with dsrepo.open(part.root, "v1") as handle:
            assert handle.read_bytes("tables/train.parquet") == w.parquet["v1"]
        assert not part.store.missing(chunks)


# ---------------------------------------------------------------- dsrepo.open


@pytest.mark.parametrize("kind", ["repo", "dir", "s3"])
def test_open_a_repository_or_a_remote(reading_env: World, kind: str) -> None:
    w = reading_env
    s3 = S3Options(endpoint_url=w.endpoint_url) if kind == "s3" else None
    with dsrepo.open(w.location(kind), s3=s3) as handle:
        assert handle.rev == ("HEAD" if kind == "repo" else "main")
        assert handle.commit.hex() == w.commits["main"]
        assert handle.is_remote == (kind != "repo")
        assert handle.metadata == {"version": 2, "rows": ROWS}
        assert handle.message.strip() == "version 2"
        assert [e.commit.message.strip() for e in handle.log()] == ["version 2", "version 1"]
        assert [e.id.hex() for e in handle.log(rev="v1")] == [w.commits["v1"]]
        assert [(p.path, p.size, p.is_dir) for p in handle.ls()] == [
            ("tables", len(w.parquet["main"]) + len(w.csv["main"]), True)
        ]
        files = handle.ls("tables", rev="v1")
        assert [(p.path, p.size) for p in files] == [
            ("tables/labels.csv", len(w.csv["v1"])),
            ("tables/train.parquet", len(w.parquet["v1"])),
        ]
        assert files[0].id == blake3(w.csv["v1"].encode()).digest()
        assert handle.read_bytes("tables/labels.csv") == w.csv["main"].encode()
        for rev in ("v1", "main~1", w.commits["v1"], w.commits["v1"][:10], "refs/tags/v1"):
            assert handle.resolve(rev).hex() == w.commits["v1"], rev
            assert handle.read_bytes("tables/labels.csv", rev) == w.csv["v1"].encode()
        with handle.open_file("tables/train.parquet", "v1") as f:
            f.seek(-4, io.SEEK_END)
            assert f.read() == b"PAR1"
        assert [p.path for p in handle.files("*.csv")] == ["tables/labels.csv"]
        assert {"refs/heads/main", "refs/tags/v1"} <= set(handle.refs())
        if kind == "s3":
            assert handle.requests()["get"] > 0
        with pytest.raises(PathError):
            handle.info("tables/nope.csv")
        with pytest.raises(PathError):
            handle.open_file("tables")
        with pytest.raises(UnknownRevision):
            handle.resolve("no-such-tag")
    with dsrepo.open(w.location(kind), "v1", s3=s3) as old:
        assert old.commit.hex() == w.commits["v1"] and old.metadata["version"] == 1


def test_open_shares_the_index_cache_with_get(reading_env: World, tmp_path: Path) -> None:
    """``dsrepo.open`` caches a remote's pack indexes where ``get`` does, in the user cache,
    before that cache repository exists; ``get`` then makes it and reuses them."""
    w = reading_env
    with dsrepo.open(w.dir_remote) as handle:
        assert handle.read_bytes("tables/labels.csv") == w.csv["main"].encode()
    cache = tmp_path / "cache"
    assert list((cache / ".dsrepo" / "cache" / "remotes").glob("*.sqlite"))
    Repository.get(str(w.dir_remote), tmp_path / "job", rev="v1")
    assert (tmp_path / "job" / "tables" / "labels.csv").read_text() == w.csv["v1"]
    with dsrepo.open(cache, w.commits["v1"]) as cached:  # the user cache is a repository too
        assert cached.read_bytes("tables/labels.csv") == w.csv["v1"].encode()


def test_open_refuses_what_is_not_a_dataset(reading_env: World, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotARepository):
        dsrepo.open(tmp_path / "plain")
    with pytest.raises(UnknownRevision):
        dsrepo.open(reading_env.dir_remote, "no-such-branch")


def _use_after_fork(handle: Any) -> str:
    try:
        handle.read_bytes("tables/labels.csv")
    except RepositoryError as exc:
        return str(exc)
    return "no error"


def test_a_handle_is_not_used_after_a_fork(reading_env: World) -> None:
    w = reading_env
    handle = dsrepo.open(w.s3_url, s3=S3Options(endpoint_url=w.endpoint_url))
    global _HANDLE
    _HANDLE = handle
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            message = pool.apply(_child_uses_inherited_handle)
        assert "opened in another process" in message
        assert handle.read_bytes("tables/labels.csv") == w.csv["main"].encode()  # parent: fine
    finally:
        handle.close()


_HANDLE: Any = None


def _child_uses_inherited_handle() -> str:
    return _use_after_fork(_HANDLE)


# ---------------------------------------------------------------- FileDataset


_DATASET: Any = None


_INHERITED = -1


def _child_starts() -> None:
    """A forked worker starts: how many shared handles did it inherit?"""
    global _INHERITED
    from dsrepo import reading

    _INHERITED = len(reading._handles)


def _child_reads(indexes: list[int]) -> tuple[int, int, list[tuple[str, bytes]]]:
    """In a forked worker: how many shared handles it inherited, and its items."""
    return os.getpid(), _INHERITED, [_DATASET[i] for i in indexes]


def test_file_dataset_in_forked_workers(reading_env: World) -> None:
    """As DataLoader workers use it: made and used in the parent (whose handle, SQLite
    connection and boto3 client are then open), then read in forked children."""
    w = reading_env
    s3 = S3Options(endpoint_url=w.endpoint_url)
    ds = FileDataset(w.s3_url, "tables/*", rev="v1", s3=s3)
    assert ds.commit == w.commits["v1"]
    assert len(ds) == 2 and ds.paths == ["tables/labels.csv", "tables/train.parquet"]
    expected = [
        ("tables/labels.csv", w.csv["v1"].encode()),
        ("tables/train.parquet", w.parquet["v1"]),
    ]
    assert ds[0] == expected[0]
    global _DATASET
    _DATASET = ds
    with multiprocessing.get_context("fork").Pool(2, _child_starts) as pool:
        results = pool.map(_child_reads, [[0, 1], [1], [0]])
    assert all(pid != os.getpid() for pid, _, _ in results)
    assert all(inherited == 0 for _, inherited, _ in results)  # nothing reused after fork
    assert [items for _, _, items in results] == [expected, expected[1:], expected[:1]]
    assert ds[1] == expected[1]  # the parent's handle still works


@pytest.fixture
def many_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, dict[str, bytes]]]:
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "T")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "t@example.com")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "g"))
    monkeypatch.setenv("DSREPO_CACHE_DIR", str(tmp_path / "cache"))
    files = {f"img/{i:03d}.bin": random.Random(i).randbytes(1000 + 37 * i) for i in range(40)}
    files["img/big.bin"] = random.Random(99).randbytes(3 * MiB)
    files["labels.txt"] = b"labels\n"
    with Repository.init(tmp_path / "r") as repo:
        for name, data in files.items():
            (repo.root / name).parent.mkdir(exist_ok=True)
            (repo.root / name).write_bytes(data)
        repo.add()
        repo.commit("images")
    yield tmp_path / "r", files
    dsrepo.reading.close_shared()


def test_file_dataset_items_shards_and_threads(many_files: tuple[Path, dict[str, bytes]]) -> None:
    root, files = many_files
    images = {k: v for k, v in files.items() if k.startswith("img/")}
    ds = FileDataset(root, "img/*.bin")
    assert ds.paths == sorted(images)
    with ThreadPoolExecutor(8) as pool:
        items = list(pool.map(ds.__getitem__, range(len(ds))))
    assert dict(items) == images
    _, f = FileDataset(root, "img/big.bin", as_file=True)[0]
    with f:
        f.seek(-10, io.SEEK_END)
        assert f.read() == images["img/big.bin"][-10:]
    sized = FileDataset(root, ["img/00*.bin"], transform=lambda p, b: (p, len(b)))
    assert sized[3] == ("img/003.bin", 1000 + 3 * 37)
    shards = [ds.shard(rank, 3) for rank in range(3)]
    assert sorted(p for s in shards for p in s.paths) == ds.paths
    assert len(shards[0]) == 14 and shards[1][0][0] == ds.paths[1]
    assert ds[2:4].paths == ds.paths[2:4]
    with pytest.raises(ValueError):
        ds.shard(3, 3)


def test_file_dataset_iterates_over_its_worker_share(
    many_files: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a DataLoader over an iterable view sees, with torch.utils.data stubbed (torch is not
    a dependency; the helper imports none of it)."""
    root, _ = many_files
    ds = FileDataset(root, "img/0[0-1]*.bin")
    assert len(ds) == 20
    fake = types.ModuleType("torch.utils.data")
    worker: dict[str, Any] = {"info": None}
    fake.get_worker_info = lambda: worker["info"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.data", fake)
    assert [p for p, _ in ds] == ds.paths
    seen = []
    for wid in range(3):
        worker["info"] = types.SimpleNamespace(id=wid, num_workers=3)
        seen.append([p for p, _ in ds])
    assert [len(s) for s in seen] == [7, 7, 6]
    assert sorted(p for s in seen for p in s) == ds.paths


def test_file_dataset_pickles_for_spawned_workers(
    many_files: tuple[Path, dict[str, bytes]],
) -> None:
    import pickle

    root, files = many_files
    ds = FileDataset(root, "labels.txt")
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.commit == ds.commit and clone[0] == ("labels.txt", files["labels.txt"])


def test_shared_handles_are_per_location(many_files: tuple[Path, dict[str, bytes]]) -> None:
    root, _ = many_files
    assert shared(str(root)) is shared(str(root))
    dsrepo.reading.close_shared()
    again = shared(str(root))
    assert again.read_bytes("labels.txt") == b"labels\n"
