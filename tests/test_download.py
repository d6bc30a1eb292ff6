"""Tests for the download stage: resumable fetching, verification, and the command line.

All network traffic goes to a loopback server started here; nothing leaves the machine.
Extraction itself is tested in test_archives.py.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stages import archives, download
from stages.download import DownloadError, fetch
from test_archives import VOX_MEMBERS, listing, make_tar, sha

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# a loopback HTTP server that can misbehave on request


class FileServer:
    """Serves `files` by name; records each request's path and Range header."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[dict[str, str | None]] = []
        self.drop_after: int | None = None  # first request: close after this many body bytes
        self.ignore_range = False  # answer 200 with the whole file even when asked for a range
        self.fail_first_with: int | None = None  # first request: answer this status instead
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, name: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                with server.lock:
                    first = not server.requests
                    server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                name = self.path.lstrip("/")
                if first and server.fail_first_with:
                    self.send_error(server.fail_first_with)
                    return
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = 0
                wanted = self.headers.get("Range")
                if wanted and not server.ignore_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if first and server.drop_after is not None:
                    self.wfile.write(body[: server.drop_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


@pytest.fixture
def server():
    srv = FileServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()

# --------------------------------------------------------------------------------------------
# fetching: local sources


def test_plain_path_is_copied_not_moved_or_linked(tmp_path):
    data = b"scene archive bytes" * 100
    src = tmp_path / "src.tar"
    src.write_bytes(data)
    link = tmp_path / "link.tar"
    link.symlink_to(src)
    dest = tmp_path / "out" / "dest.tar"

    assert fetch(str(link), dest, sha(data), progress=False) == dest

    assert dest.read_bytes() == data
    assert not dest.is_symlink() and stat.S_ISREG(dest.lstat().st_mode)
    assert src.read_bytes() == data and link.is_symlink()
    assert not (tmp_path / "out" / "dest.tar.part").exists()


def test_file_url_and_uppercase_hash(tmp_path):
    data = b"\x00\x01binary" * 50
    src = tmp_path / "with space.zip"
    src.write_bytes(data)
    dest = tmp_path / "dest.zip"

    fetch(src.as_uri(), dest, sha(data).upper(), progress=False)

    assert dest.read_bytes() == data


def test_missing_local_path_names_source_and_reason(tmp_path):
    missing = tmp_path / "nope.tgz"
    dest = tmp_path / "dest.tgz"
    with pytest.raises(DownloadError) as err:
        fetch(str(missing), dest, "0" * 64, progress=False)
    assert str(err.value) == f"{missing}: cannot read: No such file or directory"
    assert listing(tmp_path) == []


def test_skip_hash_warns(tmp_path, capsys):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    dest = tmp_path / "dest.bin"
    fetch(src, dest, "skip", progress=False)
    assert dest.read_bytes() == b"abc"
    assert (
        f"sha256 check skipped (--sha256 skip); the file's sha256 is {sha(b'abc')}" in capsys.readouterr().err
    )


def test_invalid_hash_is_refused_before_anything(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    with pytest.raises(DownloadError, match="invalid sha256 'abc'"):
        fetch(src, tmp_path / "dest.bin", "abc", progress=False)


def test_mismatch_keeps_bad_file_and_no_dest(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"tampered")
    dest = tmp_path / "d" / "dest.bin"
    expected = sha(b"original")
    with pytest.raises(DownloadError) as err:
        fetch(src, dest, expected, progress=False)
    assert str(err.value) == f"{dest}: sha256 mismatch: expected {expected}, got {sha(b'tampered')}"
    assert not dest.exists()
    assert (tmp_path / "d" / "dest.bin.bad").read_bytes() == b"tampered"
    assert not (tmp_path / "d" / "dest.bin.part").exists()


def test_existing_dest_with_wrong_hash_is_replaced(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"good")
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"stale")
    fetch(src, dest, sha(b"good"), progress=False)
    assert dest.read_bytes() == b"good"
    assert (tmp_path / "dest.bin.bad").read_bytes() == b"stale"


# --------------------------------------------------------------------------------------------
# fetching: HTTP


def test_http_download_and_idempotent_second_call(server, tmp_path):
    data = os.urandom(300_000)
    server.files["h7.tar"] = data
    dest = tmp_path / "h7.tar"

    fetch(server.url("h7.tar"), dest, sha(data), progress=True)
    assert dest.read_bytes() == data
    assert len(server.requests) == 1 and server.requests[0]["range"] is None

    fetch(server.url("h7.tar"), dest, sha(data), progress=False)
    assert len(server.requests) == 1  # verified in place, no request made


def test_resume_after_dropped_connection(server, tmp_path):
    data = os.urandom(200_000)
    server.files["vox.tgz"] = data
    server.drop_after = 70_000
    dest = tmp_path / "vox.tgz"

    fetch(server.url("vox.tgz"), dest, sha(data), progress=False, backoff=0)

    assert [r["range"] for r in server.requests] == [None, "bytes=70000-"]
    assert sha(dest.read_bytes()) == sha(data)
    assert not (tmp_path / "vox.tgz.part").exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = os.urandom(50_000)
    server.files["r.tgz"] = data
    server.ignore_range = True
    dest = tmp_path / "r.tgz"
    (tmp_path / "r.tgz.part").write_bytes(b"x" * 1234)  # garbage that must not survive

    fetch(server.url("r.tgz"), dest, sha(data), progress=False)

    assert [r["range"] for r in server.requests] == ["bytes=1234-"]
    assert dest.read_bytes() == data


def test_complete_part_file_answered_416_goes_to_verification(server, tmp_path):
    data = os.urandom(10_000)
    server.files["c.zip"] = data
    dest = tmp_path / "c.zip"
    (tmp_path / "c.zip.part").write_bytes(data)

    fetch(server.url("c.zip"), dest, sha(data), progress=False)

    assert [r["range"] for r in server.requests] == [f"bytes={len(data)}-"]
    assert dest.read_bytes() == data


def test_transient_503_is_retried(server, tmp_path):
    server.files["t.tar"] = b"payload"
    server.fail_first_with = 503
    dest = tmp_path / "t.tar"
    fetch(server.url("t.tar"), dest, sha(b"payload"), progress=False, backoff=0)
    assert dest.read_bytes() == b"payload" and len(server.requests) == 2


def test_404_is_one_line_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "missing.tgz"
    url = server.url("missing.tgz")
    with pytest.raises(DownloadError) as err:
        fetch(url, dest, "a" * 64, progress=False, backoff=0)
    assert str(err.value) == f"{url}: HTTP 404 Not Found"
    assert len(server.requests) == 1  # not retried
    assert listing(tmp_path) == []


def test_unreachable_source_gives_up_after_retries(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.tar"
    with pytest.raises(DownloadError) as err:
        fetch(url, tmp_path / "x.tar", "a" * 64, progress=False, retries=2, backoff=0)
    message = str(err.value)
    assert message.startswith(f"{url}: unreachable: ") and "gave up after 3 attempts" in message
    assert "\n" not in message

# --------------------------------------------------------------------------------------------
# command line


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop(download.DEBUG_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "stages.download", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_help_documents_every_option():
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--source", "--sha256", "--dest", "--extract-to", "--strip-components", "--retries"):
        assert option in result.stdout


def test_cli_download_and_extract(server, tmp_path):
    archive = make_tar(tmp_path / "src.tgz", VOX_MEMBERS)
    server.files["ShapeNetVox32.tgz"] = archive.read_bytes()
    dest = tmp_path / "data" / "ShapeNetVox32.tgz"
    target = tmp_path / "data" / "ShapeNetVox32"

    result = run_cli(
        "--source",
        server.url("ShapeNetVox32.tgz"),
        "--sha256",
        sha(archive.read_bytes()),
        "--dest",
        str(dest),
        "--extract-to",
        str(target),
        "--strip-components",
        "1",
    )

    assert result.returncode == 0, result.stderr
    assert (target / "03001627/c7/model.binvox").read_bytes() == VOX_MEMBERS[2][1]
    assert listing(tmp_path / "data") == ["ShapeNetVox32", "ShapeNetVox32.tgz"]


def test_cli_mismatch_message_and_exit_code(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    dest = tmp_path / "dest.bin"
    expected = "F" * 64
    result = run_cli("--source", str(src), "--sha256", expected, "--dest", str(dest), "--no-progress")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"download: {dest}: sha256 mismatch: expected {expected.lower()}, got {sha(b'abc')}"
    ]
    assert not dest.exists() and (tmp_path / "dest.bin.bad").exists()


def test_cli_404_has_no_traceback(server, tmp_path):
    url = server.url("gone.tar")
    result = run_cli(
        "--source", url, "--sha256", "a" * 64, "--dest", str(tmp_path / "gone.tar"), "--no-progress"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"download: {url}: HTTP 404 Not Found"]


def test_cli_debug_env_adds_traceback(tmp_path):
    env_run = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.download",
            "--source",
            str(tmp_path / "none"),
            "--sha256",
            "skip",
            "--dest",
            str(tmp_path / "d"),
            "--no-progress",
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), STAGES_DEBUG="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env_run.returncode == 1
    assert "Traceback" in env_run.stderr
    assert (
        env_run.stderr.strip().splitlines()[-1]
        == f"download: {tmp_path / 'none'}: cannot read: No such file or directory"
    )


def test_extraction_api_is_still_importable_from_download():
    # stages.download re-exports what moved to stages.archives, for existing callers.
    assert download.safe_extract is archives.safe_extract
    assert download.UnsafeArchiveError is archives.UnsafeArchiveError
    assert download.DownloadError is archives.DownloadError
    assert download.file_sha256 is archives.file_sha256
    assert download.MARKER == archives.MARKER
