"""The web view over HTTP (uvicorn on 127.0.0.1): every page's content, escaping, stable URLs,
404s, and raw downloads with byte ranges."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest

from dsrepo import Repository
from dsrepo.server.web import pages
from dsrepo.server.web.urls import enc_path, enc_rev
from tests.web.conftest import BIG_FOLDER, HOSTILE, LARGE, Served, pseudo_random


def _links(page: str, prefix: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page) if h.startswith(prefix)]


def test_home_lists_branches_tags_and_latest_versions(served: Served) -> None:
    page = served.page("/")
    for branch in ("main", "feature/x", "b1", "b2", "b3"):
        assert f">{branch}</a>" in page
    assert "/log/feature%2Fx" in page
    assert "first release &lt;i&gt;x&lt;/i&gt;" in page  # a tag message, escaped
    assert "second release" in page and "lightweight tag" in page
    assert "Ada Lovelace" in page  # the tagger
    assert "2025-11-01 13:26:40 +0000" in page  # the first version's date
    assert "bulk: many small files" in page and "octopus: b1 b2 b3" in page


def test_history_draws_the_graph_as_svg_with_a_node_per_version(served: Served) -> None:
    page = served.page("/log")
    svg = page[page.index("<svg") : page.index("</svg>")]
    ids = served.sample.ids
    assert svg.count("<circle") == len(ids)
    for h in ids.values():
        assert f'href="/v/{h}"' in svg
    # merges are rings (white fill); the octopus has a row of dashes in the text layout
    assert svg.count('fill="#fff"') == 2
    assert page.count('class="row commit"') == len(ids)


def test_history_of_a_branch_with_a_slash_and_its_pages(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = served.page("/log/" + enc_rev("feature/x"))
    assert "History of <code>feature/x</code>" in page
    assert page.count("<circle") == 2  # feature, raw
    monkeypatch.setattr(pages, "LOG_PAGE", 3)
    first, second = served.page("/log"), served.page("/log?page=2")
    assert "page 1 of 4" in first
    assert "/log?page=2" in first and "/log?page=1" not in second
    assert first.count("<circle") == 3 and second.count("<circle") == 3
    assert served.page("/log?page=99").count("<circle") == len(served.sample.ids) - 9
    assert served.page("/log?page=x").count("<circle") == 3


def test_a_merge_version_shows_parents_metadata_and_changes_per_parent(served: Served) -> None:
    ids = served.sample.ids
    page = served.page(f"/v/{ids['octopus']}")
    assert "octopus: b1 b2 b3" in page and "tag: v2" in page
    for n in ("main2", "b1", "b2", "b3"):
        assert f'href="/v/{ids[n]}"' in page
    for n in range(1, 5):
        assert f"Against parent {n}:" in page
    assert f'href="/compare/{ids["b1"]}...{ids["octopus"]}"' in page
    section = page[page.index("Against parent 1:") : page.index("Against parent 2:")]
    assert re.search(r'<b class="n-added">3</b> added', section)
    for path in ("images/c02/a.png", "labels/eval.csv", "notes.txt"):
        assert f'href="/blob/{ids["octopus"]}/{path}"' in section


def test_a_version_page_renders_metadata_code_and_totals(served: Served) -> None:
    ids = served.sample.ids
    page = served.page(f"/v/{ids['raw']}")
    assert "raw images" in page and "First import from the camera." in page
    assert "Against an empty repository" in page
    assert "<th>split</th>" in page and "<th>seed</th>" in page and "<th>eval</th>" in page
    assert "&lt;b&gt;mallory&lt;/b&gt;" in page and "<b>mallory" not in page
    assert "git commit <code>0123456789abcdef0123456789abcdef01234567</code>" in page
    repo = Repository.open(served.sample.root)
    try:
        counts = {n: len(repo.ls(ids[n])) for n in ("raw", "bulk")}
        size = sum(f.size for f in repo.ls(ids["raw"]))
    finally:
        repo.close()
    files = re.search(r'<span class="files">([^<]+)</span> files', page)
    assert files is not None and files.group(1) == f"{counts['raw']:,}"
    assert f'title="{size:,} bytes"' in page
    # the bulk version adds a sharded folder: counted from the trees, exactly
    bulk = served.page(f"/v/{ids['bulk']}")
    assert re.search(rf'<b class="n-added">{BIG_FOLDER:,}</b> added', bulk)
    assert f'<span class="files">{counts["bulk"]:,}</span> files' in bulk


def test_version_page_of_a_rename(served: Served) -> None:
    page = served.page(f"/v/{served.sample.ids['renamed']}")
    assert re.search(r'<b class="n-renamed">1</b> renamed', page)
    assert ">notes.txt</a> → <a" in page and ">docs/notes.txt</a>" in page


def test_the_file_browser_pages_a_sharded_folder(served: Served) -> None:
    repo = Repository.open(served.sample.root)
    try:
        many = repo.resolve("main:many")
        assert repo.store.get_tree(many.id).shards, "the folder should be sharded"
    finally:
        repo.close()
    root = served.page("/tree/main")
    assert 'href="/tree/main/many"' in root and 'href="/blob/main/README.md"' in root
    page = served.page("/tree/main/many")
    assert page.count('<tr class="file">') == 500
    assert "f00000.txt" in page and "f00499.txt" in page and "f00500.txt" not in page
    assert f"{BIG_FOLDER:,} entries" in page and "page 1 of 10" in page
    last = served.page("/tree/main/many?page=10")
    assert "f04999.txt" in last and "f04500.txt" in last and "f04499.txt" not in last
    assert served.page("/tree/main/many?page=11") == last


def test_a_file_inside_a_sharded_folder_and_redirects(served: Served) -> None:
    page = served.page("/blob/main/many/f04321.txt")
    assert "file 4321" in page
    status, headers, _ = served.get("/tree/main/README.md")
    assert status == 302 and headers["location"] == "/blob/main/README.md"
    status, headers, _ = served.get("/blob/main/labels")
    assert status == 302 and headers["location"] == "/tree/main/labels"


def test_hostile_names_are_escaped_and_their_links_work(served: Served) -> None:
    page = served.page("/tree/main/odd")
    assert "<img src=x" not in page
    assert html.escape(HOSTILE, quote=False).replace('"', "&#34;") in page
    link = f"/blob/main/odd/{enc_path(HOSTILE)}"
    assert link in page
    assert "hostile name" in served.page(link)
    status, _, body = served.get(f"/raw/main/odd/{quote(HOSTILE, safe='')}")
    assert status == 200 and body == b"hostile name\n"


def test_previews(served: Served) -> None:
    csv_page = served.page("/blob/main/labels/train.csv")
    assert "<th>label</th>" in csv_page and "<td>dog</td>" in csv_page
    assert "<code>float</code>" in csv_page and "3 rows shown of 3" in csv_page
    json_page = served.page("/blob/main/meta/info.json")
    assert 'class="hl"' in json_page and '<span class="nt">"classes"</span>' in json_page
    assert "JSON" in json_page
    md = served.page("/blob/main/README.md")
    assert "A dataset of cats, cleaned." in md
    binary = served.page("/blob/main/big/large.bin")
    assert "Binary file: first 512 bytes" in binary and "chunks" in binary
    assert served.page("/blob/main/data/empty.txt").count("Empty file.") == 1
    img = served.page("/blob/main/images/c01/cat.png")
    ids = served.sample.ids
    assert f'<img class="image" src="/raw/{ids["bulk"]}/images/c01/cat.png"' in img


def test_parquet_preview(served: Served) -> None:
    pytest.importorskip("pyarrow", reason="pyarrow (the parquet extra) is not installed")
    page = served.page("/blob/main/tables/t.parquet")
    assert "<code>int64</code>" in page and "<code>double</code>" in page
    assert "<td>&lt;b&gt;</td>" in page and "3 rows in 1 row group(s)" in page


def test_raw_serves_ranges_over_chunk_boundaries(served: Served) -> None:
    data = pseudo_random(LARGE)
    url = "/raw/main/big/large.bin"
    status, headers, body = served.get(url)
    assert status == 200 and body == data
    assert headers["accept-ranges"] == "bytes" and headers["content-length"] == str(LARGE)
    etag = headers["etag"]
    for header, start, end in [
        ("bytes=0-9", 0, 10),
        ("bytes=1048570-1048580", 1048570, 1048581),
        ("bytes=1000000-", 1000000, LARGE),
        ("bytes=-100", LARGE - 100, LARGE),
        (f"bytes=5-{LARGE * 2}", 5, LARGE),
    ]:
        status, headers, body = served.get(url, {"Range": header})
        assert status == 206, header
        assert headers["content-range"] == f"bytes {start}-{end - 1}/{LARGE}"
        assert body == data[start:end], header
    status, headers, _ = served.get(url, {"Range": f"bytes={LARGE}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{LARGE}"
    status, _, body = served.get(url, {"Range": "bytes=0-1,5-6"})  # several: whole file
    assert status == 200 and len(body) == LARGE
    status, _, body = served.get(url, {"Range": "bytes=0-9", "If-Range": '"other"'})
    assert status == 200 and len(body) == LARGE
    status, headers, body = served.get(url, method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(LARGE)
    status, _, _ = served.get(url, {"If-None-Match": etag})
    assert status == 304


def test_polars_reads_parquet_over_http_with_ranges(served: Served) -> None:
    pytest.importorskip("pyarrow", reason="pyarrow (the readers extra) is not installed")
    pl = pytest.importorskip("polars", reason="polars (the readers extra) is not installed")
    before = len(served.ranges)
    frame = pl.scan_parquet(f"{served.url}/raw/main/tables/t.parquet").select("name").collect()
    assert frame["name"].to_list() == ["a", "<b>", "c"]
    assert served.ranges[before:], "polars read the file by byte ranges"


def test_raw_content_types_are_safe(served: Served) -> None:
    _, headers, _ = served.get("/raw/main/images/c01/cat.png")
    assert (
        headers["content-type"] == "image/png" and "sandbox" in headers["content-security-policy"]
    )
    _, headers, _ = served.get(f"/raw/main/odd/{quote(HOSTILE, safe='')}")
    assert headers["content-type"].startswith("text/plain")
    assert headers["x-content-type-options"] == "nosniff"
    _, headers, _ = served.get("/raw/main/README.md?download=1")
    assert headers["content-disposition"].startswith("attachment;")


def test_compare_two_revisions(served: Served) -> None:
    page = served.page("/compare/v1...main")
    assert re.search(r'<span class="total">([^<]+)</span> files changed', page)
    assert re.search(rf'<b class="n-added">{BIG_FOLDER + 4:,}</b> added', page)
    assert re.search(r'<b class="n-removed">1</b> removed', page)
    assert "data/blob.bin" in page and "README.md" in page
    other = served.page(f"/compare/v1...{enc_rev('feature/x')}")
    assert "labels/extra.csv" in other and "README.md" not in other
    status, headers, _ = served.get("/compare?a=v1&b=feature/x")
    assert status == 303 and headers["location"] == "/compare/v1...feature%2Fx"
    assert "Compare" in served.page("/compare")


def test_search_by_message_tag_and_metadata(served: Served) -> None:
    ids = served.sample.ids

    def found(q: str) -> set[str]:
        page = served.page("/search?" + f"q={quote(q)}")
        return {h for h in ids.values() if f'href="/v/{h}"' in page}

    assert found("octopus") == {ids["octopus"]}
    assert found("v2") == {ids["octopus"]}
    assert found("first release") == {ids["raw"]}  # a tag's message
    assert found("rows=1204") == {ids["raw"]}
    assert found("split.eval.seed=7") == {ids["raw"]}
    assert found("rows") == {ids["raw"], ids["renamed"]}
    assert found("nothing matches this") == set()
    assert '<span class="count">0</span> versions match' in served.page("/search?q=zzzz")


@pytest.mark.parametrize(
    "path",
    [
        "/v/nope",
        "/v/main:README.md",
        "/tree/main/no/such/folder",
        "/blob/main/nope.txt",
        "/raw/main/labels",
        "/log/nope",
        "/compare/v1",
        "/compare/v1...nope",
    ],
)
def test_missing_things_are_404_pages(served: Served, path: str) -> None:
    status, headers, body = served.get(path)
    assert status == 404, path
    assert "Not found" in body.decode()
    assert "default-src 'none'" in headers["content-security-policy"]


def test_every_page_forbids_scripts(served: Served) -> None:
    for path in ("/", "/log", "/tree/main", "/blob/main/README.md", "/search?q=a"):
        status, headers, body = served.get(path)
        assert status == 200
        assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
        assert "<script" not in body.decode()
    status, headers, body = served.get("/static/style.css")
    assert status == 200 and headers["content-type"].startswith("text/css") and b".hl" in body
