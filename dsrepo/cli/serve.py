"""``dsrepo serve``: a repository (or bare remote directory) as an HTTP remote and web view, and
``dsrepo serve token create|list|revoke`` for its access tokens."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

import dsrepo
from dsrepo import DsrepoError
from dsrepo.cli.app import cli

if TYPE_CHECKING:  # the server (starlette, uvicorn) is imported only when serving
    from dsrepo import ServeConfig, ServedLocation

LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ServeGroup(click.Group):
    """``dsrepo serve [PATH] [OPTIONS]`` runs ``serve run``; ``dsrepo serve token ...`` the token
    commands (serve a folder named ``token`` as ``./token``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=ServeGroup)
def serve() -> None:
    """Serve a repository as an HTTP remote and web view.

    'dsrepo serve [PATH] [OPTIONS]' is short for 'dsrepo serve run [PATH] [OPTIONS]'
    (docs/serve.md: running it, tokens, protected refs, TLS proxies)."""


@serve.command("run")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8465, show_default=True, help="0: any free."
)
@click.option("--anonymous-read", is_flag=True, help="Reads need no token (writes still do).")
@click.option("--init", is_flag=True, help="Serve a missing or empty folder as a new remote.")
@click.option("--access-log", is_flag=True, help="Log every request on stderr.")
@click.argument("path", default=".", type=click.Path(file_okay=False))
def serve_run(
    host: str, port: int, anonymous_read: bool, init: bool, access_log: bool, path: str
) -> None:
    """Serve PATH (default: the current directory) until interrupted."""

    def ready(url: str, served: ServedLocation, config: ServeConfig) -> None:
        click.echo(f"serving {served.root} ({served.layout}) at {url}")
        tokens = len(dsrepo.serve_tokens(served.root).list())
        reads = "anyone may read" if config.anonymous_read else "reads need a token"
        click.echo(f"{reads}; writes need a write token; {tokens} token(s)", err=True)
        if tokens == 0:
            click.echo(
                "create a token with: dsrepo serve token create --scope write " + str(served.root),
                err=True,
            )
        if host not in LOOPBACK:
            click.echo(
                f"warning: listening on {host} over plain HTTP: tokens and data travel in clear "
                "unless a TLS proxy is in front (docs/serve.md)",
                err=True,
            )

    try:
        dsrepo.serve_repository(
            path,
            host=host,
            port=port,
            anonymous_read=anonymous_read,
            init=init,
            access_log=access_log,
            ready=ready,
        )
    except OSError as exc:
        raise DsrepoError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@serve.group("token")
def token() -> None:
    """Access tokens of a served repository (stored hashed in its .dsrepo/serve/)."""


@token.command("create")
@click.option(
    "--scope", type=click.Choice(["read", "write"]), required=True, help="What it allows."
)
@click.option("--name", help="A name to list and revoke it by (default: its id).")
@click.argument("path", default=".", type=click.Path(file_okay=False))
def token_create(scope: str, name: str | None, path: str) -> None:
    """Create a token for PATH's server and print it (only this once)."""
    secret, info = dsrepo.serve_tokens(path).create(scope, name)
    click.echo(secret)
    click.echo(
        f"created {info.scope} token {info.name!r}: keep it now, it is not shown again", err=True
    )


@token.command("list")
@click.argument("path", default=".", type=click.Path(file_okay=False))
def token_list(path: str) -> None:
    """List the tokens of PATH's server, tab-separated: name, scope, id, created (UTC). Never
    their secrets."""
    for info in dsrepo.serve_tokens(path).list():
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(info.created))
        click.echo(f"{info.name}\t{info.scope}\t{info.id}\t{created}")


@token.command("revoke")
@click.argument("name")
@click.argument("path", default=".", type=click.Path(file_okay=False))
def token_revoke(name: str, path: str) -> None:
    """Revoke the token NAME (or id); a running server refuses it at once."""
    info = dsrepo.serve_tokens(path).revoke(name)
    click.echo(f"revoked {info.scope} token {info.name!r}")
