"""Who is writing: the author of new commits and tags, and the name reflog entries carry."""

from __future__ import annotations

import time

from dsrepo import environment
from dsrepo.dvcs.config import Config
from dsrepo.dvcs.errors import MissingIdentity
from dsrepo.objects.model import Signature


def _local_tz_minutes(ts: float) -> int:
    lt = time.localtime(ts)
    return (lt.tm_gmtoff or 0) // 60


def author(config: Config) -> Signature:
    """$DSREPO_AUTHOR_NAME/_EMAIL (and _DATE), else user.name/user.email at the current time."""
    name = environment.author_name() or config.get("user.name")
    email = environment.author_email() or config.get("user.email")
    if not name or not email:
        raise MissingIdentity(
            "author identity unknown: run dsrepo config --global user.name 'Your Name' and "
            "dsrepo config --global user.email you@example.com (or set DSREPO_AUTHOR_NAME/EMAIL)"
        )
    stamp = environment.author_date()
    ts = stamp if stamp is not None else int(time.time())
    return Signature(name, email, ts, _local_tz_minutes(ts))


def reflog_signature(config: Config) -> Signature:
    """The author when known, else the login name: a reflog entry never fails for want of one."""
    try:
        return author(config)
    except MissingIdentity:
        ts = int(time.time())
        return Signature(environment.login_name(), "unknown", ts, _local_tz_minutes(ts))
