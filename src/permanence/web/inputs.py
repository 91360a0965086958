"""Input hygiene shared by every route, before any route, service or throttle sees a request.

- ``LimitRequestBody``: one limit on the size of every request body
  (``PERMANENCE_MAX_BODY_BYTES``, 1 MiB by default), answered with a clear 413 whether the
  client declares too much (Content-Length, refused before reading) or streams too much
  (chunked transfer, refused as soon as the limit is passed). Routes with a smaller limit of
  their own (the telephony webhooks, the mandate upload) keep it.
- ``RejectNulCharacters``: no NUL character anywhere in a request. PostgreSQL cannot store NUL
  in text, and no legitimate field of ours contains one; letting it through turns a typo or a
  fuzzer's input into a database error (a 500) on PostgreSQL only. Refused once, with a 422.
- ``RejectBrokenEncodings``: a path or query string that is not valid percent-encoded UTF-8, a
  body whose declared charset is unknown or not UTF-8, a JSON or form body that is not valid
  UTF-8: a clear 400, not a 500 deep inside a parser.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from permanence.errors import (
    BadRequest,
    PayloadTooLarge,
    PermanenceError,
    UnsupportedMediaType,
    ValidationFailed,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# How a refusal is answered (JSON for the API, OpenDSR's error object, a page for people):
# the application passes its own; the default is the API's JSON problem.
Responder = Callable[[Scope, PermanenceError], ASGIApp]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def json_problem(_scope: Scope, exc: PermanenceError) -> ASGIApp:
    problems = exc.problems if isinstance(exc, ValidationFailed) else [exc.message]
    body = json.dumps({"error": exc.code, "message": exc.message, "problems": problems}).encode()

    async def answer(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": exc.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return answer


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


class _TooLarge(Exception):
    pass


class LimitRequestBody:
    """413 for a request body over ``max_bytes``, declared or streamed. Never buffers."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        respond: Responder = json_problem,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.respond = respond

    def _refusal(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is larger than the limit of {self.max_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                exc = BadRequest("the Content-Length header is not a number")
                await self.respond(scope, exc)(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                await self.respond(scope, self._refusal())(scope, receive, send)
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:  # pragma: no cover - nothing of ours answers before reading its body
                raise
            await self.respond(scope, self._refusal())(scope, receive, send)


class _BufferedCheck:
    """Reads the whole body (bounded by ``LimitRequestBody`` outside it), checks the request,
    then hands the body on to the application unchanged."""

    def __init__(self, app: ASGIApp, respond: Responder = json_problem) -> None:
        self.app = app
        self.respond = respond

    def check_head(self, scope: Scope) -> PermanenceError | None:
        return None

    def check_body(self, scope: Scope, body: bytes) -> PermanenceError | None:
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.check_head(scope)
        if refused is not None:
            await self.respond(scope, refused)(scope, receive, send)
            return
        chunks: list[bytes] = []
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # a disconnect: hand it on as it came
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refused = self.check_body(scope, body)
        if refused is not None:
            await self.respond(scope, refused)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if first is not None and not chunks:
                    return first
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _nul() -> ValidationFailed:
    return ValidationFailed(
        "the request contains a NUL character, which no field accepts",
        ["remove the NUL (\\u0000) character"],
    )


class RejectNulCharacters(_BufferedCheck):
    def check_head(self, scope: Scope) -> PermanenceError | None:
        query = scope.get("query_string", b"")
        if "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query:
            return _nul()
        return None

    def check_body(self, scope: Scope, body: bytes) -> PermanenceError | None:
        if b"\x00" in body or b"\\u0000" in body or b"%00" in body:
            return _nul()
        return None


_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_UTF8 = {"utf-8", "utf8", "us-ascii", "ascii"}
# Bodies whose text we read ourselves, and must therefore be UTF-8.
_TEXT_BODIES = ("application/json", "application/x-www-form-urlencoded", "text/")


def _percent_utf8(raw: bytes, what: str, plus_is_space: bool) -> BadRequest | None:
    if _BAD_PERCENT.search(raw):
        return BadRequest(f"the {what} has a '%' not followed by two hexadecimal digits")
    try:
        unquote_to_bytes(raw.replace(b"+", b" ") if plus_is_space else raw).decode("utf-8")
    except UnicodeDecodeError:
        return BadRequest(f"the {what} is not valid UTF-8 once percent-decoded")
    return None


def _media_type(scope: Scope) -> tuple[str, dict[str, str]]:
    raw = _header(scope, b"content-type")
    if raw is None:
        return "", {}
    text = raw.decode("latin-1")
    kind, _, rest = text.partition(";")
    params = {}
    for part in rest.split(";"):
        name, eq, value = part.partition("=")
        if eq:
            params[name.strip().lower()] = value.strip().strip('"').lower()
    return kind.strip().lower(), params


class RejectBrokenEncodings(_BufferedCheck):
    """Everything we read as text is UTF-8; anything else is refused with what is wrong."""

    def check_head(self, scope: Scope) -> PermanenceError | None:
        raw_path = scope.get("raw_path")
        if isinstance(raw_path, bytes | bytearray):
            problem = _percent_utf8(bytes(raw_path), "path", plus_is_space=False)
            if problem is not None:
                return problem
        elif "\ufffd" in scope.get("path", ""):
            return BadRequest("the path is not valid UTF-8 once percent-decoded")
        problem = _percent_utf8(scope.get("query_string", b""), "query string", plus_is_space=True)
        if problem is not None:
            return problem
        kind, params = _media_type(scope)
        charset = params.get("charset")
        if charset is not None and charset not in _UTF8:
            try:
                codecs.lookup(charset)
            except LookupError:
                return BadRequest(f"the charset {charset[:40]!r} does not exist: send UTF-8")
            return UnsupportedMediaType(f"bodies must be UTF-8, not {charset[:40]}")
        if kind.startswith("multipart/") and "boundary" not in params:
            return BadRequest("a multipart body needs a boundary parameter in its Content-Type")
        return None

    def check_body(self, scope: Scope, body: bytes) -> PermanenceError | None:
        if not body:
            return None
        kind, _params = _media_type(scope)
        if not (kind.startswith(_TEXT_BODIES) or kind.endswith("+json")):
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return BadRequest(f"the body is not valid UTF-8 text ({kind})")
        if kind == "application/x-www-form-urlencoded":
            return _percent_utf8(text.encode(), "form body", plus_is_space=True)
        if _SURROGATE_ESCAPE.search(text) and _lone_surrogate(text):
            return BadRequest("the JSON body has a \\u escape that is not a Unicode character")
        return None


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(text: str) -> bool:
    """A JSON escape such as \\ud800 decodes to half a character, which no database stores."""
    try:
        value = json.loads(text)
    except ValueError:
        return False  # not JSON at all: the route says so
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_JSON_PREFIXES = ("/api/", "/opendsr/")


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return _header(scope, b"transfer-encoding") is not None


class RequireJson:
    """The JSON API (``/api/``, ``/opendsr/``) reads JSON bodies only: a body of another
    declared type is a 415 that says so (FastAPI alone would try to validate the raw bytes and
    answer a puzzling 422). A body without Content-Type is read as JSON."""

    def __init__(self, app: ASGIApp, respond: Responder = json_problem) -> None:
        self.app = app
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("path", "").startswith(_JSON_PREFIXES)
            and _has_body(scope)
        ):
            kind, _params = _media_type(scope)
            if kind and kind != "application/json" and not kind.endswith("+json"):
                exc = UnsupportedMediaType(f"this endpoint reads application/json, not {kind[:60]}")
                await self.respond(scope, exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
