"""Plumbing: small, scriptable, stable commands over objects and refs."""

from __future__ import annotations

import json
import sys

import click

from dsrepo.cli.main import cli, is_quiet
from dsrepo.cli.output import Progress, human
from dsrepo.dvcs.errors import IntegrityError, UnknownRevision
from dsrepo.dvcs.repository import Repository
from dsrepo.dvcs.revisions import resolve
from dsrepo.objects.errors import ObjectNotFound
from dsrepo.objects.ids import from_hex
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Commit, Manifest, ObjectType, Tag, Tree, TreeEntry


def open_repo() -> Repository:
    return Repository.open(".")


@cli.command("hash-object")
@click.option("-w", "write", is_flag=True, help="Store the content in the repository.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
def hash_object(write: bool, files: tuple[str, ...]) -> None:
    """Print the content id (BLAKE3) of FILE(s); with -w also store them."""
    from dsrepo.dvcs.worktree import hash_file

    repo = open_repo() if write else None
    for f in files:
        if f == "-":
            data = sys.stdin.buffer.read()
            if repo is not None:
                ref = repo.store.write_bytes(data)
            else:
                from dsrepo.objects.ids import hash_data

                click.echo(hash_data(data).hex())
                continue
        elif repo is not None:
            ref = repo.store.write_file(f)
        else:
            from dsrepo.objects.errors import FileReadError

            try:
                ref = hash_file(f, 0)
            except OSError as exc:
                raise FileReadError(f"cannot read {f}: {exc.strerror or exc}") from None
        click.echo(ref.content_id.hex())
    if repo is not None:
        repo.store.flush()


def _entry_line(e: TreeEntry, path: str, long: bool) -> str:
    kind = {
        EntryKind.FILE: "file",
        EntryKind.EXECUTABLE: "exec",
        EntryKind.SYMLINK: "link",
        EntryKind.TREE: "tree",
    }[e.kind]
    size = f" {e.size:>12}" if long else ""
    return f"{kind} {e.id.hex()}{size}\t{path}"


def _pretty(repo: Repository, type_: ObjectType, oid: bytes) -> str:
    obj = repo.store.get(from_hex(oid.hex()))
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
    if isinstance(obj, Manifest):
        head = f"content {obj.content_id.hex()}\nsize {obj.size}\n"
        return head + "".join(f"chunk {c.hex()} {n}\n" for c, n in obj.chunks)
    raise AssertionError(type_)


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
    r = resolve(repo, rev)
    if r.entry is not None and r.entry.kind != EntryKind.TREE:
        type_label, size = "file", r.entry.size
        if pretty:
            from dsrepo.dvcs.checkout import prefetch

            prefetch(repo, [r.entry])
            for chunk in repo.store.read_chunks(r.entry):
                sys.stdout.buffer.write(chunk)
            return
    else:
        type_ = repo.store.object_type(r.id)
        type_label, size = type_.label, repo.store.object_size(r.id)
        if pretty:
            if type_ == ObjectType.CHUNK:
                sys.stdout.buffer.write(repo.store.get_raw(r.id)[1])
            else:
                click.echo(_pretty(repo, type_, r.id), nl=False)
            return
    click.echo(type_label if show_type else str(size))


@cli.command("ls-tree")
@click.option("-r", "recursive", is_flag=True, help="Recurse into subtrees.")
@click.option("-l", "long", is_flag=True, help="Show sizes.")
@click.argument("rev")
@click.argument("path", required=False)
def ls_tree(recursive: bool, long: bool, rev: str, path: str | None) -> None:
    """List the entries of the tree of REV (optionally under PATH)."""
    from dsrepo.dvcs.revisions import resolve_tree

    repo = open_repo()
    tree = resolve_tree(repo, f"{rev}:{path}" if path else rev)
    prefix = f"{path.strip('/')}/" if path and path.strip("/") else ""
    if recursive:
        for p, e in sorted(repo.walk_tree(tree, prefix)):
            click.echo(_entry_line(e, p, long))
    else:
        for e in repo.store.tree_entries(tree):
            click.echo(_entry_line(e, prefix + e.name, long))


@cli.command("rev-parse")
@click.argument("revs", nargs=-1, required=True)
def rev_parse(revs: tuple[str, ...]) -> None:
    """Print the full object id each revision names."""
    repo = open_repo()
    for rev in revs:
        click.echo(resolve(repo, rev).id.hex())


@cli.command("update-ref")
@click.option(
    "-d", "delete", is_flag=True, help="Delete the ref (NEW is then the expected old value)."
)
@click.option("-m", "message", default="update-ref", help="Reflog message.")
@click.argument("name")
@click.argument("new", required=False)
@click.argument("old", required=False)
def update_ref(delete: bool, message: str, name: str, new: str | None, old: str | None) -> None:
    """Set ref NAME to NEW, only if it currently holds OLD (compare-and-swap).

    OLD may be 64 zeros (or empty) to require that the ref does not exist yet. Without OLD the
    update still cannot interleave with another writer.
    """
    from dsrepo.dvcs.refnames import check_refname
    from dsrepo.dvcs.refs import ZERO

    repo = open_repo()
    if name != "HEAD":
        check_refname(name)
    else:  # like git: HEAD on a branch means that branch
        name = repo.refs.follow("HEAD")[0]
    who = repo.reflog_identity()
    if delete:
        current = repo.refs.resolve(name)
        if current is None:
            raise UnknownRevision(f"ref {name} does not exist")
        expected = resolve(repo, new).id if new else current
        repo.refs.update(name, None, expected, who=who, message=message)
        return
    if new is None:
        raise click.UsageError("NEW is required")
    target = resolve(repo, new).id
    if not repo.store.has(target):
        raise ObjectNotFound(f"object {target.hex()} not found")
    if old is None:
        repo.refs.update(name, target, None, who=who, message=message, check_old=False)
    else:
        old_id = None if old in ("", ZERO) else resolve(repo, old).id
        repo.refs.update(name, target, old_id, who=who, message=message)


@cli.command("count-objects")
@click.option("-v", "verbose", is_flag=True, help="Show every figure.")
def count_objects_cmd(verbose: bool) -> None:
    """Count objects and the bytes their packs take."""
    from dsrepo.dvcs.fsck import count_objects

    c = count_objects(open_repo())
    if verbose:
        click.echo(
            f"count: {c.objects}\ndata-objects: {c.data_objects}\nmeta-objects: {c.meta_objects}\n"
            f"packs: {c.packs}\nsize-pack: {c.pack_bytes}\norphan-packs: {c.orphan_packs}"
        )
    else:
        click.echo(f"{c.objects} objects in {c.packs} packs, {human(c.pack_bytes)}")


@cli.command("fsck")
def fsck_cmd() -> None:
    """Verify every object's hash and encoding, and that everything referenced exists."""
    from dsrepo.dvcs.fsck import fsck

    repo = open_repo()
    progress = Progress("checking packs", is_quiet(), unit="packs")
    report = fsck(repo, progress)
    progress.close()
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
        click.echo(
            f"ok: {report.objects} objects in {report.packs} packs verified "
            f"({human(report.bytes_checked)}), {report.reachable} reachable"
        )
