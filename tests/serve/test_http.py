"""The HTTP API and the Gradio client API of a live server, driven with plain HTTP (requests) and
gradio_client as a client would: sizes, modes, every error status, the one shared queue, and the
server still serving after each failure."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
from PIL import Image

requests = pytest.importorskip("requests")


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def post(live, data: bytes, **fields):
    files = {"image": ("x", data, "application/octet-stream")}
    return requests.post(f"{live.url}/api/translate", files=files, data=fields, timeout=60)


def assert_error(r, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    message = r.json()["error"]
    assert "\n" not in message and all(w in message for w in words), message


def test_healthz_and_models(live, http_get):
    status, body = http_get(f"{live.url}/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    models = {m["name"]: m for m in requests.get(f"{live.url}/api/models", timeout=10).json()}
    assert set(models) == {"a2o", "oneway", "cgan", "sgan", "progan"}
    assert (models["a2o"]["kind"], models["a2o"]["directions"]) == ("cyclegan", ["a2b", "b2a"])
    assert (models["oneway"]["kind"], models["oneway"]["directions"]) == ("fastcut", ["a2b"])
    assert models["cgan"]["directions"] == [] and models["progan"]["kind"] == "progan"
    assert models["a2o"]["steps"] == 1234 and models["a2o"]["metrics"]["success_a2b"] == 0.8125


def test_translate_returns_a_png_of_the_input_size(live, apple):
    data = apple.read_bytes()
    r = post(live, data, direction="a2b", model="a2o")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    out = Image.open(io.BytesIO(r.content))
    assert out.format == "PNG" and out.size == Image.open(apple).size and out.mode == "RGB"
    # the same pixels as the library's translation: the API adds nothing of its own
    from gankit.data.images import load_image
    from gankit.inference.translate import translate_image

    model = live.state.served("a2o").model
    expected = translate_image(model.generator("a2b"), load_image(apple, 3), 3)
    assert out.tobytes() == expected.tobytes()
    back = post(live, data, direction="a2b", model="a2o", roundtrip="1")
    assert back.status_code == 200 and back.content != r.content  # the reconstruction, not the translation
    assert Image.open(io.BytesIO(back.content)).size == out.size


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "I;16", "CMYK", "1", "F"])
def test_every_image_mode_translate_accepts(live, mode):
    rgb = Image.new("RGB", (45, 31), (200, 30, 30))
    image = Image.new("I;16", (45, 31), 40000) if mode == "I;16" else rgb.convert(mode)
    data = png(image, "TIFF" if mode in ("CMYK", "F") else "PNG")
    r = post(live, data, direction="b2a", model="a2o")
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (45, 31)


def test_errors_are_one_json_line_with_the_right_status_and_serving_goes_on(live, apple):
    good = png(Image.new("RGB", (20, 20), "white"))
    truncated = apple.read_bytes()[:4000]
    bomb = png(Image.new("L", (5000, 4000)))  # 20 megapixels in a few kilobytes: over the default limit
    assert len(bomb) < 100_000
    assert_error(post(live, b"certainly not an image", direction="a2b", model="a2o"), 400, "not an image")
    assert_error(post(live, truncated, direction="a2b", model="a2o"), 400, "truncated")
    assert_error(post(live, b"", direction="a2b", model="a2o"), 400, "empty")
    assert_error(post(live, bomb, direction="a2b", model="a2o"), 413, "5000×4000", "--max-pixels")
    assert_error(post(live, good, direction="c2d", model="a2o"), 422, "'c2d'", "a2b and b2a")
    assert_error(post(live, good, direction="b2a", model="oneway"), 422, "a2b only")
    assert_error(post(live, good, direction="a2b", model="oneway", roundtrip="true"), 422, "roundtrip")
    assert_error(post(live, good, direction="a2b", model="nope"), 404, "'nope'", "a2o")
    assert_error(post(live, good, direction="a2b"), 422, "model")  # two translators: which one?
    assert_error(post(live, good, direction="a2b", model="cgan"), 422, "does not translate")
    no_file = requests.post(f"{live.url}/api/translate", data={"direction": "a2b"}, timeout=10)
    assert_error(no_file, 400, "'image'")
    too_big = b"\0" * (live.state.options.max_upload_bytes + 1)
    assert_error(post(live, too_big, direction="a2b", model="a2o"), 413, "--max-upload-mb")
    over = b"\0" * (live.state.options.max_upload_bytes + 100_000)
    chunked = requests.post(f"{live.url}/api/translate", data=iter([over]), timeout=30,
                            headers={"content-type": "multipart/form-data; boundary=x"})  # fmt: skip
    assert_error(chunked, 413, "--max-upload-mb")  # no Content-Length: counted as it arrives
    assert post(live, good, direction="a2b", model="a2o").status_code == 200


def test_one_queue_for_page_and_api_refuses_with_503_when_full(live):
    """Hold both translators' only slots on the server's own loop and fill the queue with real requests
    for one of them: the next request, for either model, is refused at once with 503 (one queue for the
    whole server); a model with a free slot would have run at once. When the slots are freed every
    queued request completes."""
    import asyncio

    queue, size = live.state.queue, live.state.options.queue_size
    release, held = asyncio.Event(), threading.Semaphore(0)

    async def hold(name):
        async with queue.slot(name):
            held.release()
            await release.wait()

    holders = [asyncio.run_coroutine_threadsafe(hold(name), live.loop) for name in ("a2o", "oneway")]
    assert held.acquire(timeout=10) and held.acquire(timeout=10)
    image = png(Image.new("RGB", (24, 24), "gray"))
    results: list[int] = []
    waiting = [threading.Thread(target=lambda: results.append(post(live, image, model="a2o").status_code))
               for _ in range(size)]  # fmt: skip
    for t in waiting:
        t.start()
    deadline = time.monotonic() + 30
    while queue.waiting < size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert queue.waiting == size
    started = time.monotonic()
    assert_error(post(live, image, model="a2o"), 503, "queue", "--queue-size")
    assert_error(post(live, image, model="oneway"), 503, "queue")
    assert time.monotonic() - started < 5  # refused at once, not after a wait
    live.loop.call_soon_threadsafe(release.set)
    for holder in holders:
        holder.result(10)
    for t in waiting:
        t.join(60)
    assert results == [200] * size
    assert post(live, image, model="oneway").status_code == 200


def test_gradio_client_api(live, apple, tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    client = gradio_client.Client(live.url, verbose=False)
    fake, rec = client.predict("a2o", gradio_client.handle_file(str(apple)), "a2b", True, api_name="/translate")
    for path in (fake, rec):
        out = Image.open(path)
        assert out.format == "PNG" and out.size == Image.open(apple).size
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(Exception, match="cannot identify image"):  # Gradio's own check of its Image input
        client.predict("a2o", gradio_client.handle_file(str(bad)), "a2b", False, api_name="/translate")
    with pytest.raises(Exception, match="unknown direction"):
        client.predict("a2o", gradio_client.handle_file(str(apple)), "x2y", False, api_name="/translate")
    grid = Image.open(client.predict("3", 0, api_name="/digits_cgan"))
    assert grid.format == "PNG" and grid.width > 28


def test_no_server_file_named_by_a_client_is_opened(live, apple):
    """Gradio's REST call naming a file on the server (a real image, so that reading it would
    succeed) is refused before any callback runs."""
    payload = {"data": ["a2o", {"path": str(apple), "meta": {"_type": "gradio.FileData"}}, "a2b", False]}
    served = live.state.queue.served
    r = requests.post(f"{live.url}/gradio_api/call/translate", json=payload, timeout=10)
    events = requests.get(f"{live.url}/gradio_api/call/translate/{r.json()['event_id']}", timeout=30).text
    assert "event: error" in events and "not uploaded by a user" in events
    assert live.state.queue.served == served  # nothing reached the model


def test_no_url_named_by_a_client_is_fetched(live, apple):
    """Gradio's REST call naming an input by http URL instead of an upload (a request the client would
    aim from the server's network; Gradio downloads such files into its cache) is refused before Gradio
    sees it, and the URL is never requested."""
    import http.server

    hits: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(apple.read_bytes())

        def log_message(self, *args):
            pass

    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{target.server_address[1]}/apple.png"
        served = live.state.queue.served
        for file_data in ({"path": url, "url": url}, {"path": url}, {"path": url.replace("http", "HTTPS", 1)}):
            payload = {"data": ["a2o", {**file_data, "meta": {"_type": "gradio.FileData"}}, "a2b", False]}
            for call in ("call/translate", "queue/join"):
                assert_error(requests.post(f"{live.url}/gradio_api/{call}", json=payload, timeout=10), 400,
                             "must be uploaded", "URL")  # fmt: skip
        assert hits == [] and live.state.queue.served == served
        assert requests.get(f"{live.url}/healthz", timeout=10).status_code == 200
    finally:
        target.shutdown()


TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def guarded(runs, start_server):
    from gankit.serve.options import ServeOptions

    server = start_server(ServeOptions(runs=(str(runs["a2o"]),), port=0, device="cpu", auth_token=TOKEN, examples=0))
    yield server
    server.stop()


def test_an_access_token_guards_the_page_and_both_apis(guarded, apple):
    url, bearer = guarded.url, {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200  # probes need no token
    assert_error(requests.get(f"{url}/api/models", timeout=10), 401, "token")
    assert_error(requests.get(f"{url}/", timeout=10), 401, "/?token=TOKEN")
    assert_error(requests.get(f"{url}/api/models", headers={"Authorization": "Bearer wrong-token"}, timeout=10), 401)
    assert requests.get(f"{url}/api/models", headers=bearer, timeout=10).json()[0]["name"] == "a2o"
    files = {"image": ("apple.jpg", apple.read_bytes())}
    assert_error(requests.post(f"{url}/api/translate", files=files, timeout=30), 401)
    assert requests.post(f"{url}/api/translate", files=files, headers=bearer, timeout=30).status_code == 200
    # the page: ?token= once, then a cookie; the address bar loses the token
    first = requests.get(f"{url}/?token={TOKEN}", allow_redirects=False, timeout=10)
    assert first.status_code == 303 and first.headers["location"] == "/"
    assert "HttpOnly" in first.headers["set-cookie"] and "SameSite=Strict" in first.headers["set-cookie"]
    browser = requests.Session()
    page = browser.get(f"{url}/?token={TOKEN}", timeout=30)
    assert page.status_code == 200 and "gradio" in page.text.lower()
    assert browser.get(f"{url}/gradio_api/info", timeout=30).status_code == 200
    gradio_client = pytest.importorskip("gradio_client")
    client = gradio_client.Client(url, headers=bearer, verbose=False)
    fake, _ = client.predict("a2o", gradio_client.handle_file(str(apple)), "a2b", False, api_name="/translate")
    assert Image.open(fake).size == Image.open(apple).size


def test_wildcard_hosts_need_a_token_and_get_a_warning():
    from gankit.errors import ConfigError
    from gankit.serve.app import exposure_warning
    from gankit.serve.options import ServeOptions, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("myhost")
    with pytest.raises(ConfigError, match="--auth-token"):
        ServeOptions(runs=("r",), host="0.0.0.0").validate()
    assert ServeOptions(runs=("r",), host="0.0.0.0", auth_token=TOKEN).validate()
    assert "every network interface" in exposure_warning("0.0.0.0") and exposure_warning("127.0.0.1") is None
