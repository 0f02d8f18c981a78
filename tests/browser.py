"""The system Chromium for the browser tests: find it (or skip; fail on CI), run it
headless with the standard flags, and kill its whole process group however a test ends;
a page's DOM after its scripts ran, and screenshots checked and kept for a human to see;
and, for pages a test must measure or drive (input events, layout), a minimal DevTools
protocol client (CDP) on a Chromium started with remote debugging (chromium()).

No browser is downloaded: Debian's `chromium` package (.ci/run installs it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest

CHROMIUM = "/usr/bin/chromium"
STEP_TIMEOUT = 60  # seconds, per one-shot chromium run
CDP_STEP = 15  # seconds, any single wait of a page driven over DevTools

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--disable-domain-reliability",
    "--no-default-browser-check", "--no-proxy-server", "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def need_chromium() -> None:
    """Skip the test without the system Chromium; on CI (CI=true) that is a failure."""
    if os.access(CHROMIUM, os.X_OK):
        return
    msg = (f"{CHROMIUM} not found: this browser test needs the system Chromium "
           "(Debian package `chromium`; .ci/run installs it)")
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


async def launch(profile, *args: str, window: tuple[int, int], stdout: int | None,
                 stderr: int | None) -> asyncio.subprocess.Process:
    """Start headless Chromium with the standard flags in a new process group (its helpers,
    zygote and renderers, join it: kill() ends them all)."""
    return await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--window-size={window[0]},{window[1]}",
        f"--user-data-dir={profile}", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True)


async def kill(proc: asyncio.subprocess.Process) -> None:
    """Kill Chromium's whole process group and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 10)


async def run(tmp_path, *args: str, window: tuple[int, int] = (1400, 900),
              timeout: float = STEP_TIMEOUT) -> tuple[bytes, str]:
    """Run headless Chromium on one page to completion (--dump-dom, --screenshot=…), within
    `timeout`, with 5 s of the page's virtual time; return its stdout and stderr."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    proc = await launch(profile, "--virtual-time-budget=5000", *args, window=window,
                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        pytest.fail(f"chromium {' '.join(args)} did not finish within {timeout}s", pytrace=False)
    finally:
        await kill(proc)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
    return out, err.decode(errors="replace")


async def dump_dom(tmp_path, url: str) -> str:
    """The page's DOM after its scripts ran. The page must not log to the console:
    --enable-logging=stderr puts its console (errors, failed loads, CSP refusals) on stderr."""
    out, err = await run(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    console = [line for line in err.splitlines() if ":CONSOLE" in line]
    assert not console, "the page logged to the console:\n" + "\n".join(console)
    return out.decode()


def keep_png(png: Path, copy_to: str) -> int:
    """Check that Chromium wrote a real screenshot (a PNG, not a blank page) and copy it
    where a human can look at it; return its size."""
    assert png.exists(), "chromium wrote no screenshot"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000, f"screenshot is only {len(data)} bytes: a blank page?"
    shutil.copyfile(png, copy_to)
    return len(data)


async def screenshot(tmp_path, url: str, copy_to: str) -> int:
    """Screenshot the page (window size as run()'s) to copy_to, checked by keep_png."""
    png = tmp_path / Path(copy_to).name
    await run(tmp_path, f"--screenshot={png}", url)
    return keep_png(png, copy_to)


# ---------------------------------------------------------------- DevTools protocol


class CDPError(Exception):
    pass


class CDP:
    """A minimal DevTools protocol client: one browser WebSocket, one flattened page session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.session: str | None = None
        self.problems: list[str] = []  # uncaught exceptions and console errors of the page
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self.pending.pop(data["id"], None)
                if fut and not fut.done():
                    if "error" in data:
                        fut.set_exception(CDPError(data["error"].get("message", data["error"])))
                    else:
                        fut.set_result(data.get("result", {}))
                continue
            method, params = data.get("method"), data.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                self.problems.append("exception: " + (details.get("exception", {}).get("description")
                                                      or details.get("text", "")))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = [a.get("value", a.get("description", "")) for a in params.get("args", [])]
                self.problems.append("console.error: " + " ".join(map(str, args)))
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(CDPError("the DevTools connection closed"))

    async def send(self, method: str, params: dict | None = None, *, page: bool = True) -> dict:
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if page and self.session:
            msg["sessionId"] = self.session
        fut = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = fut
        await self.ws.send_str(json.dumps(msg))
        return await asyncio.wait_for(fut, CDP_STEP)

    async def attach(self) -> None:
        targets = (await self.send("Target.getTargets", page=False))["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = (await self.send("Target.attachToTarget", {
            "targetId": page["targetId"], "flatten": True}, page=False))["sessionId"]
        for domain in ("Page", "Runtime"):
            await self.send(f"{domain}.enable")

    async def js(self, expression: str):
        """Evaluate in the page (awaiting promises); the value, or CDPError if it threw."""
        result = await self.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = CDP_STEP):
        """Poll a JS expression until it is truthy; survives navigations in between."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = await self.js(expression)
                if last:
                    return last
            except CDPError as exc:  # the page is navigating: no context to evaluate in
                last = exc
            await asyncio.sleep(0.05)
        state = await self._describe()
        pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r}); {state}",
                    pytrace=False)

    async def _describe(self) -> str:
        with contextlib.suppress(Exception):
            return await self.js("location.href + ' :: ' + document.body.innerText.slice(0, 800)")
        return "page state unavailable"

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete' && location.href", f"load of {url}")

    async def center(self, selector: str) -> tuple[float, float]:
        box = await self.wait_for(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el || el.disabled || el.hidden) return null;
            el.scrollIntoView({{block: "nearest"}});
            const r = el.getBoundingClientRect();
            return r.width && r.height ? [r.x + r.width / 2, r.y + r.height / 2] : null;
        }})()""", f"{selector} to be visible and enabled")
        return box[0], box[1]

    async def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the element's centre."""
        await self.click_at(*await self.center(selector))

    async def click_at(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", {
                "type": kind, "x": x, "y": y, "button": "left" if kind != "mouseMoved" else "none",
                "clickCount": 1})

    async def type(self, text: str) -> None:
        """Type into the focused element, as the keyboard would (IME-style text insertion)."""
        await self.send("Input.insertText", {"text": text})

    async def key(self, key: str, code: str, keycode: int, text: str = "", modifiers: int = 0) -> None:
        base = {"key": key, "code": code, "windowsVirtualKeyCode": keycode,
                "nativeVirtualKeyCode": keycode, "modifiers": modifiers}
        await self.send("Input.dispatchKeyEvent", {"type": "keyDown", "text": text, **base})
        await self.send("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    async def viewport(self, width: int, height: int, mobile: bool) -> None:
        await self.send("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    async def screenshot(self, path) -> int:
        data = base64.b64decode((await self.send("Page.captureScreenshot", {"format": "png"}))["data"])
        path.write_bytes(data)
        return len(data)


@contextlib.asynccontextmanager
async def chromium(tmp_path, window: tuple[int, int] = (1280, 820)):
    """Headless Chromium with remote debugging on a free port, steered through CDP;
    killed (its whole process group) however the test ends."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    proc = await launch(profile, "--mute-audio", "--remote-debugging-port=0",
                        "about:blank", window=window,
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    stderr: list[str] = []
    found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read_stderr() -> None:  # keep draining, or a chatty Chromium blocks on the pipe
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            stderr.append(line)
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m and not found.done():
                found.set_result(m.group(1))
        if not found.done():
            found.set_exception(AssertionError(
                "chromium exited before DevTools listened:\n" + "\n".join(stderr[-30:])))

    drain = asyncio.create_task(read_stderr())
    try:
        ws_url = await asyncio.wait_for(found, CDP_STEP)
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(ws_url, max_msg_size=64 * 1024 * 1024) as ws:
                cdp = CDP(ws)
                try:
                    await cdp.attach()
                    yield cdp
                finally:
                    cdp.reader.cancel()
    finally:
        await kill(proc)
        drain.cancel()
