"""MJPEG stream and a small page, so a headless edge device can be watched from a phone.

Binds 127.0.0.1 unless told otherwise, takes an optional access token (``?token=`` or
``Authorization: Bearer``), serves only its own routes (``/``, ``/stream.mjpg``, ``/frame.jpg``), and
never lets a client slow the pipeline: ``publish`` only swaps a reference; each client thread encodes
the newest frame itself and skips any it was too slow to send.
"""

from __future__ import annotations

import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

PAGE = """<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgeseg live</title><style>body{{margin:0;background:#111;color:#ddd;font:14px sans-serif;text-align:center}}
img{{max-width:100vw;max-height:92vh}}</style></head><body>
<img id="stream" src="/stream.mjpg{query}" alt="edgeseg stream"><div>edgeseg live</div></body></html>"""


class MjpegServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 8080, token: str | None = None, quality: int = 80):
        self.token = token
        self.quality = quality
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._closed = False
        self.frames_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the console for the HUD
                pass

            def do_GET(self):
                url = urlparse(self.path)
                if url.path not in ("/", "/stream.mjpg", "/frame.jpg"):
                    return self.send_error(404, "not found")
                if not server._authorized(self.headers.get("Authorization", ""), parse_qs(url.query)):
                    return self.send_error(403, "bad or missing token")
                if url.path == "/":
                    query = f"?token={server.token}" if server.token else ""
                    return self._send(200, "text/html; charset=utf-8", PAGE.format(query=query).encode())
                if url.path == "/frame.jpg":
                    jpeg = server._wait_jpeg(-1)
                    return self._send(200, "image/jpeg", jpeg) if jpeg else self.send_error(503, "no frame yet")
                self._stream()

            def _send(self, code: int, ctype: str, body: bytes):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                seen = -1
                try:
                    while not server._closed:
                        seq, jpeg = server._next_jpeg(seen)
                        if jpeg is None:
                            continue
                        seen = seq
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                        server.frames_sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="edgeseg-mjpeg", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/" + (f"?token={self.token}" if self.token else "")

    def _authorized(self, header: str, query: dict) -> bool:
        if not self.token:
            return True
        given = query.get("token", [""])[0] or header.removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    def start(self) -> "MjpegServer":
        self._thread.start()
        return self

    def publish(self, frame: np.ndarray) -> None:
        """Offer a BGR frame to clients (a copy: the caller may reuse its array); never blocks on them."""
        frame = frame.copy()
        with self._cond:
            self._frame, self._seq = frame, self._seq + 1
            self._cond.notify_all()

    def _next_jpeg(self, seen: int, timeout: float = 1.0):
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seen or self._closed, timeout=timeout)
            if self._seq == seen or self._frame is None:
                return seen, None
            frame, seq = self._frame, self._seq
        ok, jpeg = cv2.imencode(".jpg", frame[..., :3], [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return seq, jpeg.tobytes() if ok else None

    def _wait_jpeg(self, seen: int) -> bytes | None:
        return self._next_jpeg(seen, timeout=2.0)[1]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
