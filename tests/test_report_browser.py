"""The HTML report in a real browser: headless Chromium (Debian's `chromium`, installed by .ci/run),
driven over the Chrome DevTools Protocol on a pipe (`--remote-debugging-pipe`: no port, no
websocket library, nothing to download).

Checks: the page loads with no console error, no uncaught exception and no request other than
the file:// page itself (data: images are not requests); a screenshot is not one flat colour;
a click on a table header reorders the rows.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from stages.report.build import build_report
from test_report import CORENET, FIXED_PROVENANCE, MODELS, write_run

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; .ci/run does)"
)


class DevToolsError(RuntimeError):
    pass


def _above_ten(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Chromium:
    """A headless Chromium and one page target, spoken to in CDP messages over fds 3 and 4."""

    def __init__(self, profile: Path):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # The child's ends move to fds >= 10 first, so that putting them on 3 and 4 cannot
        # overwrite one with the other, whatever numbers os.pipe() happened to return.
        to_browser_read, from_browser_write = (_above_ten(to_browser_read), _above_ten(from_browser_write))
        command = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-quic", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--mute-audio", "--hide-scrollbars", f"--user-data-dir={profile}",
            "--remote-debugging-pipe", "--window-size=1280,900", "about:blank",
        ]
        # Chromium reads commands from fd 3 and writes replies to fd 4; bash moves the pipe ends there.
        script = f'exec "$@" 3<&{to_browser_read} 4>&{from_browser_write} {to_browser_read}<&- {from_browser_write}>&-'
        self.process = subprocess.Popen(
            ["bash", "-c", script, "chromium", *command],
            pass_fds=(to_browser_read, from_browser_write),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    # -- transport ---------------------------------------------------------------------------

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DevToolsError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise DevToolsError(f"Chromium exited: {self.process.stderr.read().decode(errors='replace')[-2000:]}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, page: bool = True, timeout: float = 30) -> dict:
        """Send a command (to the page session unless page=False) and return its result."""
        request = self._send(method, params, self.session if page else None)
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == request:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event["method"] == method:
                return event
        while True:
            message = self._receive(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message

    def drain(self, seconds: float) -> None:
        """Collect events that arrive within `seconds` (late console messages, requests)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                message = self._receive(deadline)
                if "method" in message:
                    self.events.append(message)
        except DevToolsError as err:
            if "timed out" not in str(err):
                raise

    # -- page --------------------------------------------------------------------------------

    def open_page(self) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, page=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True}, page=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})

    def navigate(self, url: str) -> None:
        self.events.clear()
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise DevToolsError(f"navigation failed: {result['errorText']}")
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent",
                      {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def screenshot(self) -> Image.Image:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")

    def close(self) -> None:
        try:
            self.call("Browser.close", page=False, timeout=5)
        except (DevToolsError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self.process.stderr.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-browser")
    results, config = write_run(root)
    out = build_report(results, list(MODELS), [config], results / "report" / "index.html", provenance=FIXED_PROVENANCE)
    browser = Chromium(root / "profile")
    try:
        browser.open_page()
        url = out.resolve().as_uri()
        browser.navigate(url)
        browser.drain(1.0)
        load_events = list(browser.events)
        yield browser, url, load_events
    finally:
        browser.close()
        shutil.rmtree(root / "profile", ignore_errors=True)


def test_loads_without_console_errors(page):
    _, _, events = page
    problems = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            problems.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            problems.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            problems.append(f"log {params['entry']['level']}: {params['entry']['text']}")
    assert problems == []


def test_makes_no_network_requests(page):
    _, url, events = page
    requests = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    assert url in requests, "the page itself was not seen loading: is the Network domain on?"
    outside = [r for r in requests if r != url and not r.startswith("data:")]
    assert outside == []


def test_page_renders_images_and_is_not_blank(page):
    browser, _, _ = page
    shot = browser.screenshot()
    assert shot.size == (1280, 900)
    low, high = zip(*shot.getextrema())
    assert max(high) - min(low) > 100, "the screenshot is one flat colour"
    assert len(shot.getcolors(maxcolors=1 << 20) or []) > 20
    decoded = browser.evaluate(
        "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert decoded and all(done and w == 7 * 32 and h == 32 for done, w, h in decoded)


def _column(browser: Chromium, table_id: str, index: int) -> list[str]:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('#{table_id} tbody tr'))"
        f".map(r => r.cells[{index}].textContent.trim())"
    )


def _click_header(browser: Chromium, table_id: str, label: str) -> None:
    box = browser.evaluate(
        f"""(() => {{
            const b = Array.from(document.querySelectorAll('#{table_id} thead th button'))
                .find(b => b.textContent.trim() === {json.dumps(label)});
            b.scrollIntoView({{block: 'center'}});
            const r = b.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2];
        }})()"""
    )
    browser.click(*box)


def test_header_click_sorts_rows(page):
    browser, _, _ = page
    classes = [c for c in CORENET["m7"]["iou"] if not c.startswith("__")]
    assert _column(browser, "classes-m7", 0) == sorted(classes)
    by_iou = sorted(classes, key=lambda c: -CORENET["m7"]["iou"][c])
    _click_header(browser, "classes-m7", "IoU (%)")
    assert _column(browser, "classes-m7", 0) == by_iou  # numbers first click: best first
    _click_header(browser, "classes-m7", "IoU (%)")
    assert _column(browser, "classes-m7", 0) == by_iou[::-1]
    # Footer rows (mean, global, void, paper) never move.
    footer = browser.evaluate("Array.from(document.querySelectorAll('#classes-m7 tfoot th')).map(c => c.textContent)")
    assert footer[-1] == "paper (real ShapeNet)"


def test_sort_puts_missing_values_last(page):
    browser, _, _ = page
    _click_header(browser, "classes-h5", "IoU (%)")
    assert _column(browser, "classes-h5", 1) == ["62.3", "55.1", "\u2013"]
    _click_header(browser, "classes-h5", "IoU (%)")
    assert _column(browser, "classes-h5", 1) == ["55.1", "62.3", "\u2013"]
    _click_header(browser, "classes-h5", "class")
    assert _column(browser, "classes-h5", 0) == ["airplane", "chair", "table"]


def test_sections_are_linkable(page):
    browser, _, _ = page
    for anchor in ("model-r2n2", "datasets", "h5-qualitative"):
        browser.evaluate(f"location.hash = '#{anchor}'")
        top = browser.evaluate(f"document.getElementById('{anchor}').getBoundingClientRect().top")
        assert abs(top) < 2, f"#{anchor} did not scroll to its section"
