"""``dsrepo://`` and ``dsrepo+s3://`` through fsspec, with the real readers: pandas, pyarrow,
polars, DuckDB and Hugging Face ``datasets`` read a parquet table and a CSV at two versions of a
local repository, a directory remote and an S3 remote (a moto server on loopback); requests to
S3 are counted to show that a parquet footer costs one small range read and a column about the
column's bytes."""

from __future__ import annotations

import io
import pickle
from typing import Any

import fsspec
import pytest
from blake3 import blake3

from dsrepo import DsrepoFileSystem
from dsrepo.fs import DsrepoS3FileSystem, split, url
from dsrepo.reading import shared
from tests.reading_fixtures import COLUMNS, ROWS, World
from tests.reading_fixtures import reading_env_fixture as reading_env_fixture
from tests.reading_fixtures import world_fixture as world_fixture

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

KINDS = ["repo", "dir", "s3"]
REVS = ["v1", "main"]
pytestmark = pytest.mark.usefixtures("reading_env")


def _fs(w: World, kind: str) -> DsrepoFileSystem:
    fs: DsrepoFileSystem = fsspec.filesystem(
        "dsrepo+s3" if kind == "s3" else "dsrepo", **w.storage_options(kind)
    )
    return fs


def _expected(w: World, rev: str) -> tuple[Any, Any]:
    return pd.read_parquet(io.BytesIO(w.parquet[rev])), pd.read_csv(io.StringIO(w.csv[rev]))


# ---------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("location", "rev", "path"),
    [
        ("/data/cats", "v1.2", "tables/train.parquet"),
        ("/data/a@b/100%", "feature/x@{1}", "odd/p@th/%41 name.csv"),
        ("/data/cats", "HEAD~2", ""),
        ("/data/cats", None, "a.csv"),
        ("s3://bucket/pre/fix", "main", "images/0001.png"),
        ("s3://bucket", "0123abcd", "x::y"),
    ],
)
def test_urls_round_trip(location: str, rev: str | None, path: str) -> None:
    u = url(location, rev, path)
    assert u.startswith("dsrepo+s3://" if location.startswith("s3://") else "dsrepo:///")
    assert split(u) == (location, rev, path)


def test_url_locations_are_absolute_paths(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tools that rewrite dsrepo:///x as dsrepo://x (datasets' streaming does) change nothing.
    assert split("dsrepo://data/cats@v1/a.csv") == ("/data/cats", "v1", "a.csv")
    assert split("dsrepo:///data/cats@v1/a.csv") == ("/data/cats", "v1", "a.csv")
    monkeypatch.chdir(tmp_path)
    assert split("dsrepo://./cats@/a.csv") == (str(tmp_path / "cats"), None, "a.csv")
    assert url("cats", "v1") == f"dsrepo://{tmp_path}/cats@v1"
    assert split("dsrepo+s3://bucket/prefix@main/x/")[0] == "s3://bucket/prefix"


def test_the_protocols_are_registered_through_the_entry_point() -> None:
    assert fsspec.get_filesystem_class("dsrepo") is DsrepoFileSystem
    assert fsspec.get_filesystem_class("dsrepo+s3") is DsrepoS3FileSystem


# ---------------------------------------------------------------- the readers


@pytest.mark.parametrize("kind", KINDS)
def test_pandas_reads_both_versions(reading_env: World, kind: str) -> None:
    w = reading_env
    opts = w.storage_options(kind)
    for rev in REVS:
        table, labels = _expected(w, rev)
        got = pd.read_parquet(w.url(kind, rev, "tables/train.parquet"), storage_options=opts)
        pd.testing.assert_frame_equal(got, table)
        got_csv = pd.read_csv(w.url(kind, rev, "tables/labels.csv"), storage_options=opts)
        pd.testing.assert_frame_equal(got_csv, labels)


@pytest.mark.parametrize("kind", KINDS)
def test_pyarrow_reads_both_versions(reading_env: World, kind: str) -> None:
    import pyarrow.csv as pacsv

    w = reading_env
    fs = _fs(w, kind)
    for rev in REVS:
        table, labels = _expected(w, rev)
        got = pq.read_table(w.url(kind, rev, "tables/train.parquet"), filesystem=fs)
        assert got.to_pandas().equals(table)
        one = pq.read_table(w.url(kind, rev, "tables/train.parquet"), filesystem=fs, columns=["c0"])
        assert one.column_names == ["c0"] and one.to_pandas()["c0"].equals(table["c0"])
        with fs.open(w.url(kind, rev, "tables/labels.csv")) as f:
            assert pacsv.read_csv(f).to_pandas().equals(labels)


@pytest.mark.parametrize("kind", KINDS)
def test_polars_reads_both_versions(reading_env: World, kind: str) -> None:
    pl = pytest.importorskip("polars")
    w = reading_env
    opts = w.storage_options(kind)
    for rev in REVS:
        table, labels = _expected(w, rev)
        # polars' own engine knows only its built-in schemes: fsspec URLs go through pyarrow
        # (use_pyarrow=True), or polars reads an fsspec file object
        got = pl.read_parquet(
            w.url(kind, rev, "tables/train.parquet"),
            columns=["c1", "c0"],
            use_pyarrow=True,
            storage_options=opts,
        )
        assert got.shape == (ROWS, 2)
        assert got["c0"].to_list() == table["c0"].to_list()
        with fsspec.open(w.url(kind, rev, "tables/labels.csv"), **opts) as f:
            got_csv = pl.read_csv(f)
        assert got_csv.to_pandas().equals(labels)


@pytest.mark.parametrize("kind", KINDS)
def test_duckdb_reads_both_versions(reading_env: World, kind: str) -> None:
    duckdb = pytest.importorskip("duckdb")
    w = reading_env
    con = duckdb.connect()
    con.register_filesystem(_fs(w, kind))
    try:
        for rev in REVS:
            table, labels = _expected(w, rev)
            parquet = w.url(kind, rev, "tables/train.parquet")
            n, total = con.execute(
                f"SELECT count(*), sum(c0) FROM read_parquet('{parquet}')"
            ).fetchone()
            assert n == ROWS and total == pytest.approx(table["c0"].sum())
            csv = w.url(kind, rev, "tables/labels.csv")
            rows = con.execute(
                f"SELECT name, label FROM read_csv('{csv}') ORDER BY label"
            ).fetchall()
            assert rows == list(labels.itertuples(index=False, name=None))
    finally:
        con.close()


@pytest.mark.parametrize("kind", ["repo", "s3"])
def test_hugging_face_datasets_load_both_versions(reading_env: World, kind: str) -> None:
    datasets = pytest.importorskip("datasets")
    w = reading_env
    opts = w.storage_options(kind)
    for rev in REVS:
        table, labels = _expected(w, rev)
        ds = datasets.load_dataset(
            "parquet",
            data_files=w.url(kind, rev, "tables/train.parquet"),
            split="train",
            storage_options=opts,
        )
        assert ds.num_rows == ROWS and ds[0]["c0"] == table["c0"][0]
        csv = datasets.load_dataset(
            "csv", data_files=w.url(kind, rev, "tables/*.csv"), split="train", storage_options=opts
        )
        assert csv["name"] == list(labels["name"])


# ---------------------------------------------------------------- the filesystem API


@pytest.mark.parametrize("kind", KINDS)
def test_listing_info_and_content_ids(reading_env: World, kind: str) -> None:
    w = reading_env
    fs = _fs(w, kind)
    root = fs._strip_protocol(w.url(kind, "v1"))
    listing = fs.ls(w.url(kind, "v1"), detail=True)
    assert listing == [
        {
            "name": f"{root}/tables",
            "size": len(w.parquet["v1"]) + len(w.csv["v1"]),
            "type": "directory",
            "content_id": listing[0]["content_id"],
            "kind": "tree",
            "islink": False,
        }
    ]
    files = fs.ls(f"{root}/tables", detail=True)
    assert [(f["name"], f["size"], f["type"]) for f in files] == [
        (f"{root}/tables/labels.csv", len(w.csv["v1"]), "file"),
        (f"{root}/tables/train.parquet", len(w.parquet["v1"]), "file"),
    ]
    parquet = f"{root}/tables/train.parquet"
    cid = blake3(w.parquet["v1"]).hexdigest()
    assert files[1]["content_id"] == cid == fs.checksum(parquet) == fs.ukey(parquet)
    assert fs.info(parquet)["size"] == len(w.parquet["v1"])
    assert fs.info(w.url(kind, "v1", "tables"))["type"] == "directory"
    assert fs.ls(parquet, detail=False) == [parquet]
    assert fs.glob(f"{root}/**/*.csv") == [f"{root}/tables/labels.csv"]
    assert fs.find(w.url(kind, "main")) == [
        f"{fs._strip_protocol(w.url(kind, 'main'))}/tables/{n}"
        for n in ("labels.csv", "train.parquet")
    ]
    assert list(fs.walk(root)) == [
        (root, ["tables"], []),
        (f"{root}/tables", [], ["labels.csv", "train.parquet"]),
    ]
    assert fs.isdir(f"{root}/tables") and fs.isfile(parquet) and fs.exists(parquet)
    assert not fs.exists(f"{root}/tables/nope.csv")
    assert fs.du(root) == len(w.parquet["v1"]) + len(w.csv["v1"])
    # the default revision is spelled out in the names returned
    default = w.url(kind, None)
    spelled = "HEAD" if kind == "repo" else "main"
    assert fs.ls(default, detail=False) == [f"{fs._strip_protocol(default)}{spelled}/tables"]


@pytest.mark.parametrize("kind", ["repo", "s3"])
def test_ranges_and_seeking(reading_env: World, kind: str) -> None:
    w = reading_env
    fs = _fs(w, kind)
    path = w.url(kind, "v1", "tables/train.parquet")
    data = w.parquet["v1"]
    assert fs.cat_file(path) == data
    assert fs.cat_file(path, 100, 70_000) == data[100:70_000]
    assert fs.cat_file(path, -8) == data[-8:]
    assert fs.cat_file(path, 5, -5) == data[5:-5]
    assert fs.cat_file(path, len(data) - 3, len(data) + 100) == data[-3:]
    assert fs.read_block(path, 1_000_000, 300_000) == data[1_000_000:1_300_000]
    with fs.open(path) as f:
        assert f.seekable() and f.size == len(data)
        f.seek(-8, 2)
        assert f.read() == data[-8:]
        f.seek(3_000_000)
        assert f.read(5) == data[3_000_000:3_000_005] and f.tell() == 3_000_005
        f.seek(10, 1)
        assert f.read(100_000) == data[3_000_015:3_100_015]
    with fs.open(w.url(kind, "main", "tables/labels.csv"), "r") as text:
        assert text.read() == w.csv["main"]


def test_missing_things_are_file_not_found(reading_env: World) -> None:
    w = reading_env
    fs = _fs(w, "repo")
    for bad in (
        w.url("repo", "v1", "tables/nope.csv"),
        w.url("repo", "no-such-tag", "tables/labels.csv"),
        f"dsrepo://{w.root}/no-such-repo@v1/x.csv",
        w.url("repo", "v1", "tables/labels.csv/below"),
    ):
        with pytest.raises(FileNotFoundError):
            fs.cat_file(bad)
        assert not fs.exists(bad)
    with pytest.raises(FileNotFoundError):
        pd.read_csv(w.url("repo", "v1", "tables/nope.csv"))
    with pytest.raises(IsADirectoryError):
        fs.open(w.url("repo", "v1", "tables"))


def test_writes_are_refused(reading_env: World) -> None:
    w = reading_env
    fs = _fs(w, "repo")
    target = w.url("repo", "main", "tables/new.csv")
    for attempt in (
        lambda: fs.open(target, "wb"),
        lambda: fs.pipe(target, b"x"),
        lambda: fs.rm(w.url("repo", "main", "tables/labels.csv")),
        lambda: fs.mkdir(w.url("repo", "main", "more")),
        lambda: fs.makedirs(w.url("repo", "main", "more")),
        lambda: fs.touch(target),
        lambda: fs.put_file(__file__, target),
        lambda: fs.mv(w.url("repo", "main", "tables/labels.csv"), target),
        lambda: fs.copy(w.url("repo", "main", "tables/labels.csv"), target),
        lambda: pd.DataFrame({"a": [1]}).to_csv(target),
    ):
        with pytest.raises(PermissionError, match="read-only"):
            attempt()
    assert fs.cat_file(w.url("repo", "main", "tables/labels.csv")) == w.csv["main"].encode()


def test_filesystems_pickle_and_reopen_per_process(reading_env: World) -> None:
    w = reading_env
    fs = _fs(w, "s3")
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.s3 == fs.s3
    path = w.url("s3", "v1", "tables/labels.csv")
    assert clone.cat_file(path) == w.csv["v1"].encode()


# ---------------------------------------------------------------- what a read costs


def _counter(w: World) -> Any:
    return shared(w.s3_url, DsrepoS3FileSystem(endpoint_url=w.endpoint_url).s3)


def _cost(w: World, before: dict[str, int]) -> tuple[int, int]:
    now = _counter(w).requests()
    requests = sum(v for k, v in now.items() if k != "bytes_received")
    return requests - sum(v for k, v in before.items() if k != "bytes_received"), now[
        "bytes_received"
    ] - before.get("bytes_received", 0)


def test_a_parquet_footer_costs_one_small_range_read(reading_env: World) -> None:
    w = reading_env
    fs = _fs(w, "s3")
    path = w.url("s3", "v1", "tables/train.parquet")
    fs.info(path)  # opens the handle: refs, the commit and the trees
    before = dict(_counter(w).requests())
    with fs.open(path) as f:
        opened = _cost(w, before)
        before = dict(_counter(w).requests())
        meta = pq.ParquetFile(f).metadata
        footer = _cost(w, before)
    assert meta.num_rows == ROWS and meta.num_columns == len(COLUMNS)
    assert opened[0] == 1 and opened[1] < 16 << 10, opened  # the manifest: the chunk list
    assert footer[0] == 1, footer  # one ranged read...
    assert footer[1] <= 256 << 10, footer  # ...of one chunk at most (FastCDC's maximum)
    print(
        f"open: {opened}, parquet footer: {footer} (requests, bytes); file {len(w.parquet['v1'])}"
    )


def test_reading_one_column_fetches_about_that_column(reading_env: World) -> None:
    w = reading_env
    fs = _fs(w, "s3")
    path = w.url("s3", "v1", "tables/train.parquet")
    fs.info(path)
    meta = pq.ParquetFile(io.BytesIO(w.parquet["v1"])).metadata
    column = meta.row_group(0).column(COLUMNS.index("c2")).total_compressed_size  # ~1.9 MB
    size = len(w.parquet["v1"])
    before = dict(_counter(w).requests())
    table = pq.read_table(path, filesystem=fs, columns=["c2"])
    assert table.num_rows == ROWS
    requests, received = _cost(w, before)
    print(
        f"one column of 4 (pyarrow): {requests} requests, {received} bytes; column {column}, file {size}"
    )
    # the column's bytes, plus at most a chunk on each side and the footer's chunk
    assert column <= received < column + 3 * (256 << 10)
    assert received < 0.4 * size
    assert requests <= 8

    before = dict(_counter(w).requests())
    con = pytest.importorskip("duckdb").connect()
    con.register_filesystem(fs)
    (total,) = con.execute(f"SELECT sum(c3) FROM read_parquet('{path}')").fetchone()
    con.close()
    assert total == pytest.approx(pd.read_parquet(io.BytesIO(w.parquet["v1"]))["c3"].sum())
    requests, received = _cost(w, before)
    print(f"one column of 4 (duckdb): {requests} requests, {received} bytes")
    assert received < 0.4 * size

    before = dict(_counter(w).requests())
    whole = fs.cat_file(path)
    requests, received = _cost(w, before)
    assert whole == w.parquet["v1"] and received >= size
    print(f"whole file: {requests} requests, {received} bytes")


def test_revisions_resolve_once_until_the_cache_is_invalidated(
    reading_env: World, tmp_path: Any
) -> None:
    from dsrepo import Repository

    with Repository.init(tmp_path / "live") as repo:
        (repo.root / "a.txt").write_text("one\n")
        repo.add()
        repo.commit("one")
        fs = fsspec.filesystem("dsrepo")
        path = url(repo.root, "main", "a.txt")
        assert fs.cat_file(path) == b"one\n"
        (repo.root / "a.txt").write_text("two\n")
        repo.commit("two", all=True)
        assert fs.cat_file(path) == b"one\n"  # consistent within the process...
        fs.invalidate_cache()
        assert fs.cat_file(path) == b"two\n"  # ...until asked to look again
        assert fs.cat_file(url(repo.root, "main~1", "a.txt")) == b"one\n"
        # a branch with a slash: percent-encoded in URLs and in the names returned
        repo.branch("feature/x", "HEAD~1")
        names = fs.ls(url(repo.root, "feature/x"), detail=False)
        assert names == [f"{repo.root}@feature%2Fx/a.txt"]
        assert fs.cat_file(names[0]) == b"one\n"
        assert split(fs.unstrip_protocol(names[0])) == (str(repo.root), "feature/x", "a.txt")
