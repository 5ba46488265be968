"""The live view of a multi-stream run: an HTML page with every stream's overlay (MJPEG) and figures.

    board = LiveBoard(names)                       # the lanes write overlays into it (board.sink(name))
    server = LiveServer(board, summary, "127.0.0.1", 8080).start()
    ...; server.stop()

Routes: ``/`` the page, ``/stream/<name>.mjpg`` a stream's overlay as MJPEG, ``/frame/<name>.jpg`` its latest
overlay, ``/stats.json`` the run's figures, ``/healthz`` 200 while some stream is delivering frames (503 before the
first frame and while none is). A stream without a picture yet shows a placeholder; an ended one keeps its last.
Served by aiohttp (the ``serve`` extra) on its own event loop in a background thread.
"""
from __future__ import annotations

import asyncio
import functools
import html
import json
import threading
import time
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np

from runtime.palette import PALETTE
from runtime.sinks import Sink, overlay
from runtime.sources import Frame

MAX_WIDTH = 640      # overlays are shrunk to this width for the page
MAX_FPS = 15.0       # overlays encoded per stream and second at most (JPEG encoding costs CPU the pipeline needs)
RESEND_S = 0.5      # the latest picture is sent again after this long without a new one
_BOUNDARY = "frame"


class LiveBoard:
    """The latest overlay JPEG of each stream, with a version number that grows with each new picture."""

    def __init__(self, names: Iterable[str], class_names: Sequence[str] = (), quality: int = 80) -> None:
        self.names = list(names)
        self.class_names = list(class_names)
        self.quality = quality
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[bytes, int]] = {}
        self._last_t: dict[str, float] = {}

    def put(self, name: str, image_bgr: np.ndarray, labels: np.ndarray) -> None:
        now = time.monotonic()
        if now - self._last_t.get(name, -1e9) < 1.0 / MAX_FPS:
            return
        self._last_t[name] = now
        picture = overlay(image_bgr, labels)
        if picture.shape[1] > MAX_WIDTH:
            height = round(picture.shape[0] * MAX_WIDTH / picture.shape[1])
            picture = cv2.resize(picture, (MAX_WIDTH, height), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            with self._lock:
                version = self._latest.get(name, (b"", 0))[1] + 1
                self._latest[name] = (data.tobytes(), version)

    def get(self, name: str) -> tuple[bytes | None, int]:
        with self._lock:
            data, version = self._latest.get(name, (None, 0))
        return data, version

    def sink(self, name: str) -> Sink:
        return _BoardSink(self, name)


class _BoardSink(Sink):
    def __init__(self, board: LiveBoard, name: str) -> None:
        self.board = board
        self.name = name

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        self.board.put(self.name, frame.image, labels)

    def describe(self) -> str:
        return ""  # the page, not a file


def parse_address(text: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (``[v6]:PORT``); the host defaults to 127.0.0.1 (loopback only)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--serve {text!r}: expected [HOST:]PORT with a numeric port") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"--serve {text!r}: port {number} is out of range")
    return host or "127.0.0.1", number


class LiveServer:
    """The aiohttp application in a background thread. ``summary()`` returns the figures shown on the page."""

    def __init__(self, board: LiveBoard, summary: Callable[[], dict[str, Any]], host: str = "127.0.0.1",
                 port: int = 8080) -> None:
        self.board = board
        self.summary = summary
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Any = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "LiveServer":
        """Bind and serve; returns once the socket is listening (OSError when the address is taken)."""
        try:
            from aiohttp import web  # noqa: F401 - optional dependency, checked before the thread starts
        except ImportError:
            raise RuntimeError("--serve needs aiohttp: pip install -e '.[serve]'") from None
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start())
            except BaseException as e:  # noqa: BLE001 - reported to the caller of start()
                failure.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=main, name="live-view", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise OSError(f"--serve {self.host}:{self.port}: {failure[0]}")
        return self

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/stats.json", self._stats)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/stream/{name}.mjpg", self._mjpeg)
        app.router.add_get("/frame/{name}.jpg", self._frame)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # the port the system chose

    def stop(self) -> None:
        self._closing.set()
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    # -- handlers -------------------------------------------------------------------------------------------------
    def _known(self, request: Any) -> str:
        from aiohttp import web
        name = request.match_info["name"]
        if name not in self.board.names:
            raise web.HTTPNotFound(text=f"no stream named {name!r}\n")
        return name

    async def _page(self, request: Any) -> Any:
        from aiohttp import web
        return web.Response(text=page_html(self.board.names, self.board.class_names), content_type="text/html")

    async def _stats(self, request: Any) -> Any:
        from aiohttp import web
        return web.json_response(self.summary(), dumps=lambda o: json.dumps(o, default=str))

    async def _health(self, request: Any) -> Any:
        from aiohttp import web
        streams = self.summary()["streams"]
        states = {name: s["state"] for name, s in streams.items()}
        # ok only while some stream delivers frames: not before the first one, not when every stream ended, failed
        # or waits for its camera
        ok = any(s.get("producing") for s in streams.values()) and not self._closing.is_set()
        return web.json_response({"status": "ok" if ok else "failing", "streams": states}, status=200 if ok else 503)

    async def _frame(self, request: Any) -> Any:
        from aiohttp import web
        data, _ = self.board.get(self._known(request))
        if data is None:
            raise web.HTTPServiceUnavailable(text="no frame yet\n")
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _mjpeg(self, request: Any) -> Any:
        from aiohttp import web
        name = self._known(request)
        response = web.StreamResponse(headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={_BOUNDARY}", "Cache-Control": "no-store"})
        await response.prepare(request)
        seen, sent = 0, 0.0
        try:
            await response.write(f"--{_BOUNDARY}\r\n".encode())
            while not self._closing.is_set():
                data, version = self.board.get(name)
                if data is None:  # no picture yet (a camera still connecting, or down): say so in the picture
                    data, version = placeholder_jpeg(name), -1
                # A new picture, or the same one again after a while: browsers show a part only when the next one
                # arrives, so a stream that ended (or stalls) still gets its last picture on the page.
                if version != seen or time.monotonic() - sent > RESEND_S:
                    seen, sent = version, time.monotonic()
                    head = f"Content-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                    await response.write(head + data + f"\r\n--{_BOUNDARY}\r\n".encode())
                await asyncio.sleep(1.0 / MAX_FPS / 2)
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the browser went away, or the server is shutting down
        return response


@functools.cache
def placeholder_jpeg(name: str) -> bytes:
    """The picture of a stream that has none yet: dark grey, 16:9, with a line saying so."""
    image = np.full((180, 320, 3), 48, np.uint8)
    cv2.putText(image, f"{name[:24]}: no picture yet", (12, 96), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (220, 220, 220), 1,
                cv2.LINE_AA)
    return cv2.imencode(".jpg", image)[1].tobytes()


def legend_html(class_names: Sequence[str]) -> str:
    """What the overlay colours mean: a swatch and the name of each class (the background, class 0, is not
    coloured)."""
    items = "".join(f'<span class="swatch" style="background:#{r:02x}{g:02x}{b:02x}"></span>{html.escape(n)} '
                    for n, (r, g, b) in list(zip(class_names, PALETTE.tolist()))[1:])
    return f'<p id="legend">{items}</p>' if items else ""


def page_html(names: list[str], class_names: Sequence[str] = ()) -> str:
    """The live page: one card per stream (MJPEG overlay + figures) and the colour legend; the figures refresh from
    /stats.json."""
    cards = "\n".join(
        f'<section class="card" id="card-{html.escape(n)}"><h2>{html.escape(n)} <span class="state"></span></h2>'
        f'<img src="/stream/{html.escape(n)}.mjpg" alt="{html.escape(n)} overlay">'
        f'<p class="figures">waiting for figures…</p></section>' for n in names)
    return _PAGE.replace("{legend}", legend_html(class_names)).replace("{cards}", cards)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>deeplab-infer: live view</title>
<style>
body { font-family: sans-serif; margin: 12px; background: #222; color: #eee; }
main { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #333; padding: 8px; border-radius: 6px; }
.card h2 { font-size: 16px; margin: 0 0 6px 0; }
.card img { display: block; width: 320px; min-height: 180px; background: #000; }
.figures { font-size: 12px; margin: 6px 0 0 0; width: 320px; }
#aggregate { font-size: 13px; margin-bottom: 10px; }
#legend { font-size: 12px; margin: 0 0 10px 0; }
.swatch { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 8px; }
</style></head>
<body><h1 style="font-size:18px">deeplab-infer live view</h1><p id="aggregate"></p>{legend}<main>
{cards}
</main>
<script>
async function refresh() {
  try {
    const s = await (await fetch('/stats.json', {cache: 'no-store'})).json();
    const a = s.aggregate;
    document.getElementById('aggregate').textContent =
      `all streams: ${a.fps.toFixed(1)} fps, ${a.frames.processed} frames, p99 ${a.end_to_end.p99_ms.toFixed(0)} ms, ` +
      `mean batch ${a.batch.mean.toFixed(2)} of ${a.batch.max}, ${a.reconnects} reconnects`;
    for (const [name, st] of Object.entries(s.streams)) {
      const card = document.getElementById('card-' + name);
      if (!card) continue;
      card.querySelector('.state').textContent = '(' + st.state + ')';
      const f = st.frames, e = st.end_to_end, g = st.latency;
      card.querySelector('.figures').textContent =
        `${st.recent_fps.toFixed(1)} fps now, ${f.processed} processed, ${f.dropped} dropped, ${f.skipped} skipped, ` +
        `${f.failed} failed; p50/p90/p99 ${e.p50_ms.toFixed(0)}/${e.p90_ms.toFixed(0)}/${e.p99_ms.toFixed(0)} ms; ` +
        `glass to mask ${g.p50_ms.toFixed(0)}/${g.p90_ms.toFixed(0)}/${g.p99_ms.toFixed(0)} ms; ` +
        `${st.reconnects} reconnects`;
    }
  } catch (err) { document.getElementById('aggregate').textContent = 'figures unavailable: ' + err; }
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""
