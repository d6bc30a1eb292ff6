"""Tests for safe archive extraction: tar and zip unpacking, all or nothing, never outside the target.

The archive builders here are also used by the download stage's CLI tests.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from stages import archives
from stages.archives import DownloadError, UnsafeArchiveError, safe_extract


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

# --------------------------------------------------------------------------------------------
# archive builders


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tar.addfile(info)


def make_tar(path: Path, members: list[tuple], mode: str = "w:gz") -> Path:
    """members: (name, bytes) for files, (name, type, linkname) for anything else."""
    with tarfile.open(path, mode) as tar:
        for member in members:
            if len(member) == 2:
                add_file(tar, *member)
            else:
                add_special(tar, *member)
    return path


def make_zip(path: Path, members: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in members:
            zipped.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3  # Unix, so that the mode bits below mean something
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zipped.writestr(info, target)
    return path


VOX_MEMBERS = [
    ("README", b"top-level file, dropped by strip 1"),
    ("ShapeNetVox32/02691156/a1/model.binvox", b"#binvox 1\n" + bytes(range(64))),
    ("ShapeNetVox32/03001627/c7/model.binvox", b"#binvox 1\n" + bytes(32)),
]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())

# --------------------------------------------------------------------------------------------
# extraction


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w"])
def test_tar_extraction_with_strip_components(tmp_path, mode):
    archive = make_tar(tmp_path / "vox.bin", VOX_MEMBERS, mode)  # name says nothing: content decides
    target = tmp_path / "out" / "ShapeNetVox32"

    files = safe_extract(archive, target, strip_components=1, progress=False)

    assert files == [target / "02691156/a1/model.binvox", target / "03001627/c7/model.binvox"]
    assert (target / "02691156/a1/model.binvox").read_bytes() == VOX_MEMBERS[1][1]
    assert not (target / "README").exists()
    assert (target / archives.MARKER).read_text().strip() == sha(archive.read_bytes())
    assert listing(tmp_path / "out") == ["ShapeNetVox32"]  # no temporary folder left behind


def test_zip_extraction_with_strip_components(tmp_path):
    archive = make_zip(
        tmp_path / "ShapeNetCore.v2.zip",
        [
            ("ShapeNetCore.v2/", b""),
            ("ShapeNetCore.v2/taxonomy.json", b"[]"),
            ("ShapeNetCore.v2/03001627/c7/models/model_normalized.obj", b"v 0 0 0\n"),
        ],
    )
    target = tmp_path / "core"
    files = safe_extract(archive, target, strip_components=1, progress=False)
    assert files == [target / "03001627/c7/models/model_normalized.obj", target / "taxonomy.json"]
    assert (target / "03001627/c7/models/model_normalized.obj").read_bytes() == b"v 0 0 0\n"


def test_internal_relative_links_are_kept(tmp_path):
    archive = make_tar(
        tmp_path / "links.tar",
        [
            ("d/real.txt", b"data"),
            ("d/alias", tarfile.SYMTYPE, "real.txt"),
            ("d/hard", tarfile.LNKTYPE, "d/real.txt"),
        ],
        "w",
    )
    target = tmp_path / "t"
    safe_extract(archive, target, progress=False)
    assert os.readlink(target / "d/alias") == "real.txt"
    assert (target / "d/hard").read_bytes() == b"data"


def test_zip_symlink_inside_target_becomes_a_link(tmp_path):
    archive = make_zip(tmp_path / "l.zip", [("d/real.txt", b"data")], {"d/alias": "real.txt"})
    target = tmp_path / "t"
    assert safe_extract(archive, target, progress=False) == [target / "d/alias", target / "d/real.txt"]
    assert os.readlink(target / "d/alias") == "real.txt"


def test_complete_extraction_is_not_repeated(tmp_path, monkeypatch):
    archive = make_tar(tmp_path / "a.tgz", VOX_MEMBERS)
    target = tmp_path / "t"
    first = safe_extract(archive, target, 1, progress=False)

    def must_not_open(*args, **kwargs):
        raise AssertionError("archive reopened")

    monkeypatch.setattr(archives.tarfile, "open", must_not_open)
    assert safe_extract(archive, target, 1, progress=False) == first


def test_older_extraction_is_replaced_and_foreign_folder_refused(tmp_path):
    target = tmp_path / "t"
    safe_extract(make_tar(tmp_path / "v1.tgz", [("a.txt", b"one")]), target, progress=False)
    safe_extract(make_tar(tmp_path / "v2.tgz", [("b.txt", b"two")]), target, progress=False)
    assert listing(target) == [archives.MARKER, "b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t", "v1.tgz", "v2.tgz"]

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DownloadError, match="was not extracted by this stage"):
        safe_extract(tmp_path / "v1.tgz", foreign, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_unknown_archive_type(tmp_path):
    junk = tmp_path / "data.tar.gz"
    junk.write_bytes(b"this is not an archive at all\n" * 30)
    with pytest.raises(DownloadError) as err:
        safe_extract(junk, tmp_path / "t", progress=False)
    assert str(err.value) == f"{junk}: unknown archive type (expected tar, tar.gz, tar.bz2, tar.xz or zip)"
    assert not (tmp_path / "t").exists()


GOOD_FIRST = ("good.txt", b"would be written first if members were not all checked up front")

MALICIOUS = {
    # The absolute name points into the folder whose listing is compared, so a write would show.
    "absolute": (
        lambda p: make_tar(p, [GOOD_FIRST, (f"{p.parent}/evil.txt", b"x")]),
        "'{parent}/evil.txt'",
        "is absolute",
    ),
    "dotdot": (
        lambda p: make_tar(p, [GOOD_FIRST, ("sub/../../escape.txt", b"x")]),
        "'sub/../../escape.txt'",
        "escapes the target folder",
    ),
    "symlink_etc": (
        lambda p: make_tar(p, [GOOD_FIRST, ("etc", tarfile.SYMTYPE, "/etc")]),
        "'etc'",
        "is absolute",
    ),
    "symlink_up": (
        lambda p: make_tar(p, [GOOD_FIRST, ("a/up", tarfile.SYMTYPE, "../..")]),
        "'a/up'",
        "escapes the target folder",
    ),
    "through_symlink": (
        lambda p: make_tar(p, [GOOD_FIRST, ("d/l", tarfile.SYMTYPE, ".."), ("d/l/x.txt", b"x")]),
        "'d/l/x.txt'",
        "passes through symbolic link 'd/l'",
    ),
    "hardlink_out": (
        lambda p: make_tar(p, [GOOD_FIRST, ("hl", tarfile.LNKTYPE, "../outside.txt")]),
        "'hl'",
        "escapes the target folder",
    ),
    "hardlink_abs": (
        lambda p: make_tar(p, [GOOD_FIRST, ("hl", tarfile.LNKTYPE, "/etc/passwd")]),
        "'hl'",
        "is absolute",
    ),
    "device": (
        lambda p: make_tar(p, [GOOD_FIRST, ("null", tarfile.CHRTYPE, "")]),
        "'null'",
        "device or fifo",
    ),
    "fifo": (lambda p: make_tar(p, [GOOD_FIRST, ("pipe", tarfile.FIFOTYPE, "")]), "'pipe'", "device or fifo"),
    "zip_dotdot": (
        lambda p: make_zip(p, [GOOD_FIRST, ("../evil.txt", b"x")]),
        "'../evil.txt'",
        "escapes the target folder",
    ),
    "zip_backslash": (
        lambda p: make_zip(p, [GOOD_FIRST, ("..\\evil.txt", b"x")]),
        "'..\\\\evil.txt'",
        "escapes the target folder",
    ),
    "zip_absolute": (
        lambda p: make_zip(p, [GOOD_FIRST, (f"{p.parent}/evil.txt", b"x")]),
        "'{parent}/evil.txt'",
        "is absolute",
    ),
    "zip_symlink_up": (
        lambda p: make_zip(p, [GOOD_FIRST], {"sub/up": "../../.."}),
        "'sub/up'",
        "escapes the target folder",
    ),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archives_are_refused_before_writing(tmp_path, case):
    build, member, reason = MALICIOUS[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = build(tmp_path / "evil.archive")
    target = work / "target"
    before = listing(work), listing(tmp_path)

    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(archive, target, progress=False)

    message = str(err.value)
    member = member.replace("{parent}", str(tmp_path))
    assert message.startswith(f"{archive}: unsafe member {member}: ") and reason in message, message
    assert "\n" not in message
    assert (listing(work), listing(tmp_path)) == before


def test_interrupted_tar_extraction_leaves_no_target(tmp_path, monkeypatch):
    archive = make_tar(tmp_path / "a.tgz", VOX_MEMBERS)
    work = tmp_path / "work"
    work.mkdir()
    real_copy = tarfile.copyfileobj
    calls = []

    def failing_copy(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(tarfile, "copyfileobj", failing_copy)
    with pytest.raises(DownloadError, match="extraction failed: .*No space left on device"):
        safe_extract(archive, work / "target", progress=False)
    assert len(calls) == 2  # one file was already written when it failed
    assert listing(work) == []


def test_interrupted_zip_extraction_leaves_no_target(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "a.zip", VOX_MEMBERS)
    work = tmp_path / "work"
    work.mkdir()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(archives.shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        safe_extract(archive, work / "target", progress=False)
    assert listing(work) == []
