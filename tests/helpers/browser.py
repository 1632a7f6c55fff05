"""Headless Chromium driven over the DevTools protocol: open pages, read their text, click, screenshot.

The tests use the browser a user has (Debian's `chromium`, which .ci/run installs) and talk to it
directly over its debugging websocket, so no browser-automation package is needed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

CHROMIUM = Path("/usr/bin/chromium")


def chromium_binary() -> str:
    """Chromium's path; skips the test without it, or fails when CHATSIFT_REQUIRE_SHARED=1 (as in .ci/run)."""
    path = shutil.which("chromium") or (str(CHROMIUM) if CHROMIUM.exists() else None)
    if path is None:
        if os.environ.get("CHATSIFT_REQUIRE_SHARED") == "1":
            pytest.fail("CHATSIFT_REQUIRE_SHARED=1 but chromium is missing (apt-get install -y chromium)")
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium); .ci/run installs it")
    return path


def kept_artifacts_dir(name: str) -> Path:
    """Where a test keeps what a person may want to look at afterwards (screenshots): CHATSIFT_TEST_ARTIFACTS,
    by default test-artifacts/ in the checkout (ignored by git)."""
    root = Path(os.environ.get("CHATSIFT_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class BrowserError(AssertionError):
    pass


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path, *, width: int = 1400, height: int = 1400, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._next_id = 0
        profile.mkdir(parents=True, exist_ok=True)
        # a profile used before keeps the port file of its last browser
        (profile / "DevToolsActivePort").unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [
                chromium_binary(),
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._ws = self._connect(profile / "DevToolsActivePort")
            # a headless window never has the focus; without this, focus-driven widgets do not react
            self.call("Emulation.setFocusEmulationEnabled", enabled=True)
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _connect(self, port_file: Path) -> ClientConnection:
        deadline = time.monotonic() + self.timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"chromium did not open its debugging port (exit {self._proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            [page] = [t for t in json.loads(r.read()) if t["type"] == "page"]
        return connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One protocol command; its result (events that arrive meanwhile are skipped)."""
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return dict(message["result"])

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", f"{url} to load")

    def wait_for(self, expression: str, what: str, timeout: float | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                shown = self.text()[:3000]
                raise BrowserError(f"waited {timeout or self.timeout} s for {what}; the page shows:\n{shown}")
            time.sleep(0.25)

    def wait_until_settled(self, quiet: float = 1.0, timeout: float | None = None) -> None:
        """Wait until the page's HTML stops changing for `quiet` seconds: a single-page app has loaded its
        data and drawn it, so what is typed now is not wiped by a late re-render."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            html = self.evaluate("document.documentElement.outerHTML")
            if html != last:
                last, since = html, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)
        raise BrowserError(f"the page kept changing for {timeout or self.timeout} s")

    def wait_for_text(self, text: str, timeout: float | None = None) -> None:
        self.wait_for(f"document.body && document.body.innerText.includes({json.dumps(text)})", repr(text), timeout)

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def click_text(self, selector: str, text: str) -> None:
        """Click the first element matching `selector` whose visible text is `text`."""
        found = self.evaluate(
            f"(() => {{ const el = [...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => e.innerText.trim() === {json.dumps(text)}); if (el) el.click(); return !!el; }})()"
        )
        if not found:
            raise BrowserError(f"no {selector} with text {text!r}; the page shows:\n{self.text()[:3000]}")

    def fill(self, element: str, text: str) -> None:
        """Set the text of the input or textarea that the JavaScript expression `element` finds, as typing
        would: the value, then the input and change events the page's own handlers listen to."""
        done = self.evaluate(
            f"(() => {{ const el = {element}; if (!el) return false; "
            "const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement : HTMLInputElement; "
            "Object.getOwnPropertyDescriptor(proto.prototype, 'value').set.call(el, "
            f"{json.dumps(text)}); "
            "el.dispatchEvent(new Event('input', {bubbles: true})); "
            "el.dispatchEvent(new Event('change', {bubbles: true})); return true; })()"
        )
        if not done:
            raise BrowserError(f"no element {element} to fill; the page shows:\n{self.text()[:3000]}")

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        """A PNG of the window (the page's whole height with `full_page`: a relayout, which took over 30 s on
        two busy cores; a single-page app scrolls inside the window anyway)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
