"""Remote URLs → backends: a path or ``file://`` URL is a directory, ``s3://BUCKET/PREFIX`` an S3
prefix, ``http(s)://HOST[:PORT][/PATH]`` a ``dsrepo serve`` server. Every backend returned is
wrapped in the retry policy."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from dsrepo.remotes.base import Backend
from dsrepo.remotes.errors import BackendError
from dsrepo.remotes.retry import RetryingBackend


class InvalidRemoteUrl(BackendError):
    exit_code = 2


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


def parse_url(url: str) -> tuple[str, str, str]:
    """(scheme, location, prefix): ("file", "/abs/path", ""), ("s3", "bucket", "prefix") or
    ("http"/"https", "host:port", "path")."""
    if not url or "\0" in url or "\n" in url:
        raise InvalidRemoteUrl(f"invalid remote URL {url!r}")
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise InvalidRemoteUrl(f"invalid S3 URL {url!r}: expected s3://BUCKET[/PREFIX]")
        return "s3", parsed.netloc, parsed.path.strip("/")
    if parsed.scheme in ("http", "https"):
        if not parsed.hostname:
            raise InvalidRemoteUrl(f"invalid URL {url!r}: expected {parsed.scheme}://HOST[:PORT]/")
        if parsed.username is not None or parsed.password is not None:
            raise InvalidRemoteUrl(
                f"refusing a token or password in the URL {parsed.scheme}://...@{parsed.hostname}: "
                "set DSREPO_TOKEN or use the credentials file"
            )
        if parsed.query or parsed.fragment:
            raise InvalidRemoteUrl(f"invalid URL {url!r}: no query or fragment allowed")
        try:
            parsed.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise InvalidRemoteUrl(f"invalid URL {url!r}: bad port") from None
        return parsed.scheme, parsed.netloc, parsed.path.strip("/")
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidRemoteUrl(f"invalid file URL {url!r}: only local paths are supported")
        return "file", os.path.normpath(unquote(parsed.path)), ""
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" style drive letters are not schemes here
        raise InvalidRemoteUrl(
            f"unsupported remote URL scheme {parsed.scheme!r} in {url!r} "
            "(use a path, file://, s3:// or http(s)://)"
        )
    try:
        return "file", os.path.abspath(Path(url).expanduser()), ""
    except RuntimeError:  # ~user of a user that does not exist
        raise InvalidRemoteUrl(f"invalid remote path {url!r}: cannot expand '~'") from None


def open_backend(
    url: str, *, s3: S3Options | None = None, create: bool = False, attempts: int = 5
) -> Backend:
    scheme, location, prefix = parse_url(url)
    inner: Backend
    if scheme in ("http", "https"):
        from dsrepo.remotes.http import HttpBackend, find_token

        base = f"{scheme}://{location}/{prefix + '/' if prefix else ''}"
        token, source = find_token(base)
        inner = HttpBackend(base, token, token_source=source)
    elif scheme == "s3":
        from dsrepo.remotes.s3 import S3Backend

        opts = s3 or S3Options()
        inner = S3Backend(
            location,
            prefix,
            endpoint_url=opts.endpoint_url,
            region=opts.region,
            profile=opts.profile,
        )
    else:
        from dsrepo.remotes.directory import DirectoryBackend

        inner = DirectoryBackend(location, create=create)
    return RetryingBackend(inner, attempts=attempts)
