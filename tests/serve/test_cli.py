"""``gankit serve`` as the acceptance checks run it: a foreground process, ready when ``/healthz``
answers, the curl-style multipart upload, ``/api/models``, SIGTERM; and its one-line refusals."""

from __future__ import annotations

import io
import json
import signal
import socket
import time

import pytest
from PIL import Image

from gankit.cli import main


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """The body ``curl -F image=@FILE -F key=value`` sends."""
    boundary = "gankit-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]  # fmt: skip
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
                 "Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n")  # fmt: skip
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_serve_command_contract(serve_process, apple, ready, http_get):
    """The process ``serve_process`` started: ready on /healthz, /api/models, the curl-style upload, and
    SIGTERM ends it after the requests in flight, with status 0."""
    import urllib.request

    proc, url = serve_process.proc, serve_process.url
    ready(url, proc=proc)
    status, body = http_get(f"{url}/api/models")
    assert status == 200
    assert [(m["name"], m["kind"], m["directions"]) for m in json.loads(body)] == [("a2o", "cyclegan", ["a2b", "b2a"])]
    data, content_type = multipart({"direction": "a2b"}, "x.jpg", apple.read_bytes())
    req = urllib.request.Request(f"{url}/api/translate", data=data, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(r.read())).size == Image.open(apple).size
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0 and time.monotonic() - started < 15
    printed = serve_process.log.read_text()
    assert f"at {url}/" in printed and "stopped (SIGTERM)" in printed and "Traceback" not in printed


@pytest.mark.parametrize(
    "argv, status, named",
    [
        (["--port", "70000"], 2, "--port 70000"),
        (["--host", "0.0.0.0"], 2, "--auth-token"),
        (["--host", "0.0.0.0", "--auth-token", "short"], 2, "--auth-token"),
        (["--max-upload-mb", "0"], 2, "--max-upload-mb"),
        (["--max-pixels", "0"], 2, "--max-pixels"),
        (["--queue-size", "-1"], 2, "--queue-size"),
        (["--concurrency", "0"], 2, "--concurrency"),
        (["--max-memory", "lots"], 2, "--max-memory"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(runs, capsys, monkeypatch, argv, status, named):
    pytest.importorskip("gradio")
    monkeypatch.delenv("GANKIT_SERVE_TOKEN", raising=False)
    assert main(["serve", str(runs["a2o"]), *argv]) == status
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1, err


def test_missing_or_unreadable_models_and_taken_ports_are_named(runs, tmp_path, capsys):
    pytest.importorskip("gradio")
    port = 0
    assert main(["serve", str(tmp_path / "no-such-run"), "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert "no-such-run" in err and len(err.splitlines()) == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    assert main(["serve", str(broken), "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert "model.safetensors" in err and len(err.splitlines()) == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["serve", str(runs["a2o"]), "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip()
    assert "--port" in err and "cannot listen" in err


def test_without_the_serve_extra_one_line_says_what_to_install(runs, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else find_spec(name, *a))
    assert main(["serve", str(runs["a2o"])]) == 1
    assert capsys.readouterr().err.strip() == 'gankit serve needs the serve extra: pip install "gankit[serve]"'
