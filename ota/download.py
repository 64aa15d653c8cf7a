"""Fetching an update into ``<job>.partial``, resuming where the last attempt stopped.

Cameras sit on poor networks and lose power, so a download continues from the bytes
already on disk: an HTTP ``Range: bytes=<have>-`` request (a server that ignores it
answers 200 and the file restarts from zero), or a seek for a local file. Integrity
does not rest on the transport: the whole file is signature-checked afterwards, so a
resumed file that mixes two different uploads fails verification and is refused (and
plain http is as safe as https for integrity; https still hides what is fetched).

Errors say whether trying again can help (``DownloadError.retryable``): a dropped
connection or a 5xx can, a 404 or an unknown scheme cannot.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from ota import fsio
from ota.archive import MAX_ARCHIVE_BYTES
from ota.errors import DownloadError

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None"], None]
MAX_BYTES = MAX_ARCHIVE_BYTES  # more could never verify: not worth the disk
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED = re.compile(r"^bytes \*/(\d+)$")


def fetch(
    source: str,
    partial: Path,
    progress: Progress | None = None,
    timeout: float = 30.0,
    max_bytes: int = MAX_BYTES,
) -> int:
    """Complete ``partial`` from ``source`` (path, file://, http://, https://); its size."""
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_http(source, partial, progress, timeout, max_bytes)
    if scheme == "file":
        return _fetch_file(Path(url2pathname(urlsplit(source).path)), partial, progress, max_bytes)
    if scheme == "":
        return _fetch_file(Path(source), partial, progress, max_bytes)
    raise DownloadError(f"{source}: unsupported scheme {scheme!r}", retryable=False)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _counter(start: int, total: int | None, progress: Progress | None) -> Callable[[int], None]:
    done = start

    def on_chunk(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(done, total)
    return on_chunk


def _fetch_file(path: Path, partial: Path, progress: Progress | None, max_bytes: int) -> int:
    with contextlib.ExitStack() as stack:
        try:
            src = stack.enter_context(open(path, "rb"))
        except OSError as exc:
            why = f"{path}: cannot read: {exc.strerror or exc}"
            raise DownloadError(why, retryable=False) from None
        total = os.fstat(src.fileno()).st_size
        if total > max_bytes:
            raise DownloadError(f"{path}: {total} bytes is more than {max_bytes}", retryable=False)
        offset = _size(partial)
        if offset > total:
            partial.unlink()
            offset = 0
        src.seek(offset)
        fsio.write_stream(
            src,
            partial,
            append=True,
            limit=max_bytes - offset,  # a file still growing stops here; verify refuses it
            on_chunk=_counter(offset, total, progress),
        )
    return _size(partial)


def _fetch_http(
    url: str, partial: Path, progress: Progress | None, timeout: float, max_bytes: int
) -> int:
    offset = _size(partial)
    headers = {"User-Agent": "appliance-ota"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            match = _UNSATISFIED.match(exc.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == offset:
                return offset  # the partial file already holds everything
            partial.unlink()
            raise DownloadError(
                f"{url}: partial file longer than the update; restarting", retryable=True
            ) from None
        retryable = exc.code >= 500 or exc.code in (408, 429)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}", retryable) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"{url}: {exc}", retryable=True) from None
    with response:
        total: int | None
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                partial.unlink()
                raise DownloadError(
                    f"{url}: server resumed at the wrong offset; restarting", retryable=True
                )
            total = None if match.group(3) == "*" else int(match.group(3))
            log.info("resuming %s at byte %d", url, offset)
        elif response.status == 200:
            if offset:
                log.info("%s: server ignored the Range request; starting over", url)
                partial.unlink()
                offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        else:
            raise DownloadError(f"{url}: unexpected HTTP {response.status}", retryable=True)
        if total is not None and total > max_bytes:
            raise DownloadError(f"{url}: {total} bytes is more than {max_bytes}", retryable=False)
        try:
            fsio.write_stream(
                response,
                partial,
                append=True,
                limit=max_bytes - offset,
                on_chunk=_counter(offset, total, progress),
            )
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"{url}: interrupted: {exc}", retryable=True) from None
    size = _size(partial)
    if size > max_bytes:
        raise DownloadError(f"{url}: more than {max_bytes} bytes", retryable=False)
    if total is not None and size != total:
        raise DownloadError(
            f"{url}: connection closed after {size} of {total} bytes", retryable=True
        )
    return size
