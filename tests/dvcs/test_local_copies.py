"""``get``'s local copies (issue 8): every revision form, read-only files linked from the user
cache (a second copy of a version downloads and stores nothing), reused folders made exactly the
version, the remote unreachable, and ``cache ls``/``cache prune`` (safe beside a running get)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import dsrepo
from dsrepo import Repository, UnknownRevision, WouldOverwrite
from dsrepo.dvcs import getfolder
from dsrepo.dvcs.errors import NotARepository
from dsrepo.dvcs.getcache import get as get_version
from dsrepo.dvcs.lock import gc_lock
from dsrepo.objects import locindex
from dsrepo.objects.model import TreeEntry
from tests.dvcs.conftest import write


@pytest.fixture
def remote(tmp_path: Path, identity: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A directory remote with main = [v1: first, second]; returns url and commit ids."""
    monkeypatch.setenv("DSREPO_CACHE_DIR", str(tmp_path / "cache"))
    repo = Repository.init(tmp_path / "data")
    write(repo.root, "labels.csv", "id,label\n")
    write(repo.root, "images/a.bin", b"A" * 3000)
    write(repo.root, "run.sh", "#!/bin/sh\necho hi\n")
    os.chmod(repo.root / "run.sh", 0o755)
    os.symlink("labels.csv", repo.root / "link.csv")
    repo.add(".")
    first = repo.commit("first").id
    repo.tag("v1")
    url = str(tmp_path / "remote")
    repo.remote_add("origin", url)
    assert repo.push("origin", tags=True).ok  # two pushes: the versions' data in two packs
    write(repo.root, "labels.csv", "id,label\n1,cat\n")
    write(repo.root, "images/b.bin", b"B" * 5000)
    repo.add(".")
    second = repo.commit("second").id
    assert repo.push("origin").ok
    repo.close()
    return {"url": url, "first": first.hex(), "second": second.hex()}


def files(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath, n)
            rel = p.relative_to(root).as_posix()
            out[rel] = os.readlink(p).encode() if p.is_symlink() else p.read_bytes()
    return out


@pytest.mark.parametrize(
    ("rev", "want"),
    [
        (None, "second"),
        ("latest", "second"),
        ("HEAD", "second"),
        ("main", "second"),
        ("main~1", "first"),
        ("v1", "first"),
        ("v1^{commit}", "first"),
        ("short-first", "first"),
        ("full-second", "second"),
    ],
)
def test_every_revision_form(
    rev: str | None, want: str, remote: dict[str, str], tmp_path: Path
) -> None:
    if rev == "short-first":
        rev = remote["first"][:10]
    elif rev == "full-second":
        rev = remote["second"]
    got = Repository.get(remote["url"], tmp_path / "job", rev=rev)
    assert got.commit is not None and got.commit.hex() == remote[want]
    expected = b"id,label\n" if want == "first" else b"id,label\n1,cat\n"
    assert (tmp_path / "job" / "labels.csv").read_bytes() == expected


def test_unknown_revision_is_exit_4(remote: dict[str, str], tmp_path: Path) -> None:
    for rev in ("v9", "main~5", "abcdef012345", "main:labels.csv"):
        with pytest.raises(UnknownRevision) as info:
            Repository.get(remote["url"], tmp_path / "job", rev=rev)
        assert info.value.exit_code == 4
    assert not (tmp_path / "job").exists()


def test_second_copy_links_and_downloads_nothing(remote: dict[str, str], tmp_path: Path) -> None:
    one = Repository.get(remote["url"], tmp_path / "one")
    assert one.downloaded > 0 and len(one.written) == 5
    two = Repository.get(remote["url"], tmp_path / "two", rev="main")
    assert two.downloaded == 0 and two.linked == 4  # the symlink is a symlink
    assert files(tmp_path / "one") == files(tmp_path / "two")
    a, b = (tmp_path / "one" / "images/b.bin").stat(), (tmp_path / "two" / "images/b.bin").stat()
    if two.methods.get("hardlink"):
        assert (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)
    assert stat.S_IMODE(b.st_mode) == 0o444
    assert stat.S_IMODE((tmp_path / "two" / "run.sh").stat().st_mode) == 0o555
    assert (tmp_path / "two" / "link.csv").is_symlink()
    # the same version again into the same folder: nothing to do
    again = Repository.get(remote["url"], tmp_path / "two")
    assert again.written == [] and again.kept == 5 and again.removed == []


@pytest.mark.parametrize("link", ["hardlink", "copy"])
def test_link_methods(link: str, remote: dict[str, str], tmp_path: Path) -> None:
    Repository.get(remote["url"], tmp_path / "one")
    got = Repository.get(remote["url"], tmp_path / "two", link=link)
    assert got.methods == {link: 4}
    cached = Path(os.environ["DSREPO_CACHE_DIR"]) / "files"
    st = (tmp_path / "two" / "labels.csv").stat()
    shared = any(
        (p.stat().st_ino, p.stat().st_dev) == (st.st_ino, st.st_dev) for p in cached.rglob("*")
    )
    assert shared == (link == "hardlink")
    assert stat.S_IMODE(st.st_mode) == 0o444


def test_copy_gives_writable_files_of_their_own(remote: dict[str, str], tmp_path: Path) -> None:
    Repository.get(remote["url"], tmp_path / "ro")
    got = Repository.get(remote["url"], tmp_path / "rw", copy=True)
    assert got.methods.get("hardlink") is None
    target = tmp_path / "rw" / "labels.csv"
    assert os.access(target, os.W_OK) and stat.S_IMODE(target.stat().st_mode) & 0o200
    target.write_text("mine\n")
    assert (tmp_path / "ro" / "labels.csv").read_text() == "id,label\n1,cat\n"
    with pytest.raises(dsrepo.PathError):
        Repository.get(remote["url"], tmp_path / "x", copy=True, link="hardlink")
    assert not (tmp_path / "x").exists()


def test_a_reused_folder_ends_exactly_the_version(remote: dict[str, str], tmp_path: Path) -> None:
    job = tmp_path / "job"
    Repository.get(remote["url"], job)
    older = Repository.get(remote["url"], job, rev="v1")
    assert older.removed == ["images/b.bin"]  # stale: said, and gone
    assert sorted(older.written) == ["labels.csv"] and older.kept == 3
    assert set(files(job)) == {"labels.csv", "images/a.bin", "run.sh", "link.csv"}
    # a file get did not write, or one changed since, is refused before any change
    write(job, "notes.txt", "mine")
    (job / "labels.csv").unlink()
    write(job, "labels.csv", "edited")
    with pytest.raises(WouldOverwrite) as info:
        Repository.get(remote["url"], job, rev="main")
    assert info.value.exit_code == 6
    assert "labels.csv" in str(info.value) and "notes.txt" in str(info.value)
    assert (job / "notes.txt").exists() and not (job / "images/b.bin").exists()
    forced = Repository.get(remote["url"], job, rev="main", force=True)
    assert "notes.txt" in forced.removed
    assert set(files(job)) == {"labels.csv", "images/a.bin", "images/b.bin", "run.sh", "link.csv"}


def test_a_folder_not_made_by_get_must_be_empty(remote: dict[str, str], tmp_path: Path) -> None:
    job = tmp_path / "job"
    write(job, "other.txt", "x")
    with pytest.raises(WouldOverwrite):
        Repository.get(remote["url"], job)
    assert files(job) == {"other.txt": b"x"}


def test_a_write_through_a_hard_link_never_reaches_the_next_copy(
    remote: dict[str, str], tmp_path: Path
) -> None:
    one = Repository.get(remote["url"], tmp_path / "one", link="hardlink")
    assert one.methods == {"hardlink": 4}
    victim = tmp_path / "one" / "labels.csv"
    os.chmod(victim, 0o644)  # what a careless job (or root) can do
    victim.write_text("corrupted\n")
    Repository.get(remote["url"], tmp_path / "two")
    assert (tmp_path / "two" / "labels.csv").read_text() == "id,label\n1,cat\n"


def test_unreachable_remote_serves_the_cache_with_a_warning(
    remote: dict[str, str], tmp_path: Path
) -> None:
    Repository.get(remote["url"], tmp_path / "one", rev="v1")
    os.rename(remote["url"], remote["url"] + ".away")
    got = Repository.get(remote["url"], tmp_path / "two", rev="v1")
    assert got.warning and "unreachable" in got.warning
    assert files(tmp_path / "two") == files(tmp_path / "one")
    with pytest.raises(dsrepo.BackendError):  # main's new file was never fetched
        Repository.get(remote["url"], tmp_path / "three", rev="main")


def test_get_local_copy(remote: dict[str, str], tmp_path: Path) -> None:
    path = dsrepo.get_local_copy(remote["url"], "v1")
    assert Path(os.environ["DSREPO_CACHE_DIR"]) in path.parents
    assert (path / "labels.csv").read_text() == "id,label\n"
    assert dsrepo.get_local_copy(remote["url"], remote["first"][:8]) == path
    mine = dsrepo.get_local_copy(remote["url"], "main", tmp_path / "mine")
    assert mine == (tmp_path / "mine").absolute()


def test_cache_ls_and_prune(remote: dict[str, str], tmp_path: Path) -> None:
    Repository.get(remote["url"], tmp_path / "old", rev="v1")
    Repository.get(remote["url"], tmp_path / "new", rev="main")
    held = dsrepo.cache_entries()
    assert [e.commit.hex() for e in held] == [remote["second"], remote["first"]]
    assert held[0].files == 4 and held[0].bytes > 8000
    old = Path(os.environ["DSREPO_CACHE_DIR"]) / "entries" / f"{held[1].key}.json"
    os.utime(old, (time.time() - 86400 * 3, time.time() - 86400 * 3))
    report = Repository.cache_prune(older_than="2d", dry_run=True)
    assert [e.rev for e in report.removed] == ["v1"] and len(dsrepo.cache_entries()) == 2
    report = Repository.cache_prune(older_than="2d")
    assert [e.rev for e in report.removed] == ["v1"]
    assert [e.rev for e in dsrepo.cache_entries()] == ["main"]
    # what the kept version does not use left the file area (a.bin stays: main has it too)
    area = Path(os.environ["DSREPO_CACHE_DIR"]) / "files"
    assert len([p for p in area.rglob("*") if p.is_file()]) == 4
    report = Repository.cache_prune(max_size="1K")
    assert [e.rev for e in report.removed] == ["main"] and dsrepo.cache_entries() == []
    assert report.bytes_after < report.bytes_before
    assert not [p for p in area.rglob("*") if p.is_file()]
    # the copies already made are untouched; a new one downloads again
    assert (tmp_path / "new" / "images/b.bin").read_bytes() == b"B" * 5000
    again = Repository.get(remote["url"], tmp_path / "again", rev="v1")
    assert again.downloaded > 0


READER = """
import sys, time
from pathlib import Path
from dsrepo.dvcs.lock import gc_lock
with gc_lock(Path(sys.argv[1])).shared(None):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_prune_waits_for_a_running_get(remote: dict[str, str], tmp_path: Path) -> None:
    Repository.get(remote["url"], tmp_path / "one")
    dsdir = Path(os.environ["DSREPO_CACHE_DIR"]) / ".dsrepo"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(dsdir), "1.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "holding"
        start = time.monotonic()
        report = Repository.cache_prune(max_size=0)
        assert time.monotonic() - start > 1.0  # it waited for the reader to let go
        assert len(report.removed) == 1
    finally:
        reader.wait(10)


def test_cli(remote: dict[str, str], tmp_path: Path) -> None:
    from dsrepo.cli.main import cli

    runner = CliRunner()
    r = runner.invoke(cli, ["get", remote["url"], str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        cli, ["get", "--link", "copy", f"{remote['url']}@main~1", str(tmp_path / "a")]
    )
    assert r.exit_code == 0, r.output
    assert "removed stale images/b.bin" in r.output, r.output
    assert "1 by copy" in r.output and "1 removed" in r.output and "downloaded 0 B" in r.output
    r = runner.invoke(cli, ["cache", "ls"])
    assert r.exit_code == 0 and r.output.count(remote["url"]) == 2, r.output
    r = runner.invoke(cli, ["cache", "prune"])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["cache", "prune", "--max-size", "lots"])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["cache", "prune", "--max-size", "0"])
    assert r.exit_code == 0 and r.output.count("removed  ") == 2, r.output


GETTER = """
import sys
from dsrepo import Repository
for i in range(int(sys.argv[3])):
    Repository.get(sys.argv[1], f"{sys.argv[2]}-{i}", rev="main" if i % 2 else "v1")
print("ok", flush=True)
"""


def test_gets_and_prunes_at_once_leave_every_copy_whole(
    remote: dict[str, str], tmp_path: Path
) -> None:
    """Processes getting versions while this one prunes the cache again and again: every get
    succeeds and every folder holds its version, whatever the interleaving."""
    getters = [
        subprocess.Popen(
            [sys.executable, "-c", GETTER, remote["url"], str(tmp_path / f"g{n}"), "6"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    try:
        while any(g.poll() is None for g in getters):
            Repository.cache_prune(max_size=0)
    finally:
        outs = [g.communicate(timeout=120) for g in getters]
    for g, (out, err) in zip(getters, outs, strict=True):
        assert g.returncode == 0 and out.strip() == "ok", err
    for n in range(2):
        for i in range(6):
            got = files(tmp_path / f"g{n}-{i}")
            assert got["labels.csv"] == (b"id,label\n1,cat\n" if i % 2 else b"id,label\n")
            assert got["images/a.bin"] == b"A" * 3000
            assert ("images/b.bin" in got) == bool(i % 2)


def test_reflink_is_used_where_the_filesystem_clones_else_refused(
    remote: dict[str, str], tmp_path: Path
) -> None:
    Repository.get(remote["url"], tmp_path / "one")
    try:
        got = Repository.get(remote["url"], tmp_path / "two", link="reflink")
    except dsrepo.PathError as exc:  # this filesystem cannot clone: said, nothing placed
        assert exc.exit_code == 9 and "reflink" in str(exc)
        assert not (tmp_path / "two" / "labels.csv").exists()
    else:
        assert got.methods == {"reflink": 4} and got.linked == 4
        assert files(tmp_path / "two") == files(tmp_path / "one")


def test_the_cache_made_by_another_get_meanwhile_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A get sees no cache, another process creates it, then this one's init finds it: the
    cache is opened, not refused with AlreadyARepository."""
    root = tmp_path / "cache"
    Repository.init(root).close()  # what the other process made
    real_open = Repository.open.__func__  # type: ignore[attr-defined]
    calls: list[int] = []

    def open_late(cls: type[Repository], path: Path, **kw: bool) -> Repository:
        calls.append(1)
        if len(calls) == 1:  # looked before the other process had finished
            raise NotARepository(f"not a dsrepo repository: {path}")
        return real_open(cls, path, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr(Repository, "open", classmethod(open_late))
    with Repository._open_cache(root) as cache:
        assert cache.root == root and len(calls) == 2


def _stale_packs(cache: Path) -> set[str]:
    """Packs the cache's shared location index lists whose index file is gone."""
    with sqlite3.connect(cache / ".dsrepo" / "cache" / "objects.sqlite") as db:
        listed = {r[0] for r in db.execute("SELECT name FROM packs")}
    return {n for n in listed if not (cache / ".dsrepo" / "packs" / f"{n}.idx").exists()}


def test_a_prune_after_a_get_opened_the_cache_never_breaks_that_get(
    remote: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving behind the flaky test above, forced: a get opens the cache (its location
    index synced with the packs); a prune whose own open lost the race to create the location
    index (``UNIQUE constraint failed: meta.key``: it fell back to read-only, then to memory)
    evicts everything, and its gc deletes the packs while the shared index keeps their rows; the
    get, trusting them, copied nothing and failed ("the remote is damaged: ... not found"). Now
    a get holds the cache's gc lock before it opens the cache, so the prune comes after it."""
    cache = Path(os.environ["DSREPO_CACHE_DIR"])
    Repository.get(remote["url"], tmp_path / "first", rev="main")
    real_check = locindex._check_schema
    lost: list[bool] = []

    def lost_the_race(db: sqlite3.Connection, *, create: bool) -> None:
        file = db.execute("PRAGMA database_list").fetchone()[2]
        if not lost and file.endswith("objects.sqlite"):
            lost.append(True)  # another process created the schema between our look and ours
            raise sqlite3.IntegrityError("UNIQUE constraint failed: meta.key")
        real_check(db, create=create)

    def prune() -> None:
        with monkeypatch.context() as m:
            m.setattr(locindex, "_check_schema", lost_the_race)
            report = Repository.cache_prune(max_size=0)
        assert lost and len(report.removed) == 1
        assert _stale_packs(cache)  # what the shared index still lists: deleted packs

    waited: list[bool] = []

    def open_then_prune(root: Path) -> Repository:
        opened = Repository._open_cache(root)
        if gc_lock(opened.dsdir).held_here():
            waited.append(True)  # the get keeps prunes out already: this one waits for it
        else:
            prune()  # nothing keeps it out between this open and the get's use of the cache
        return opened

    got = get_version(open_then_prune, remote["url"], tmp_path / "job", rev="main")
    assert got.commit is not None and got.commit.hex() == remote["second"]
    assert files(tmp_path / "job") == files(tmp_path / "first")
    assert waited and not lost
    prune()  # what waited for the get
    # and a get opening the cache after such a prune does not trust the deleted packs' rows
    again = Repository.get(remote["url"], tmp_path / "again", rev="main")
    assert again.downloaded > 0 and files(tmp_path / "again") == files(tmp_path / "first")
    assert not _stale_packs(cache)


def test_get_and_prune_open_the_cache_only_under_its_gc_lock(
    remote: dict[str, str], tmp_path: Path
) -> None:
    """No pack of the cache is deleted while a get has it open, and a prune never opens it while
    a get runs: the sync of the location index that opening does runs under the lock."""
    held: list[str | None] = []

    def opener(root: Path) -> Repository:
        held.append(gc_lock(root.absolute() / ".dsrepo").held_here())
        return Repository._open_cache(root)

    get_version(opener, remote["url"], tmp_path / "job")  # the cache does not exist yet
    get_version(opener, remote["url"], tmp_path / "job2", rev="v1")
    from dsrepo.dvcs.usercache import prune

    prune(opener, max_size=0)
    assert held == ["shared", "shared", "exclusive"]


def test_an_area_file_renamed_over_while_it_is_linked_is_linked_again(
    remote: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other interleaving behind the flaky test above: two gets of one version right after
    a prune both find an area file absent, both write it, and the second renames its copy over
    the first's while the first links it; the kernel refuses to link an inode whose last name
    just went (ENOENT), and the get failed. Forced here: each area file the get found has lost
    its name when the get links it. The get looks again, and places a whole version."""
    real_area_file = getfolder._area_file
    gone: list[str] = []

    def renamed_over(cache: Repository, area: object, e: TreeEntry, path: str) -> Path:
        full = real_area_file(cache, area, e, path)  # type: ignore[arg-type]
        if path not in gone:  # once per file: what a concurrent get's rename leaves the link
            gone.append(path)
            full.unlink()
        return full

    with monkeypatch.context() as m:
        m.setattr(getfolder, "_area_file", renamed_over)
        got = Repository.get(remote["url"], tmp_path / "job", link="hardlink")
    assert sorted(gone) == ["images/a.bin", "images/b.bin", "labels.csv", "run.sh"]
    assert got.methods == {"hardlink": 4}
    area = Path(os.environ["DSREPO_CACHE_DIR"]) / "files"
    for p in gone:
        st = (tmp_path / "job" / p).stat()
        assert st.st_nlink == 2  # linked from the area file written again
        assert any(f.stat().st_ino == st.st_ino for f in area.rglob("*") if f.is_file())
    again = Repository.get(remote["url"], tmp_path / "again")
    assert again.downloaded == 0 and files(tmp_path / "again") == files(tmp_path / "job")
