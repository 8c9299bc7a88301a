"""The MJPEG server with a real HTTP client, and the page in headless Chromium."""

import shutil
import subprocess
import re
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from edgeseg.runtime.server import MjpegServer
from tests.helpers import http_get
from typer.testing import CliRunner
from edgeseg.cli import app
from tests.helpers import one_line

runner = CliRunner()

TOKEN = "s3cret"


@pytest.fixture
def server():
    srv = MjpegServer("127.0.0.1", 0, token=TOKEN).start()
    stop = threading.Event()

    def feed():  # a frame whose brightness changes every time: consecutive frames differ
        i = 0
        while not stop.is_set():
            srv.publish(np.full((48, 64, 3), (i * 37) % 256, np.uint8))
            i += 1
            time.sleep(0.03)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    yield srv
    stop.set()
    thread.join()
    srv.close()


def test_binds_loopback_by_default():
    srv = MjpegServer(port=0)
    assert srv.httpd.server_address[0] == "127.0.0.1"
    srv.close()


def test_token_and_routes(server):
    for path in ("/", "/frame.jpg?token=wrong", "/stream.mjpg"):
        _, resp = http_get(server, path)
        assert resp.status == 403, path
    _, resp = http_get(server, f"/admin?token={TOKEN}")
    assert resp.status == 404
    _, resp = http_get(server, "/../../etc/passwd")
    assert resp.status == 404
    _, resp = http_get(server, f"/?token={TOKEN}")
    page = resp.read().decode()
    assert resp.status == 200 and f'src="/stream.mjpg?token={TOKEN}"' in page
    _, resp = http_get(server, "/frame.jpg", {"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200 and resp.getheader("Content-Type") == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)


def test_head_requests_get_the_headers_of_the_same_answers(server):
    # curl -I and uptime monitors ask with HEAD: every path was 501 "Unsupported method"
    host, port = server.httpd.server_address[:2]
    for path, status, kind in (("/", 403, None), (f"/?token={TOKEN}", 200, "text/html; charset=utf-8"),
                               (f"/frame.jpg?token={TOKEN}", 200, "image/jpeg"),
                               (f"/stream.mjpg?token={TOKEN}", 200, "multipart/x-mixed-replace; boundary=frame"),
                               (f"/admin?token={TOKEN}", 404, None)):
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(f"HEAD {path} HTTP/1.0\r\n\r\n".encode())
            answer = b""
            while chunk := conn.recv(65536):  # to the end: the server closes after the headers
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split()[1] == str(status).encode(), (path, head)
        assert kind is None or f"Content-Type: {kind}".encode() in head, head
        assert body == b"", path


def test_stream_delivers_changing_frames(server):
    conn, resp = http_get(server, f"/stream.mjpg?token={TOKEN}")
    assert resp.status == 200 and "multipart/x-mixed-replace" in resp.getheader("Content-Type")
    values = []
    for _ in range(4):
        assert resp.readline() == b"--frame\r\n"
        headers = {}
        while (line := resp.readline()) != b"\r\n":
            key, _, value = line.decode().partition(":")
            headers[key.lower()] = value.strip()
        jpeg = resp.read(int(headers["content-length"]))
        resp.readline()
        values.append(int(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).mean()))
    conn.close()
    assert len(set(values)) == 4


def test_a_stalled_client_never_blocks_publish():
    srv = MjpegServer("127.0.0.1", 0).start()
    conn, resp = http_get(srv, "/stream.mjpg")  # connected, never reads again
    big = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    done = threading.Event()

    def publish_many():
        for _ in range(300):
            srv.publish(big)
        done.set()

    threading.Thread(target=publish_many, daemon=True).start()
    assert done.wait(20), "publish() blocked behind a client that does not read"
    conn.close()
    srv.close()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--window-size=320,240"]


def _screenshot(url: str, path, profile) -> np.ndarray:
    subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}",
                    "--virtual-time-budget=1500", "--timeout=4000", url],
                   capture_output=True, timeout=60, check=False)
    image = cv2.imread(str(path))
    assert image is not None, "chromium wrote no screenshot"
    return image


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_page_shows_changing_frames_in_chromium(server, tmp_path):
    url = server.url
    first = _screenshot(url, tmp_path / "a.png", tmp_path / "profile-a")
    time.sleep(0.5)
    second = _screenshot(url, tmp_path / "b.png", tmp_path / "profile-b")
    # The 64x48 stream image sits at the top centre of the 320 px wide page: it must be visible (flat and
    # brighter than the page) and differ between the two shots.
    patch_a, patch_b = first[8:40, 136:184].astype(int), second[8:40, 136:184].astype(int)
    assert patch_a.std() < 10 and patch_b.std() < 10  # a flat frame, not page chrome
    assert abs(patch_a.mean() - patch_b.mean()) > 5


def test_published_frame_is_a_copy():
    """The live loop reuses its output array; a frame being served must not change under the encoder."""
    srv = MjpegServer("127.0.0.1", 0).start()
    try:
        frame = np.full((48, 64, 3), 200, np.uint8)
        srv.publish(frame)
        frame[:] = 0  # the pipeline overwrites its buffer with the next frame
        _, resp = http_get(srv, "/frame.jpg")
        image = cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_COLOR)
        assert abs(float(image.mean()) - 200) < 3
    finally:
        srv.close()


def test_tokens_are_url_safe_and_any_right_token_lets_a_client_in():
    from edgeseg.runtime.server import MjpegServer, ServeError

    for bad in ('a"b', "<script>", "a b", "x&y=1", "ä"):
        with pytest.raises(ServeError, match="use letters, digits and - . _ ~ only"):
            MjpegServer("127.0.0.1", 0, token=bad)
    server = MjpegServer("127.0.0.1", 0, token="r1ght-T0k.en_~").start()
    try:
        server.publish(np.full((48, 64, 3), 50, np.uint8))
        conn, resp = http_get(server, "/frame.jpg?token=wrong", headers={"Authorization": "Bearer r1ght-T0k.en_~"})
        assert resp.status == 200  # a stale ?token= in a bookmark does not defeat the right header
        conn.close()
        conn, resp = http_get(server, "/frame.jpg?token=wrong", headers={"Authorization": "Bearer wrong"})
        assert resp.status == 403
        conn.close()
    finally:
        server.close()


def test_an_ipv6_literal_is_served_and_named_in_brackets():
    import socket

    from edgeseg.runtime.server import MjpegServer, parse_address

    assert parse_address("[::1]:8080") == ("::1", 8080)
    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 here")
    server = MjpegServer(*parse_address("[::1]:0")).start()
    try:
        port = server.httpd.server_address[1]
        assert server.url == f"http://[::1]:{port}/" and server.token is None  # loopback: no token needed
        server.publish(np.full((48, 64, 3), 50, np.uint8))
        import http.client

        conn = http.client.HTTPConnection("::1", port, timeout=5)
        conn.request("GET", "/frame.jpg")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.close()


def test_the_cli_refuses_a_token_that_needs_escaping():
    from typer.testing import CliRunner

    from edgeseg.cli import app

    result = CliRunner().invoke(app, ["webcam", "--serve", "0.0.0.0:8080", "--token", "<b>"])
    assert result.exit_code == 2 and "use letters, digits" in " ".join(result.output.replace("│", " ").split())


def _published(server, frames=1):
    for i in range(frames):
        server.publish(np.full((48, 64, 3), 10 * i, np.uint8))


def test_a_network_address_never_serves_without_a_token_by_accident():
    from edgeseg.runtime.server import MjpegServer, ServeError

    server = MjpegServer("0.0.0.0", 0)
    assert server.token and len(server.token) >= 16 and "?token=" in server.url  # generated, shown once
    server.close()
    open_server = MjpegServer("0.0.0.0", 0, allow_open=True)  # --no-token: asked for explicitly
    assert open_server.token is None
    open_server.close()
    with pytest.raises(ServeError, match="--token is empty"):
        MjpegServer("127.0.0.1", 0, token="")
    result = runner.invoke(app, ["webcam", "--serve", "0.0.0.0:0", "--token", ""])
    assert result.exit_code == 2 and "--token is empty" in one_line(result.output)


def test_only_the_bearer_scheme_is_accepted_case_insensitively():
    from edgeseg.runtime.server import MjpegServer

    server = MjpegServer("127.0.0.1", 0, token="s3cret").start()
    try:
        _published(server)
        for header, status in (("s3cret", 403), ("Basic s3cret", 403), ("Bearer s3cret", 200),
                               ("bearer s3cret", 200), ("BEARER  s3cret", 200), ("Bearer wrong", 403)):
            conn, resp = http_get(server, "/frame.jpg", {"Authorization": header})
            assert resp.status == status, header
            conn.close()
    finally:
        server.close()


def test_viewers_are_capped_and_idle_connections_without_a_token_lock_nobody_out():
    import socket
    import time

    from edgeseg.runtime.server import MjpegServer

    server = MjpegServer("127.0.0.1", 0, token="t0k", max_clients=2, request_timeout=0.5, max_pending=8).start()
    try:
        assert server.httpd.request_queue_size >= 64
        _published(server)
        idle = [socket.create_connection(server.httpd.server_address[:2]) for _ in range(8)]  # silent, no token
        time.sleep(0.1)
        extra = socket.create_connection(server.httpd.server_address[:2])  # over the pending cap: refused at once
        extra.settimeout(3)
        assert extra.recv(100).startswith(b"HTTP/1.0 503")
        for s in idle:  # closed after the short request deadline, not the viewers' 10 s timeout
            s.settimeout(3)
            assert s.recv(100) == b""
        viewers = [http_get(server, "/stream.mjpg?token=t0k") for _ in range(2)]
        assert all(resp.status == 200 for _, resp in viewers)
        conn, resp = http_get(server, "/frame.jpg?token=t0k")  # a third viewer: over the cap of 2
        assert resp.status == 503
        conn.close()
        for c, r in viewers:
            r.close()
            c.close()
        for i in range(10):  # the next frames find the viewers gone
            server.publish(np.full((48, 64, 3), 20 + i, np.uint8))
            time.sleep(0.05)
        conn, resp = http_get(server, "/frame.jpg?token=t0k")  # their slots are free again
        assert resp.status == 200
        conn.close()
    finally:
        server.close()


def test_a_client_trickling_its_request_is_dropped_after_the_timeout():
    import socket
    import time

    from edgeseg.runtime.server import MjpegServer

    server = MjpegServer("127.0.0.1", 0, max_clients=1, timeout=0.5, request_timeout=0.5).start()
    try:
        slow = socket.create_connection(server.httpd.server_address[:2])
        slow.sendall(b"GET /frame.jpg HTTP/1.1\r\n")
        slow.settimeout(0.1)
        start, closed = time.monotonic(), False
        while not closed and time.monotonic() - start < 4:
            try:  # a header byte every 0.2 s: never idle for the 0.5 s timeout, never done either
                slow.sendall(b"X")
                closed = slow.recv(100) == b""
            except socket.timeout:
                time.sleep(0.1)
            except OSError:
                closed = True
        assert closed and time.monotonic() - start < 2, "the trickling client kept its slot"
        slow.close()
        time.sleep(0.2)
        _published(server)
        conn, resp = http_get(server, "/frame.jpg")  # the only slot is free again
        assert resp.status == 200
        conn.close()
    finally:
        server.close()


def test_a_client_leaving_mid_response_prints_no_traceback(capfd):
    import socket
    import struct
    import time

    from edgeseg.runtime.server import MjpegServer

    server = MjpegServer("127.0.0.1", 0).start()
    try:
        gone = socket.create_connection(server.httpd.server_address[:2])
        gone.sendall(b"GET /frame.jpg HTTP/1.0\r\n\r\n")  # no frame yet: answered after a wait
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.close()  # reset: the answer's write fails
        time.sleep(2.5)
    finally:
        server.close()
    assert "Traceback" not in capfd.readouterr().err


def test_each_frame_is_encoded_once_for_all_viewers():
    import threading
    import time

    from edgeseg.runtime.server import MjpegServer

    server = MjpegServer("127.0.0.1", 0).start()
    received = [0] * 6

    def view(i):
        conn, resp = http_get(server, "/stream.mjpg")
        while received[i] < 10:
            line = resp.readline()
            if line.lower().startswith(b"content-length"):
                resp.read(int(line.split(b":")[1]) + 4)
                received[i] += 1
        conn.close()

    viewers = [threading.Thread(target=view, args=(i,), daemon=True) for i in range(6)]
    for v in viewers:
        v.start()
    published = 0
    while min(received) < 10 and published < 2000:
        _published(server)
        published += 1
        time.sleep(0.005)
    for v in viewers:
        v.join(5)
    server.close()
    assert min(received) >= 10
    assert server.frames_encoded <= published and server.frames_sent >= 60
    assert server.frames_encoded < server.frames_sent  # shared bytes, not one encoding per viewer


def test_bad_ports_and_busy_ports_are_named():
    import socket

    from edgeseg.runtime.server import MjpegServer, ServeError, parse_address

    with pytest.raises(ServeError, match="port from 0 to 65535"):
        parse_address("127.0.0.1:99999")
    result = runner.invoke(app, ["webcam", "--serve", "127.0.0.1:99999"])
    assert result.exit_code == 2 and "0 to 65535" in result.output
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    with pytest.raises(ServeError, match=f"127.0.0.1:{busy.getsockname()[1]}: the port is in use"):
        MjpegServer("127.0.0.1", busy.getsockname()[1])
    busy.close()


def test_serve_takes_a_host_alone_on_the_default_port_and_names_a_bare_ipv6_address():
    # `--serve 0.0.0.0` and `--serve localhost` were refused as "--serve '...': ... HOST:PORT" (the option
    # named twice), and `--serve ::1` was read as host ':', port 1
    from edgeseg.runtime.server import DEFAULT_PORT, ServeError, parse_address

    assert parse_address("0.0.0.0") == ("0.0.0.0", DEFAULT_PORT) and DEFAULT_PORT == 8080
    assert parse_address("localhost") == ("localhost", DEFAULT_PORT)
    assert parse_address(":9000") == ("127.0.0.1", 9000) and parse_address("[::1]") == ("::1", DEFAULT_PORT)
    with pytest.raises(ServeError, match=re.escape("put an IPv6 address in brackets: [::1]:8080")):
        parse_address("::1")
    result = runner.invoke(app, ["webcam", "--serve", "localhost:http"])
    assert result.exit_code == 2 and "--serve 'localhost:http'" not in one_line(result.output), result.output


def test_the_token_is_shown_once_and_never_in_the_report(tmp_path):
    import json

    from tests.helpers import write_video

    video = write_video(tmp_path / "v.avi", frames=5)
    result = runner.invoke(app, ["webcam", "--model", "edge", "--source", str(video), "--serve", "127.0.0.1:0",
                                 "--token", "t0psecret", "--no-window", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "t0psecret" not in result.stdout and report["url"].endswith("?token=…")
    assert "t0psecret" not in result.stderr  # stderr here is no terminal: a log file, say
