"""The HTTP API beside the page, and the guard in front of both.

``GET /healthz`` → 200 (open to all, for probes); ``GET /api/models`` → the models with their name,
kind and directions; ``POST /api/translate`` (multipart: ``image`` file, ``direction``, optional
``roundtrip`` and ``model``) → ``image/png`` of the input's size. Errors are ``{"error": "…"}`` with
400 (not an image, truncated, malformed), 401 (token), 404 (model), 413 (upload or pixel limit),
422 (direction), 503 (queue full)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from gankit.serve.errors import BadUpload, RequestError, TooLarge

TOKEN_COOKIE = "gankit_token"
OPEN_PATHS = frozenset({"/healthz"})
FORM_OVERHEAD = 64 * 1024
"""Bytes a multipart body may hold beyond the image itself (boundaries, headers, small fields)."""
TRUE = frozenset({"1", "true", "yes", "on"})


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


async def send_json_error(send: Callable[[dict], Awaitable[None]], status: int, message: str,
                          headers: list[tuple[bytes, bytes]] = ()) -> None:  # fmt: skip
    body = error_body(message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def names_a_url(payload: Any) -> bool:
    """Whether a Gradio call names an input file by an http(s) address: Gradio would download it into
    its cache on the server's behalf (a request the client aims from the server's network). Uploaded
    files are named by their upload path; the ``url`` beside it is only the page's link to that file."""
    if isinstance(payload, dict):
        path = payload.get("path")
        if isinstance(path, str) and path.strip().lower().startswith(("http://", "https://", "//")):
            return True
        return any(names_a_url(v) for v in payload.values())
    if isinstance(payload, list):
        return any(names_a_url(v) for v in payload)
    return False


class Guard:
    """ASGI middleware in front of the page, the Gradio API and the HTTP API alike: refuses bodies over
    the upload limit by their declared length before reading them, and, when the server has an access
    token, every request without it (except ``/healthz``). JSON calls to the page's API that name an
    input file by URL are refused: the server fetches nothing a client names (:func:`names_a_url`).

    The token may come as ``Authorization: Bearer TOKEN`` (API clients), a cookie, or ``?token=TOKEN``
    on the page's address: the page is then reloaded without it in the address bar, with the cookie
    set (HttpOnly, SameSite=Strict), so the browser's later requests carry it."""

    def __init__(self, app, *, token: str | None, body_limit: int):
        self.app, self.token, self.body_limit = app, token, body_limit

    def _given(self, scope) -> tuple[str | None, str]:
        """(token offered, how: header | cookie | query | "")."""
        headers = dict(scope.get("headers", []))
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), "header"
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:  # a malformed cookie header is the same as none
            cookie = SimpleCookie()
        if TOKEN_COOKIE in cookie:
            return cookie[TOKEN_COOKIE].value, "cookie"
        for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if k == "token":
                return v, "query"
        return None, ""

    def _valid(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if self.token and scope["path"] not in OPEN_PATHS:
            offered, how = self._given(scope)
            if not self._valid(offered):
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                return await send_json_error(send, 401, "access token required: open the page as /?token=TOKEN or "
                                             "send the header 'Authorization: Bearer TOKEN'")  # fmt: skip
            if how == "query" and scope["type"] == "http" and scope["method"] == "GET":
                return await self._redirect_with_cookie(scope, send)
        if scope["type"] == "http":
            length = dict(scope.get("headers", [])).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.body_limit:
                limit = self.body_limit - FORM_OVERHEAD
                return await send_json_error(send, 413, f"request body of {int(length):,} bytes is over the upload "
                                             f"limit of {limit:,} bytes (--max-upload-mb)")  # fmt: skip
            if scope["method"] == "POST" and headers_json(scope):
                return await self._json_call(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _json_call(self, scope, receive, send) -> None:
        """Reads a JSON body (within the upload limit), refuses it if it names a file by URL, else hands
        the same bytes on."""
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.body_limit:
                limit = self.body_limit - FORM_OVERHEAD
                return await send_json_error(send, 413, f"request body is over the upload limit of {limit:,} bytes "
                                             "(--max-upload-mb)")  # fmt: skip
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None  # not JSON after all: the route answers it as it would
        if names_a_url(payload):
            return await send_json_error(send, 400, "input files must be uploaded: the server does not fetch a URL "
                                         "a client names")  # fmt: skip
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def _redirect_with_cookie(self, scope, send) -> None:
        rest = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k != "token"]
        location = scope.get("root_path", "") + scope["path"] + (f"?{urlencode(rest)}" if rest else "")
        cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                                (b"content-length", b"0")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})


def headers_json(scope) -> bool:
    return dict(scope.get("headers", [])).get(b"content-type", b"").split(b";")[0].strip() == b"application/json"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with :class:`TooLarge` as soon as it passes ``limit`` bytes (a body
    sent without a Content-Length is counted as it arrives)."""
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            limit -= FORM_OVERHEAD
            raise TooLarge(f"request body is over the upload limit of {limit:,} bytes (--max-upload-mb)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, body: bytes) -> dict[str, Any]:
    """The multipart form of an already-read body: ``{"image": bytes, other fields: str}``."""
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadUpload("expected a multipart/form-data body with the image in a file field 'image' "
                        "(curl -F image=@photo.jpg -F direction=a2b …)")  # fmt: skip
    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
    except Exception as e:  # MultiPartException and the parser's own errors: the body is malformed
        raise BadUpload(f"malformed multipart body ({e})") from None
    fields: dict[str, Any] = {}
    try:
        for key, value in form.multi_items():
            fields[key] = await value.read() if isinstance(value, UploadFile) else value
    finally:
        await form.close()
    if not isinstance(fields.get("image"), bytes):
        raise BadUpload("missing file field 'image' (curl -F image=@photo.jpg …)")
    return fields


def router(state: Any) -> APIRouter:
    """The API routes over ``state``, the server's :class:`~gankit.serve.app.ServerState` (not imported:
    the app imports this module)."""
    api = APIRouter()
    limits = state.options

    def failure(e: Exception) -> JSONResponse:
        if isinstance(e, RequestError):
            return JSONResponse({"error": str(e)}, status_code=e.status)
        state.log(f"error: {type(e).__name__}: {e}")
        return JSONResponse({"error": f"internal error: {type(e).__name__}: {e}"}, status_code=500)

    @api.get("/healthz")
    async def healthz():
        return {"status": "ok", "models": len(state.models), "queue": state.queue.stats()}

    @api.get("/api/models")
    async def models():
        return [m.describe() for m in state.models]

    @api.post("/api/translate")
    async def translate(request: Request):
        try:
            body = await read_body(request, limits.max_upload_bytes + FORM_OVERHEAD)
            form = await read_form(request, body)
            del body
            if len(form["image"]) > limits.max_upload_bytes:
                raise TooLarge(f"image of {len(form['image']):,} bytes is over the upload limit of "
                               f"{limits.max_upload_bytes:,} bytes (--max-upload-mb)")  # fmt: skip
            roundtrip = str(form.get("roundtrip", "")).strip().lower() in TRUE
            png, tile = await state.translate_bytes(form.get("model"), form["image"], form.get("direction"),
                                                    roundtrip, encode=True)  # fmt: skip
        except Exception as e:
            return failure(e)
        return Response(png, media_type="image/png", headers={"X-Gankit-Tile": str(tile)})

    return api
