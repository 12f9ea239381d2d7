"""The web view's parts without a server: URLs, ranges, random access to chunked files, bounded
tree reads, change summaries, the SVG graph, search matching."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.requests import Request

from dsrepo.dvcs.bare import BareRepository
from dsrepo.dvcs.commits import write_tree
from dsrepo.dvcs.graph import render_graph
from dsrepo.dvcs.reader import raw_file
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Commit, Signature, TreeEntry
from dsrepo.server.web import changes, trees
from dsrepo.server.web.blobio import Unsatisfiable, parse_range, stream
from dsrepo.server.web.graph_svg import Node, render_svg
from dsrepo.server.web.templating import human_size
from dsrepo.server.web.timeline import flat_metadata, matches
from dsrepo.server.web.urls import Urls, compare_revs, enc_path, enc_rev, rev_and_path
from tests.web.conftest import pseudo_random


def _request(raw: bytes, root_path: str = "") -> Request:
    from urllib.parse import unquote

    path = unquote(raw.decode())
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": path,
            "raw_path": raw,
            "root_path": root_path,
            "query_string": b"",
            "headers": [],
            "path_params": {"rest": path.split("/", 2)[2] if path.count("/") >= 2 else ""},
        }
    )


@pytest.mark.parametrize(
    ("rev", "path"),
    [
        ("main", ""),
        ("feature/x", "a/b.txt"),
        ("v1^2~3", "odd/%2F #?&.txt"),
        ("release/2026/11", "<img src=x>/ü.csv"),
    ],
)
def test_revision_and_path_survive_the_url(rev: str, path: str) -> None:
    url = Urls().tree(rev, path)
    assert url.count("/") == 2 + (path.count("/") + 1 if path else 0)
    assert rev_and_path(_request(url.encode()), "/tree/") == (rev, path)
    mounted = "/data" + url
    assert rev_and_path(_request(mounted.encode(), "/data"), "/tree/") == (rev, path)


def test_url_builders_encode_every_segment() -> None:
    u = Urls()
    assert enc_rev("feature/x") == "feature%2Fx" and enc_rev("HEAD~2") == "HEAD~2"
    assert enc_path("a b/c#d") == "a%20b/c%23d"
    assert u.compare("v1", "feature/x") == "/compare/v1...feature%2Fx"
    assert u.search("a=b c", 2) == "/search?q=a%3Db+c&page=2"
    assert u.log("feature/x", 3) == "/log/feature%2Fx?page=3"
    assert compare_revs(_request(b"/compare/v1...feature%2Fx")) == ("v1", "feature/x")
    assert compare_revs(_request(b"/compare/v1")) is None
    assert Urls("/mount/").raw("m", "x y") == "/mount/raw/m/x%20y"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-4", 10, (0, 5)),
        ("bytes=5-", 10, (5, 10)),
        ("bytes=-3", 10, (7, 10)),
        ("bytes=-30", 10, (0, 10)),
        ("bytes=8-100", 10, (8, 10)),
        ("bytes=4-2", 10, None),
        ("bytes=0-1,4-5", 10, None),
        ("items=0-1", 10, None),
        (" bytes = 2 - 3 ", 10, (2, 4)),
    ],
)
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


@pytest.fixture
def bare() -> Iterator[BareRepository]:
    with BareRepository.in_memory() as repo:
        yield repo


def _file(repo: BareRepository, name: str, data: bytes) -> TreeEntry:
    ref = repo.store.write_bytes(data)
    return TreeEntry(name, EntryKind.FILE, ref.size, ref.content_id, ref.manifest)


def test_streamed_ranges_cross_chunks_and_close_the_reader(bare: BareRepository) -> None:
    data = pseudo_random(2_500_000)
    entry = _file(bare, "big.bin", data)
    assert entry.manifest is not None

    def streamed(start: int, end: int) -> bytes:
        reader = raw_file(bare, entry)
        out = b"".join(stream(reader, start, end))
        assert reader.closed
        return out

    assert streamed(1_000_000, 1_300_000) == data[1_000_000:1_300_000]
    assert streamed(0, len(data)) == data
    assert streamed(len(data) - 10, len(data) + 5) == data[-10:]
    assert streamed(5, 5) == b""
    empty = _file(bare, "e", b"")
    assert b"".join(stream(raw_file(bare, empty), 0, 0)) == b""


def _tree(repo: BareRepository, files: dict[str, bytes]) -> ObjectId:
    entries = {p: _file(repo, p.rsplit("/", 1)[-1], d) for p, d in files.items()}
    return write_tree(repo.store, entries)


def test_lookup_and_pages_read_only_the_shards_they_need(bare: BareRepository) -> None:
    files = {f"big/n{i:05d}": f"{i}".encode() for i in range(6000)}
    files["top.txt"] = b"top"
    root = _tree(bare, files)
    big = trees.lookup(bare.store, root, "big")
    assert big is not None and big.kind == EntryKind.TREE
    assert bare.store.get_tree(big.id).shards
    entry = trees.lookup(bare.store, root, "big/n04321")
    assert entry is not None and bare.store.read_all(entry) == b"4321"
    assert trees.lookup(bare.store, root, "big/zzz") is None
    assert trees.lookup(bare.store, root, "top.txt/x") is None
    page, total = trees.entries_page(bare.store, big.id, 2990, 20)
    assert total == 6000 and [e.name for e in page] == [f"n{i:05d}" for i in range(2990, 3010)]
    assert trees.entries_page(bare.store, big.id, 5990, 50)[0][-1].name == "n05999"
    assert [e.name for e in trees.entries_page(bare.store, root, 0, 10)[0]] == ["big", "top.txt"]


def test_file_counts_are_exact_or_a_lower_bound(bare: BareRepository) -> None:
    files = {f"d{i % 7}/sub{i % 3}/f{i}": b"x" for i in range(500)}
    files.update({f"flat/n{i:05d}": b"y" for i in range(5000)})
    root = _tree(bare, files)
    exact = trees.count_files(bare.store, root)
    assert exact == trees.Count(5500) and str(exact) == "5,500"
    # trees not counted before (other content), with a tiny budget: a lower bound
    root2 = _tree(bare, {p: b"other" for p in files})
    bounded = trees.count_files(bare.store, root2, budget=100)
    assert not bounded.exact and 0 < bounded.n < 5500 and str(bounded).startswith("≥ ")
    assert trees.count_files(bare.store, root2) == trees.Count(5500)


def test_walk_files_is_lazy_and_in_tree_order(bare: BareRepository) -> None:
    root = _tree(bare, {"b/x": b"1", "a": b"2", "b/c/d": b"3"})
    assert [p for p, _ in trees.walk_files(bare.store, root)] == ["a", "b/c/d", "b/x"]


def test_summaries_list_up_to_a_limit_and_count_the_rest(bare: BareRepository) -> None:
    before = {f"many/f{i:05d}": f"{i}".encode() for i in range(5000)}
    before.update({"keep.txt": b"k", "mod.txt": b"old", "gone.txt": b"bye", "ren.txt": b"same"})
    after = {k: v for k, v in before.items() if k not in ("gone.txt", "ren.txt")}
    after.update({"mod.txt": b"newer", "moved/ren.txt": b"same", "many/f02500": b"changed"})
    after.update({f"added/a{i}": b"a" * i for i in range(30)})
    a, b = _tree(bare, before), _tree(bare, after)
    s = changes.summarize(bare.store, a, b)
    assert s.complete and (s.modified, s.renamed) == (2, 1)
    assert (s.added, s.removed) == (trees.Count(30), trees.Count(1))
    assert s.bytes_added == sum(range(30)) and s.bytes_removed == 3
    assert s.delta_modified == 2 + len(b"changed") - len(b"2500")
    assert {c.path for c in s.listed.changes if c.status == "R"} == {"moved/ren.txt"}
    # from nothing, with a small listing limit: listed 100, the rest counted from the trees
    first = changes.summarize(bare.store, None, a, limit=100)
    assert not first.complete and len(first.listed.changes) == 100
    assert first.added == trees.Count(5004) and first.bytes_added == trees.tree_bytes(bare.store, a)
    assert changes.summarize(bare.store, a, a).empty


def _sig() -> Signature:
    return Signature("A", "a@x", 1_700_000_000)


def test_svg_graph_escapes_titles_and_links_nodes() -> None:
    parents = {"m": ("a", "b", "c"), "a": ("r",), "b": ("r",), "c": ("r",), "r": ()}
    rows = render_graph(["m", "c", "b", "a", "r"], lambda h: parents[h])
    svg = render_svg(rows, lambda h: Node(f"/v/{h}?x=1&y=2", f'<{h}> "t"', h == "m"))
    assert svg.count("<circle") == 5 and svg.count('fill="#fff"') == 1
    assert "&lt;m&gt; &#34;t&#34;" in svg and "<m>" not in svg
    assert 'href="/v/m?x=1&amp;y=2"' in svg
    assert svg.count("<path") >= 10


def test_metadata_search_matching() -> None:
    meta = {"rows": 12, "split": {"eval": {"seed": 7}}, "tags": ["a", "b"], "empty": {}}
    assert dict(flat_metadata(meta)) == {
        "rows": 12,
        "split.eval.seed": 7,
        "tags": ["a", "b"],
        "empty": {},
    }
    c = Commit(ObjectId(bytes(32)), (), _sig(), _sig(), "Nightly export\n", meta)
    assert matches(c, [], "nightly") == "message"
    assert matches(c, [], "rows=12") == "metadata rows = 12"
    assert matches(c, [], "split.eval.seed=7") is not None
    assert matches(c, [], "rows=13") is None
    assert matches(c, ["tag: v1"], "V1") == "tag: v1"
    assert matches(c, [], "seed") == "metadata key split.eval.seed"
    assert matches(c, [], '["a", "b"]') == "metadata tags"


def test_human_sizes() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 1536 * 1024, 5 << 40)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 MiB",
        "5.0 TiB",
    ]
