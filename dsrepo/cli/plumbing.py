"""Plumbing: small, scriptable, stable commands over objects and refs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import click

from dsrepo import (
    Commit,
    EntryKind,
    FileRef,
    IntegrityError,
    Manifest,
    ObjectId,
    Repository,
    Tag,
    Tree,
    TreeEntry,
)
from dsrepo.cli.app import UTF8, cli, is_quiet, open_repo
from dsrepo.cli.output import Progress, human, write_stdout


@cli.command("hash-object")
@click.option("-w", "write", is_flag=True, help="Store the content in the repository.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
def hash_object(write: bool, files: tuple[str, ...]) -> None:
    """Print the content id (BLAKE3) of FILE(s); with -w also store them."""
    from dsrepo import hash_bytes, hash_file

    repo = open_repo() if write else None
    sources = (sys.stdin.buffer.read() if f == "-" else f for f in files)
    refs: Iterator[FileRef]
    if repo is not None:
        refs = repo.hash_objects(sources, write=True)
    else:
        refs = (hash_bytes(s) if isinstance(s, bytes) else hash_file(s) for s in sources)
    for ref in refs:
        click.echo(ref.content_id.hex())


def _entry_line(e: TreeEntry, path: str, long: bool) -> str:
    kind = {
        EntryKind.FILE: "file",
        EntryKind.EXECUTABLE: "exec",
        EntryKind.SYMLINK: "link",
        EntryKind.TREE: "tree",
    }[e.kind]
    size = f" {e.size:>12}" if long else ""
    return f"{kind} {e.id.hex()}{size}\t{path}"


def _pretty(obj: Commit | Tag | Tree | Manifest) -> str:
    if isinstance(obj, Commit):
        lines = [f"tree {obj.tree.hex()}"] + [f"parent {p.hex()}" for p in obj.parents]
        for role, s in (("author", obj.author), ("committer", obj.committer)):
            lines.append(f"{role} {s.name} <{s.email}> {s.time} {s.format_tz()}")
        if obj.metadata:
            lines.append("metadata " + json.dumps(obj.metadata, sort_keys=True))
        return "\n".join(lines) + "\n\n" + obj.message
    if isinstance(obj, Tag):
        s = obj.tagger
        return (
            f"object {obj.target.hex()}\ntype {obj.target_type.label}\ntag {obj.name}\n"
            f"tagger {s.name} <{s.email}> {s.time} {s.format_tz()}\n\n{obj.message}"
        )
    if isinstance(obj, Tree):
        if obj.shards:
            return "".join(f"shard {r.id.hex()} {r.count:>8} {r.first_name}\n" for r in obj.shards)
        return "".join(_entry_line(e, e.name, True) + "\n" for e in obj.entries)
    head = f"content {obj.content_id.hex()}\nsize {obj.size}\n"
    return head + "".join(f"chunk {c.hex()} {n}\n" for c, n in obj.chunks)


def _print_object(repo: Repository, oid: ObjectId) -> None:
    obj = repo.get_object(oid)
    if isinstance(obj, bytes):  # a chunk
        sys.stdout.buffer.write(obj)
    else:
        click.echo(_pretty(obj), nl=False)


@cli.command("cat-file")
@click.option("-t", "show_type", is_flag=True, help="Print the object's type.")
@click.option("-s", "show_size", is_flag=True, help="Print the object's size.")
@click.option("-p", "pretty", is_flag=True, help="Print the object's content.")
@click.argument("rev")
def cat_file(show_type: bool, show_size: bool, pretty: bool, rev: str) -> None:
    """Show an object (by id, prefix or revision): its type, size or content."""
    if sum((show_type, show_size, pretty)) != 1:
        raise click.UsageError("give exactly one of -t, -s, -p")
    repo = open_repo()
    r = repo.resolve(rev)
    file = r.entry if r.entry is not None and r.entry.kind != EntryKind.TREE else None
    if pretty:
        if file is not None:
            write_stdout(repo.read_file(file))
        else:
            _print_object(repo, r.id)
    elif show_type:
        click.echo("file" if file is not None else r.type.label)
    else:
        click.echo(str(file.size if file is not None else repo.object_size(r.id)))


@cli.command("ls-tree")
@click.option("-r", "recursive", is_flag=True, help="Recurse into subtrees.")
@click.option("-l", "long", is_flag=True, help="Show sizes.")
@click.argument("rev")
@click.argument("path", required=False)
def ls_tree(recursive: bool, long: bool, rev: str, path: str | None) -> None:
    """List the entries of the tree of REV (optionally under PATH)."""
    for p, e in open_repo().ls_tree(rev, path, recursive=recursive):
        click.echo(_entry_line(e, p, long))


@cli.command("rev-parse")
@click.argument("revs", nargs=-1, required=True)
def rev_parse(revs: tuple[str, ...]) -> None:
    """Print the full object id each revision names."""
    repo = open_repo()
    for rev in revs:
        click.echo(repo.resolve(rev).id.hex())


@cli.command("update-ref")
@click.option(
    "-d", "delete", is_flag=True, help="Delete the ref (NEW is then the expected old value)."
)
@click.option("-m", "message", default="update-ref", type=UTF8, help="Reflog message.")
@click.argument("name")
@click.argument("new", required=False)
@click.argument("old", required=False)
def update_ref(delete: bool, message: str, name: str, new: str | None, old: str | None) -> None:
    """Set ref NAME to NEW, only if it currently holds OLD (compare-and-swap).

    OLD may be 64 zeros (or empty) to require that the ref does not exist yet. Without OLD the
    update still cannot interleave with another writer.
    """
    repo = open_repo()
    if delete:
        repo.update_ref(name, None, old=new, message=message)
        return
    if new is None:
        raise click.UsageError("NEW is required")
    repo.update_ref(name, new, old, check_old=old is not None, message=message)


@cli.command("count-objects")
@click.option("-v", "verbose", is_flag=True, help="Show every figure.")
def count_objects_cmd(verbose: bool) -> None:
    """Count objects and the bytes their packs take."""
    c = open_repo().count_objects()
    if verbose:
        click.echo(
            f"count: {c.objects}\ndata-objects: {c.data_objects}\nmeta-objects: {c.meta_objects}\n"
            f"packs: {c.packs}\nsize-pack: {c.pack_bytes}\norphan-packs: {c.orphan_packs}"
        )
    else:
        click.echo(f"{c.objects} objects in {c.packs} packs, {human(c.pack_bytes)}")


@cli.command("fsck")
@click.option(
    "--remote", "remote_name", metavar="NAME", help="Check a remote where it lies (no clone)."
)
@click.option("--read-data", is_flag=True, help="With --remote: read and re-hash every object too.")
def fsck_cmd(remote_name: str | None, read_data: bool) -> None:
    """Verify every object's hash and encoding, and that everything referenced exists."""
    if read_data and remote_name is None:
        raise click.UsageError("--read-data goes with --remote (a local fsck reads every object)")
    repo = open_repo()
    with Progress("checking packs", is_quiet(), unit="packs") as progress:
        if remote_name is None:
            report = repo.fsck(progress)
        else:
            report = repo.fsck_remote(remote_name, read_data=read_data, progress=progress)
    for p in report.problems:
        click.echo(p, err=True)
    for name in report.orphan_packs:
        click.echo(
            f"note: pack {name} has no index (an interrupted write; gc may remove it)", err=True
        )
    if not report.ok:
        raise IntegrityError(f"{len(report.problems)} problem(s) found")
    if report.promised and not is_quiet():
        click.echo(
            f"note: {report.promised} data chunk(s) of this partial clone are on its remote "
            "and will be fetched on demand",
            err=True,
        )
    if not is_quiet():
        checked = (
            "indexed inside their packs (--read-data re-hashes them)"
            if remote_name is not None and not read_data
            else f"verified ({human(report.bytes_checked)})"
        )
        click.echo(
            f"ok: {report.objects} objects in {report.packs} packs {checked}, "
            f"{report.reachable} reachable"
        )
