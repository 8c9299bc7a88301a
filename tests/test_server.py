"""The MJPEG server with a real HTTP client, and the page in headless Chromium."""

import shutil
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest

from edgeseg.runtime.server import MjpegServer
from tests.helpers import http_get

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
