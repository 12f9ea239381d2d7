"""The ``dsrepo`` click group: ``-q``, the arguments after ``--``, and the mapping of every
:class:`~dsrepo.DsrepoError` to one line on stderr (``dsrepo: error: ...``) and its
``exit_code`` (table in docs/cli.md). The commands register themselves on :data:`cli` from
``plumbing`` and ``porcelain``; ``main`` imports all three.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from dsrepo import DsrepoError, Repository


class State:
    def __init__(self) -> None:
        self.quiet = False
        self.args: list[str] = []  # the subcommand's arguments as given (click drops "--")


def _set_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).quiet = True


quiet_option = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    expose_value=False,
    callback=_set_quiet,
    is_eager=True,
    help="No progress output.",
)


def is_quiet() -> bool:
    ctx = click.get_current_context()
    return ctx.ensure_object(State).quiet


def paths_after_dashdash() -> list[str]:
    """The arguments after ``--`` given to the running subcommand (not ``sys.argv``, so it also
    works when the CLI is invoked programmatically)."""
    args = click.get_current_context().ensure_object(State).args
    return args[args.index("--") + 1 :] if "--" in args else []


class Utf8Text(click.types.StringParamType):
    """Text that is stored (a message, a config value, a URL): it must be valid UTF-8. A command
    line byte the locale cannot decode reaches Python as a lone surrogate, which no object,
    config file or reflog can hold; refused here as a usage error (exit 2)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(f"{text[:80]!r} is not valid UTF-8", param, ctx)
        return text


UTF8 = Utf8Text()


def checked_by(parser: str) -> Callable[..., str | None]:
    """A click callback that refuses an option value the public function ``dsrepo.<parser>``
    rejects (ValueError) as a usage error while arguments are parsed, and passes the text on.
    The parser is looked up only when the option is given, so registering the command imports
    nothing (every command pays for what the CLI imports at start-up)."""

    def check(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            import dsrepo

            try:
                getattr(dsrepo, parser)(value)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param=param) from None
        return value

    return check


def open_repo() -> Repository:
    """The repository containing the current directory."""
    return Repository.open(".")


class DsrepoGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        ctx.ensure_object(State).args = list(ctx.args)
        try:
            return super().invoke(ctx)
        except DsrepoError as exc:
            message = str(exc)
            first, _, rest = message.partition("\n")
            click.echo(f"dsrepo: error: {first}", err=True)
            if rest:
                click.echo(rest, err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("dsrepo: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            ctx.exit(0)

    def command(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], click.Command]:
        """Every subcommand also accepts ``-q``."""
        decorator = super().command(*args, **kwargs)

        def wrap(f: Callable[..., Any]) -> click.Command:
            command: click.Command = decorator(quiet_option(f))
            return command

        return wrap


@click.group(cls=DsrepoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dsrepo")
@quiet_option
def cli() -> None:
    """dsrepo: version control for datasets."""
