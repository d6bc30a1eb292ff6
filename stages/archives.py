"""Safe archive extraction: unpack a tar or zip all or nothing, never writing outside the target.

Dataset archives come from third-party mirrors and are unpacked by a pipeline that must never
write outside its own folders, so `safe_extract` treats every archive as untrusted:

- the type is detected by content, not by name: tar (plain, gz, bz2, xz) or zip, nothing else;
- every member is checked before the first byte is written; one unsafe member refuses the whole
  archive with UnsafeArchiveError and leaves the file system untouched;
- a member name (or hard link target) that is absolute, or whose ``..`` climbs above the target,
  is refused; zip names are also read with Windows rules (``\\`` separators, ``C:`` drives);
- a symbolic link must be relative and non-empty, must resolve inside the target without
  passing through another link, and no member may be written through a link, since a link could
  redirect it anywhere whatever its name looks like;
- a hard link may only point to a regular file that appears earlier in the archive;
- devices, fifos, sockets and unknown member types are refused, as are encrypted zip members
  and compression methods Python cannot read;
- tar members lose setuid, setgid and sticky bits and group/world write permission, and their
  owner can always read and write them (what tarfile's "data" filter does, also on Pythons
  without it); zip members get default permissions, whatever modes they store;
- each member is written to exactly the path that was checked, after ``strip_components``
  leading components are dropped (members with no more components than that are skipped);
- extraction goes into ``DIR.tmp-XXXX`` beside the target and is renamed into place only when
  complete, with a ``.extracted`` marker holding the archive's sha256: a rerun with the same
  archive is a no-op, a different archive replaces the folder, and an existing non-empty folder
  without the marker is refused, never written into.

DownloadError, the stage's one-line error for the user, and `file_sha256` live here because
`stages.download`, which fetches the archives, builds on this module.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import lzma
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stages.errors import StageError

CHUNK = 1 << 20
MARKER = ".extracted"

# What reading a truncated or damaged archive can raise, depending on the compression.
ARCHIVE_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError)
ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})


class DownloadError(StageError):
    """A failure the user can act on; the message is one line naming the source or file."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the target folder or is not plain data."""


# --------------------------------------------------------------------------------------------
# extraction


@dataclass(frozen=True)
class _Entry:
    name: str  # the member's name as stored, for messages
    path: str  # where it goes, relative to the target, normalised and stripped
    kind: str  # "dir", "file", "symlink" or "hardlink"
    link: str  # a symlink's text, or a hard link's target path (normalised and stripped)
    member: Any  # the TarInfo or ZipInfo
    size: int


def safe_extract(
    archive: str | os.PathLike,
    target_dir: str | os.PathLike,
    strip_components: int = 0,
    *,
    archive_sha256: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """Unpack a tar (plain, gz, bz2, xz) or zip archive into `target_dir`, all or nothing.

    Returns the sorted paths of the files and links under `target_dir` (directories left out).
    `archive_sha256`, when already known, saves hashing the archive again for the marker.
    Raises UnsafeArchiveError before writing anything if any member is unsafe, DownloadError
    for unreadable or unknown archives and failed writes.
    """
    archive = Path(archive)
    target = Path(target_dir)
    if strip_components < 0:
        raise DownloadError(f"{archive}: --strip-components must be >= 0, got {strip_components}")
    if not archive.is_file():
        raise DownloadError(f"{archive}: cannot read: not an existing file")
    digest = (archive_sha256 or file_sha256(archive, progress)).lower()

    replaces_older = False
    if target.exists() or target.is_symlink():
        marker = target / MARKER
        if marker.is_file():
            if marker.read_text().strip() == digest:
                return _list_tree(target)
            replaces_older = True
        elif target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            target.rmdir()
        else:
            raise DownloadError(
                f"{target}: exists and was not extracted by this stage (no {MARKER} marker); "
                "remove it or choose another folder"
            )

    kind, mode = _archive_kind(archive)
    with _open_archive(archive, kind, mode) as handle:
        # Every member is checked before the first byte is written.
        plan = _plan(
            archive,
            _tar_entries(archive, handle) if kind == "tar" else _zip_entries(archive, handle),
            strip_components,
            windows_names=kind == "zip",
        )
        stale = sorted(target.parent.glob(f"{glob.escape(target.name)}.tmp-*"))
        if stale:
            _warn(f"{target}: leftover folders from interrupted extractions: {', '.join(map(str, stale))}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
        try:
            with _bar(sum(e.size for e in plan), f"extract {archive.name}", progress) as bar:
                try:
                    if kind == "tar":
                        _extract_tar(handle, plan, tmp, bar)
                    else:
                        _extract_zip(handle, plan, tmp, bar)
                except ARCHIVE_READ_ERRORS as exc:
                    raise DownloadError(f"{archive}: extraction failed: {_one_line(exc)}") from exc
            (tmp / MARKER).write_text(digest + "\n")
            # mkdtemp makes a private folder; the result should look like any folder the user makes.
            os.chmod(tmp, 0o777 & ~_umask())
            if replaces_older:
                old = Path(tempfile.mkdtemp(prefix=f"{target.name}.old-", dir=target.parent))
                os.replace(target, old / "previous")
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return sorted({target / e.path for e in plan if e.kind != "dir" and e.path != MARKER})


def _archive_kind(path: Path) -> tuple[str, str]:
    # By content, because downloaded names lie (ShapeNet mirrors, CoReNet "*.tar" of any kind).
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"\x1f\x8b"):
        return "tar", "r:gz"
    if head.startswith(b"BZh"):
        return "tar", "r:bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "tar", "r:xz"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip", ""
    if head[257:262] == b"ustar":
        return "tar", "r:"
    if zipfile.is_zipfile(path):  # zips with a prefix, such as self-extracting ones
        return "zip", ""
    if tarfile.is_tarfile(path):  # pre-POSIX tars without the ustar magic
        return "tar", "r:"
    raise DownloadError(f"{path}: unknown archive type (expected tar, tar.gz, tar.bz2, tar.xz or zip)")


def _open_archive(path: Path, kind: str, mode: str) -> Any:
    try:
        return tarfile.open(path, mode) if kind == "tar" else zipfile.ZipFile(path)
    except ARCHIVE_READ_ERRORS as exc:
        raise DownloadError(f"{path}: unknown archive type or corrupt archive: {_one_line(exc)}") from exc


def _tar_entries(archive: Path, tar: tarfile.TarFile) -> Iterator[tuple[str, str, str, Any, int]]:
    try:
        members = tar.getmembers()  # a full pass over the archive; needed to vet before writing
    except ARCHIVE_READ_ERRORS as exc:
        raise DownloadError(f"{archive}: corrupt or truncated archive: {_one_line(exc)}") from exc
    for member in members:
        if member.isdir():
            yield member.name, "dir", "", member, 0
        elif member.issym():
            yield member.name, "symlink", member.linkname, member, 0
        elif member.islnk():
            yield member.name, "hardlink", member.linkname, member, 0
        elif member.ischr() or member.isblk() or member.isfifo():
            raise _unsafe(archive, member.name, "device or fifo member")
        elif member.isreg():
            yield member.name, "file", "", member, member.size
        else:
            raise _unsafe(archive, member.name, f"unsupported member type {member.type!r}")


def _zip_entries(archive: Path, zipped: zipfile.ZipFile) -> Iterator[tuple[str, str, str, Any, int]]:
    for info in zipped.infolist():
        file_type = stat.S_IFMT(info.external_attr >> 16)  # zero unless written on a Unix system
        if info.flag_bits & 0x1:
            raise DownloadError(f"{archive}: member {info.filename!r} is encrypted")
        if info.compress_type not in ZIP_METHODS:
            raise DownloadError(
                f"{archive}: member {info.filename!r} uses compression method {info.compress_type}, "
                "which Python cannot read (unpack it with 7z or unzip)"
            )
        if info.is_dir() or file_type == stat.S_IFDIR:
            yield info.filename, "dir", "", info, 0
        elif file_type == stat.S_IFLNK:
            try:
                text = zipped.read(info).decode("utf-8", "surrogateescape")
            except ARCHIVE_READ_ERRORS as exc:
                raise DownloadError(f"{archive}: corrupt archive: {_one_line(exc)}") from exc
            yield info.filename, "symlink", text, info, 0
        elif file_type in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
            raise _unsafe(archive, info.filename, "device or fifo member")
        else:
            yield info.filename, "file", "", info, info.file_size


def _plan(
    archive: Path, entries: Iterable[tuple[str, str, str, Any, int]], strip: int, *, windows_names: bool
) -> list[_Entry]:
    # tarfile's "data" filter covers most of this for tars, but our own checks stay: Pythons
    # before 3.11.4/3.12 have no filter, zipfile has none at all, the filter strips a leading "/"
    # where we must refuse, and it vets members one at a time while extracting, whereas nothing
    # may be written unless every member is safe.
    staged: list[_Entry] = []
    for name, kind, link, member, size in entries:
        parts = _normalised_parts(archive, name, name, "path", windows_names)
        if not parts:
            if kind == "dir":
                continue  # the archive's own root, "./"
            raise _unsafe(archive, name, "empty member name")
        if len(parts) <= strip:
            continue
        path = "/".join(parts[strip:])
        if kind == "hardlink":
            target_parts = _normalised_parts(archive, name, link, "hard link target", windows_names)
            if len(target_parts) <= strip:
                raise _unsafe(archive, name, f"hard link target {link!r} is removed by --strip-components")
            link = "/".join(target_parts[strip:])
        elif kind == "symlink" and (
            not link or link.startswith("/") or (windows_names and _windows_absolute(link))
        ):
            raise _unsafe(archive, name, f"symbolic link to {link!r} is absolute or empty")
        staged.append(_Entry(name, path, kind, link, member, size))

    # A member below a symlink, or a link resolved through one, could be redirected anywhere,
    # whatever its name looks like; refuse both rather than resolve links virtually.
    symlinks = {e.path for e in staged if e.kind == "symlink"}
    regular: set[str] = set()
    for entry in staged:
        _check_no_link_on_the_way(archive, entry.name, entry.path, symlinks)
        if entry.kind == "symlink":
            _check_symlink_target(archive, entry, symlinks)
        elif entry.kind == "hardlink":
            _check_no_link_on_the_way(archive, entry.name, entry.link, symlinks)
            if entry.link not in regular:
                raise _unsafe(
                    archive, entry.name, f"hard link to {entry.link!r}, not an earlier regular file"
                )
        if entry.kind in ("file", "hardlink"):
            regular.add(entry.path)
        else:
            regular.discard(entry.path)
    return staged


def _normalised_parts(archive: Path, name: str, text: str, what: str, windows_names: bool) -> list[str]:
    if text.startswith("/") or (windows_names and _windows_absolute(text)):
        raise _unsafe(archive, name, f"{what} {text!r} is absolute")
    # Zips written on Windows may use backslashes; treat them as separators so "..\\" is caught.
    pieces = re.split(r"[/\\]", text) if windows_names else text.split("/")
    parts: list[str] = []
    for piece in pieces:
        if piece in ("", "."):
            continue
        if piece == "..":
            if not parts:
                raise _unsafe(archive, name, f"{what} {text!r} escapes the target folder")
            parts.pop()
        else:
            parts.append(piece)
    return parts


def _windows_absolute(text: str) -> bool:
    return text.startswith("\\") or re.match(r"[A-Za-z]:", text) is not None


def _check_no_link_on_the_way(archive: Path, name: str, path: str, symlinks: set[str]) -> None:
    parts = path.split("/")
    for depth in range(1, len(parts)):
        prefix = "/".join(parts[:depth])
        if prefix in symlinks:
            raise _unsafe(archive, name, f"path {path!r} passes through symbolic link {prefix!r}")


def _check_symlink_target(archive: Path, entry: _Entry, symlinks: set[str]) -> None:
    where = entry.path.split("/")[:-1]
    pieces = [p for p in entry.link.split("/") if p not in ("", ".")]
    for index, piece in enumerate(pieces):
        if piece == "..":
            if not where:
                raise _unsafe(
                    archive, entry.name, f"symbolic link to {entry.link!r} escapes the target folder"
                )
            where.pop()
            continue
        where.append(piece)
        if index < len(pieces) - 1 and "/".join(where) in symlinks:
            raise _unsafe(
                archive,
                entry.name,
                f"symbolic link to {entry.link!r} passes through symbolic link {'/'.join(where)!r}",
            )


def _extract_tar(tar: tarfile.TarFile, plan: list[_Entry], root: Path, bar: tqdm) -> None:
    def members() -> Iterator[tarfile.TarInfo]:
        for entry in plan:
            member = copy.copy(entry.member)
            member.name = entry.path
            if entry.kind == "hardlink":
                member.linkname = entry.link
            # What the "data" filter does, for Pythons without it: no setuid/setgid/sticky bits,
            # nothing group/world-writable, and the owner can always read and write.
            member.mode = (member.mode & 0o755) | (0o700 if entry.kind == "dir" else 0o600)
            yield member
            bar.update(entry.size)

    # A generator keeps extractall's handling of directories (their modes are set last).
    if hasattr(tarfile, "data_filter"):
        tar.extractall(root, members=members(), filter="data")
    else:  # pragma: no cover - Pythons older than 3.11.4
        tar.extractall(root, members=members())


def _extract_zip(zipped: zipfile.ZipFile, plan: list[_Entry], root: Path, bar: tqdm) -> None:
    # Written by hand rather than with ZipFile.extract so that the path used is exactly the one
    # that was checked, and so that Unix symlinks become links rather than text files.
    for entry in plan:
        out = root / entry.path
        if entry.kind == "dir":
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_symlink():
            out.unlink()  # a later member replaces a link; it must not write through it
        if entry.kind == "symlink":
            if out.exists():
                out.unlink()
            os.symlink(entry.link, out)
            continue
        with zipped.open(entry.member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        bar.update(entry.size)


def _list_tree(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        found.extend(here / d for d in dirs if (here / d).is_symlink())
        found.extend(here / f for f in files if not (here == root and f == MARKER))
    return sorted(found)


def _unsafe(archive: Path, member: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: unsafe member {member!r}: {reason}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------------
# helpers, also used by stages.download


def file_sha256(path: str | os.PathLike, progress: bool = False) -> str:
    """Hex sha256 of a file, read in chunks (the archives do not fit in memory)."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle, _bar(path.stat().st_size, f"sha256 {path.name}", progress) as bar:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()



def _bar(total: int | None, label: str, progress: bool, initial: int = 0) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
        # Under Snakemake stderr is a log file: redraws every 0.1 s would bloat it over hours.
        mininterval=0.1 if sys.stderr.isatty() else 30.0,
    )


def _warn(message: str) -> None:
    print(f"download: warning: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
