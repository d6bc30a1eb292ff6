"""Download stage: fetch a dataset archive resumably, verify its sha256, and unpack it safely.

Serves the real-data path (CoReNet scene tars, ShapeNetCore.v2 zip, ShapeNetRendering and
ShapeNetVox32 tgz). These archives are tens of gigabytes and come from servers that drop
connections, so:

- a download goes to ``DEST.part`` and resumes with an HTTP range request after a network error;
- ``DEST`` only ever appears (by atomic rename) once its sha256 matches; a file that fails the
  check is kept as ``DEST.bad`` for inspection, so the next attempt starts clean;
- unpacking is `stages.archives.safe_extract`, which checks every member before writing any and
  puts the folder in place only when complete (its docstring has the safety rules).

    python -m stages.download --source URL_OR_PATH --sha256 HEX --dest FILE \
        [--extract-to DIR] [--strip-components N]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import ssl
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from stages.archives import (
    CHUNK,
    MARKER,
    DownloadError,
    UnsafeArchiveError,
    _bar,
    _warn,
    file_sha256,
    safe_extract,
)
from stages.cli import run

# Re-exported so that callers can keep importing the stage's whole API from here.
__all__ = [
    "MARKER",
    "DownloadError",
    "UnsafeArchiveError",
    "build_parser",
    "fetch",
    "file_sha256",
    "main",
    "safe_extract",
]

SKIP = "skip"
DEBUG_ENV = "STAGES_DEBUG"

# Server answers worth another try: overload and gateway hiccups, not missing or forbidden files.
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
_HEX64 = re.compile(r"[0-9a-f]{64}")


class _Transient(Exception):
    """A network failure after which resuming the download may succeed."""


# --------------------------------------------------------------------------------------------
# fetching


def fetch(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    sha256: str,
    progress: bool = True,
    *,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Place the file at `source` (http(s) URL, file:// URL or local path) at `dest`, verified.

    `sha256` is the expected hex digest (any case) or "skip". `retries` counts the extra attempts
    after consecutive network failures that made no progress; the wait doubles from `backoff`
    seconds. Raises DownloadError with a one-line message.
    """
    source = os.fspath(source)
    dest = Path(dest)
    expected = _normalise_sha256(sha256)

    if dest.exists():
        if expected is None:
            _warn(f"{dest}: sha256 check skipped (--sha256 skip); keeping the existing file unverified")
            return dest
        actual = file_sha256(dest, progress)
        if actual == expected:
            return dest
        bad = _sibling(dest, ".bad")
        _warn(
            f"{dest}: existing file has sha256 {actual}, expected {expected}; moved to {bad}, fetching again"
        )
        os.replace(dest, bad)

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _sibling(dest, ".part")
    kind, location = _classify_source(source)
    if kind == "http":
        _fetch_http(location, part, dest.name, progress, retries, backoff, timeout)
    else:
        _copy_local(source, Path(location), part, dest.name, progress)

    actual = file_sha256(part, progress)
    if expected is None:
        _warn(f"{dest}: sha256 check skipped (--sha256 skip); the file's sha256 is {actual}")
    elif actual != expected:
        bad = _sibling(dest, ".bad")
        os.replace(part, bad)
        raise DownloadError(f"{dest}: sha256 mismatch: expected {expected}, got {actual}")
    os.replace(part, dest)
    return dest


def _normalise_sha256(value: str) -> str | None:
    text = value.strip().lower()
    if text == SKIP:
        return None
    if not _HEX64.fullmatch(text):
        raise DownloadError(f"invalid sha256 {value!r}: expected 64 hex digits or 'skip'")
    return text


def _classify_source(source: str) -> tuple[str, str]:
    parsed = urllib.parse.urlsplit(source)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        return "http", source
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DownloadError(f"{source}: file:// URLs must name a local path, not host {parsed.netloc!r}")
        return "local", urllib.request.url2pathname(parsed.path)
    # One-letter "schemes" are Windows drive letters; an existing file wins over URL parsing.
    if len(scheme) > 1 and not os.path.exists(source):
        raise DownloadError(f"{source}: unsupported URL scheme {scheme!r} (use http, https, file or a path)")
    return "local", os.path.expanduser(source)


def _copy_local(source: str, path: Path, part: Path, label: str, progress: bool) -> None:
    # open() follows symlinks, so the result is always a real copy of the bytes, never a link,
    # and the source is left untouched.
    try:
        src = open(path, "rb")
        size = os.fstat(src.fileno()).st_size
    except OSError as exc:
        raise DownloadError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    try:
        with src, open(part, "wb") as out, _bar(size, label, progress) as bar:
            while True:
                try:
                    chunk = src.read(CHUNK)
                except OSError as exc:
                    raise DownloadError(f"{source}: cannot read: {exc.strerror or exc}") from exc
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
            _sync(out)
    except BaseException:
        # A local copy is cheap to redo and cannot resume meaningfully.
        part.unlink(missing_ok=True)
        raise


def _fetch_http(
    url: str, part: Path, label: str, progress: bool, retries: int, backoff: float, timeout: float
) -> None:
    failures = 0
    while True:
        before = _size(part)
        try:
            _http_attempt(url, part, label, progress, timeout)
            return
        except _Transient as exc:
            # A flaky link that still moves data should not exhaust the budget of a dead one.
            if _size(part) > before:
                failures = 0
            failures += 1
            if failures > retries:
                kept = f"; partial data kept in {part}" if _size(part) else ""
                raise DownloadError(f"{url}: {exc} (gave up after {failures} attempts{kept})") from exc
            delay = backoff * 2 ** (failures - 1)
            _warn(f"{url}: {exc}; retrying in {delay:g} s")
            time.sleep(delay)
        except DownloadError:
            # The source is missing or refused: a partial file of it is of no further use.
            part.unlink(missing_ok=True)
            raise


def _http_attempt(url: str, part: Path, label: str, progress: bool, timeout: float) -> None:
    offset = _size(part)
    headers = {"User-Agent": "stages.download", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            total = _range_total(exc.headers.get("Content-Range"))
            if total is None or total == offset:
                return  # the part file is already complete; the hash has the last word
            part.unlink()  # the part file does not fit the remote file: start over without a range
            return _http_attempt(url, part, label, progress, timeout)
        if exc.code in TRANSIENT_HTTP:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise DownloadError(f"{url}: {_reason(exc.reason)}") from exc
        raise _Transient(f"unreachable: {_reason(exc.reason)}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(f"unreachable: {_reason(exc)}") from exc
    except ValueError as exc:
        raise DownloadError(f"{url}: {exc}") from exc

    restart = False
    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                restart = True
            mode = "ab"
        else:
            if offset:
                _warn(f"{url}: server ignored the range request; restarting from zero")
            offset = 0
            total = _int_or_none(response.headers.get("Content-Length"))
            mode = "wb"
        if not restart:
            _receive(response, part, mode, total, offset, label, progress)
    if restart:  # a range we did not ask for: start over without one
        part.unlink(missing_ok=True)
        return _http_attempt(url, part, label, progress, timeout)
    # http.client returns an empty read, not an error, when a server closes a response early.
    size = _size(part)
    if total is not None and size < total:
        raise _Transient(f"connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise _Transient(f"received {size} bytes, more than the {total} announced; restarting")


def _receive(
    response: Any, part: Path, mode: str, total: int | None, offset: int, label: str, progress: bool
) -> None:
    # Only reading from the network counts as transient; failing to write (disk full) does not.
    with open(part, mode) as out, _bar(total, label, progress, initial=offset) as bar:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise _Transient(f"connection lost: {_reason(exc)}") from exc
            if not chunk:
                break
            out.write(chunk)
            bar.update(len(chunk))
        _sync(out)


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", header or "")
    if not match:
        return None, None
    return int(match.group(1)), _int_or_none(match.group(2))


def _range_total(header: str | None) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", header or "")
    return int(match.group(1)) if match else None


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _reason(exc: object) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------------
# helpers


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _sync(handle: Any) -> None:
    # The rename to DEST must not publish a file whose bytes are still only in the page cache.
    handle.flush()
    os.fsync(handle.fileno())


# --------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stages.download",
        description="Fetch a dataset archive (resumable, sha256-verified) and optionally unpack it safely.",
        epilog=(
            "Exit status 0 on success, 1 with a one-line reason on failure, 130 when interrupted. "
            f"Set {DEBUG_ENV}=1 to print the traceback as well."
        ),
    )
    parser.add_argument(
        "--source",
        required=True,
        help="http:// or https:// URL, file:// URL, or local path; a local file is copied, never moved or linked",
    )
    parser.add_argument(
        "--sha256",
        required=True,
        help="expected sha256 of the file, hex in any case; 'skip' disables the check (with a warning)",
    )
    parser.add_argument(
        "--dest",
        required=True,
        type=Path,
        help="where the verified file goes; DEST.part holds a partial download, DEST.bad a file that failed the check",
    )
    parser.add_argument(
        "--extract-to",
        type=Path,
        metavar="DIR",
        help=f"unpack the archive into DIR (tar, tar.gz, tar.bz2, tar.xz or zip, detected by content); "
        f"DIR appears only when complete and is left alone when its {MARKER} marker matches the archive",
    )
    parser.add_argument(
        "--strip-components",
        type=int,
        default=0,
        metavar="N",
        help="drop N leading path components from member names, like tar; members with fewer are skipped",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=4,
        metavar="N",
        help="extra attempts after network errors that made no progress, each resuming the download (default 4)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.strip_components < 0:
        parser.error("--strip-components must be >= 0")
    if args.strip_components and args.extract_to is None:
        parser.error("--strip-components needs --extract-to")
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    progress = not args.no_progress
    try:
        dest = fetch(args.source, args.dest, args.sha256, progress, retries=args.retries)
        if args.extract_to is not None:
            known = args.sha256.strip().lower()
            files = safe_extract(
                dest,
                args.extract_to,
                args.strip_components,
                archive_sha256=None if known == SKIP else known,
                progress=progress,
            )
            print(f"download: {args.extract_to}: {len(files)} files from {dest}", file=sys.stderr)
    except KeyboardInterrupt:
        if _debugging():
            raise
        print(
            "download: interrupted (a partial download stays as .part and resumes next time)", file=sys.stderr
        )
        return 130
    except (DownloadError, OSError):
        # stages.cli.run prints the one-line reason and exits 1; STAGES_DEBUG adds the traceback.
        if _debugging():
            traceback.print_exc()
        raise
    return 0


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


if __name__ == "__main__":
    run(main)
