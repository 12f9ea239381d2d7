"""The ``dsrepo`` command: parses arguments, calls the Python API, prints, maps errors to exit codes.

No repository logic lives here. The click group is in ``app`` (with the mapping of every
:class:`~dsrepo.DsrepoError` to ``dsrepo: error: ...`` and its ``exit_code``); importing
``plumbing``, ``porcelain``, ``history``, ``sync``, ``cache``, ``serve`` and ``maintenance``
registers the commands on it; :func:`main` is the console script.
"""

from __future__ import annotations

import sys

import click

from dsrepo import environment
from dsrepo.cli import cache, history, maintenance, plumbing, porcelain, serve, sync, workflows
from dsrepo.cli.app import cli

__all__ = [
    "INTERNAL_ERROR",
    "cache",
    "cli",
    "history",
    "main",
    "maintenance",
    "plumbing",
    "porcelain",
    "serve",
    "sync",
    "workflows",
]

INTERNAL_ERROR = 70


def main() -> None:
    try:
        cli(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # a bug: say so in one line, keep the traceback for debugging
        import traceback

        if environment.debug():
            traceback.print_exc()
        click.echo(f"dsrepo: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(INTERNAL_ERROR)
