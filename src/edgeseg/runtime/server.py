"""MJPEG stream and a small page, so a headless edge device can be watched from a phone.

Security model: binds 127.0.0.1 unless told otherwise; any other address needs an access token (one is
generated when none is given) unless ``allow_open`` is set; the token is accepted as ``?token=`` or
``Authorization: Bearer`` and is never logged. Only its own routes are served (``/``, ``/stream.mjpg``,
``/frame.jpg``). Limits: at most ``max_clients`` connections (more get 503), a read/write timeout on
every connection and on each whole request, a listen backlog of 64.

Clients barely slow the pipeline: ``publish`` only swaps a reference; a frame is JPEG-encoded once, by
the first client that wants it, at most ``max_fps`` times a second, and every client sends those same
bytes, skipping frames it was too slow for.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import logging
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np
from edgeseg.errors import EdgesegError

log = logging.getLogger("edgeseg")
PAGE = """<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgeseg live</title><style>body{{margin:0;background:#111;color:#ddd;font:14px sans-serif;text-align:center}}
img{{max-width:100vw;max-height:92vh}}</style></head><body>
<img id="stream" src="/stream.mjpg{query}" alt="edgeseg stream"><div>edgeseg live</div></body></html>"""


class ServeError(EdgesegError, ValueError):
    """A --serve address, port or token that cannot be used (the message names it)."""


TOKEN_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


DEFAULT_PORT = 8080  # for a --serve address given without one


def parse_address(spec: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` (loopback) or a host alone (on DEFAULT_PORT), with a clear
    error for anything else."""
    if spec.count(":") > 1 and not spec.startswith("["):
        raise ServeError(f"{spec!r}: put an IPv6 address in brackets: [::1]:{DEFAULT_PORT}")
    if spec.endswith("]") or (":" not in spec and not spec.isdigit()):
        spec = f"{spec}:{DEFAULT_PORT}"
    host, _, port = spec.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"{spec!r}: expected HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:{DEFAULT_PORT} "
                         f"or [::1]:{DEFAULT_PORT}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "127.0.0.1", int(port)


def check_token(token: str | None) -> None:
    """A token travels in URLs and the page: only URL-safe characters (letters, digits, - . _ ~), so that it
    needs no escaping anywhere (a ServeError names the first other one)."""
    if token is None:
        return
    if not token.strip():
        raise ServeError("--token is empty: give a token, or pass --no-token to serve without one")
    bad = next((c for c in token if c not in TOKEN_CHARACTERS), None)
    if bad is not None:
        raise ServeError(f"--token holds {bad!r}: use letters, digits and - . _ ~ only (it travels in URLs and "
                         "the page)")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def machine_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback, as a viewer on the network reaches it."""
    import socket

    import psutil

    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback]


def redact(url: str) -> str:
    """The URL with its token hidden, for logs and reports."""
    return url.split("?token=")[0] + ("?token=…" if "?token=" in url else "")


class _Server(ThreadingHTTPServer):
    """Two caps: ``viewers`` counts the clients that showed the token (``max_clients``); ``pending`` the
    connections whose request has not arrived whole yet, each for a short deadline, so that idle
    connections without a token cannot lock the viewers out."""

    daemon_threads = True
    request_queue_size = 64  # listen backlog: a burst of viewers connects at once

    def __init__(self, address, handler, max_clients: int, max_pending: int, mjpeg: "MjpegServer"):
        self.mjpeg = mjpeg
        self.viewers = threading.BoundedSemaphore(max_clients)
        self.pending = threading.BoundedSemaphore(max_pending)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self.pending.acquire(blocking=False):
            try:  # over the cap: refuse at once, without a thread
                request.sendall(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        """A client that leaves mid-response is routine, not a traceback on the console."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            log.warning("stream client %s: %s: %s", client_address[0], type(exc).__name__, exc)


BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 5\r\n\r\n"


class _Handler(BaseHTTPRequestHandler):
    """One connection: the page, the stream or one frame, for a client that shows the token in time.

    ``self.server`` is the :class:`_Server`, whose ``mjpeg`` is the :class:`MjpegServer` that owns it."""

    def log_message(self, *args):  # keep the console for the HUD; URLs may hold the token
        pass

    def setup(self):
        self.timeout = self.server.mjpeg.timeout  # socket timeout for reading the request and for every write
        super().setup()
        # The whole request must arrive within its deadline: one trickling a byte at a time never
        # idles long enough for the socket's timeout, and would hold its place for good.
        self._late = self._viewer = False
        self._pending = True
        self._deadline = threading.Timer(self.server.mjpeg.request_timeout, self._hang_up)
        self._deadline.daemon = True
        self._deadline.start()

    def _hang_up(self):
        self._late = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _leave_pending(self):
        if self._pending:
            self._pending = False
            self.server.pending.release()

    def parse_request(self):
        parsed = super().parse_request()  # reads the headers
        self._deadline.cancel()
        self._leave_pending()
        if self._late:  # what arrived before the hang-up is not a request to answer
            self.close_connection = True
            return False
        return parsed

    def finish(self):
        self._deadline.cancel()
        self._leave_pending()
        if self._viewer:
            self.server.viewers.release()
        super().finish()

    def do_GET(self):
        url = urlparse(self.path)
        if url.path not in ("/", "/stream.mjpg", "/frame.jpg"):
            return self.send_error(404, "not found")
        if not self.server.mjpeg._authorized(self.headers.get("Authorization", ""), parse_qs(url.query)):
            return self.send_error(403, "bad or missing token")
        if not self.server.viewers.acquire(blocking=False):
            self.close_connection = True
            return self.wfile.write(BUSY)
        self._viewer = True
        if url.path == "/":
            query = f"?token={self.server.mjpeg.token}" if self.server.mjpeg.token else ""
            return self._send(200, "text/html; charset=utf-8", PAGE.format(query=query).encode())
        if url.path == "/frame.jpg":
            jpeg = self.server.mjpeg._next_jpeg(0, timeout=2.0)[1]
            return self._send(200, "image/jpeg", jpeg) if jpeg else self.send_error(503, "no frame yet")
        self._stream()

    do_HEAD = do_GET  # the same answers without their bodies (curl -I, uptime monitors)

    def _send(self, code: int, ctype: str, body: bytes):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command == "HEAD":
            return
        seen = -1
        try:
            while not self.server.mjpeg._closed:
                seq, jpeg = self.server.mjpeg._next_jpeg(seen)
                if jpeg is None:
                    continue
                seen = seq
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                self.server.mjpeg.frames_sent += 1
        except (OSError, socket.timeout):  # gone, reset, or too slow to read: drop the client
            pass


class MjpegServer:
    """Serve published frames as MJPEG.

    Args:
        host, port: where to listen (port 0: any free port).
        token: access token; None on a non-loopback host generates one unless ``allow_open``.
        quality: JPEG quality.
        max_clients: simultaneous connections; more are answered 503.
        timeout: seconds a viewer's connection may stay blocked on a slow reader.
        request_timeout: seconds a connection has to send its whole request (before its token is known).
        max_pending: connections waiting for their request at once; more are answered 503.
        allow_open: serve a non-loopback address without a token (explicitly asked for).
        max_fps: frames per second the stream carries at most (the pipeline may run faster).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None, quality: int = 80,
                 max_clients: int = 32, timeout: float = 10.0, allow_open: bool = False, max_fps: float = 30.0,
                 request_timeout: float = 2.0, max_pending: int = 128):
        check_token(token)
        if token is None and not is_loopback(host) and not allow_open:
            token = secrets.token_urlsafe(16)
        if not 0 <= port <= 65535:
            raise ServeError(f"port {port} is out of range: expected 0 to 65535")
        self.token = token
        self.quality = quality
        self._cond = threading.Condition()
        self._encode_lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._jpeg: tuple[int, bytes | None, float] = (0, None, 0.0)  # newest encoded: seq, bytes, when
        self._interval = 1.0 / max_fps
        self._closed = False
        self.frames_sent = 0
        self.frames_encoded = 0
        self.timeout, self.request_timeout = timeout, request_timeout
        try:
            self.httpd = _Server((host, port), _Handler, max_clients, max_pending, self)
        except OverflowError:
            raise ServeError(f"port {port} is out of range: expected 0 to 65535") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(f"cannot serve on {host}:{port}: the port is in use; pick another with "
                                 "--serve HOST:PORT (port 0 picks a free one)") from None
            raise ServeError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="edgeseg-mjpeg", daemon=True)

    @property
    def url(self) -> str:
        """The page's URL, token included: show it once, to the person who started the server."""
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        """The page's URL at each address a viewer can use: a wildcard bind (0.0.0.0) is reached at the
        machine's own addresses, not at 0.0.0.0, which no phone can open."""
        host, port = self.httpd.server_address[:2]
        hosts = machine_addresses() if host in ("0.0.0.0", "", "::") else [host]
        query = f"?token={self.token}" if self.token else ""
        return [f"http://{_url_host(h)}:{port}/{query}" for h in hosts or [host]]

    def _authorized(self, header: str, query: dict) -> bool:
        if not self.token:
            return True
        scheme, _, credentials = header.strip().partition(" ")
        offered = [*query.get("token", []), *([credentials.strip()] if scheme.lower() == "bearer" else [])]
        # any one right token lets the client in: a stale ?token= in a bookmark must not defeat a right header
        return any(hmac.compare_digest(t.encode(), self.token.encode()) for t in offered if t)

    def start(self) -> "MjpegServer":
        self._thread.start()
        return self

    def publish(self, frame: np.ndarray) -> None:
        """Offer a BGR frame to clients (a copy: the caller may reuse its array); never blocks on them."""
        frame = frame.copy()
        with self._cond:
            self._frame, self._seq = frame, self._seq + 1
            self._cond.notify_all()

    def _next_jpeg(self, seen: int, timeout: float = 1.0) -> tuple[int, bytes | None]:
        """A frame newer than ``seen`` as JPEG bytes: the shared encoding when there is one, else the newest
        frame, encoded once for every client and no sooner than ``1 / max_fps`` after the last."""
        deadline = time.monotonic() + timeout
        while not self._closed:
            with self._encode_lock:
                seq, jpeg, encoded_at = self._jpeg
                if seq > seen and jpeg is not None:
                    return seq, jpeg
                wait = encoded_at + self._interval - time.monotonic()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if wait > 0:
                time.sleep(min(wait, remaining))
                continue
            with self._cond:
                if not self._cond.wait_for(lambda: self._seq > seq or self._closed, timeout=remaining):
                    break
                frame, newest = self._frame, self._seq
            with self._encode_lock:
                if self._jpeg[0] < newest:
                    ok, buf = cv2.imencode(".jpg", frame[..., :3], [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                    self._jpeg = (newest, buf.tobytes() if ok else None, time.monotonic())
                    self.frames_encoded += 1
        return seen, None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
