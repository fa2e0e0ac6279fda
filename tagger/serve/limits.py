"""ASGI guards: a request-body size limit and the security headers of every response."""

from __future__ import annotations

from fastapi.responses import Response
from starlette.exceptions import HTTPException

from tagger.commands.annotate.render import dumps

#: The page and the docs load nothing from elsewhere; the Swagger UI needs its inline initialiser.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def error_response(status: int, message: str, detail: list | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """The JSON error every failure answers: ``{"error": message}`` (and ``detail``)."""
    body: dict = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return Response(dumps(body), status_code=status, media_type="application/json", headers=headers)


_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer")]


class SecurityHeaders:
    """Adds the security headers to every response (pure ASGI: no task per request, unlike
    ``BaseHTTPMiddleware``, which cost more than the rest of a small request's handling)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(msg) -> None:
            if msg["type"] == "http.response.start":
                have = {k.lower() for k, _ in msg.get("headers", ())}
                msg["headers"] = [*msg.get("headers", ()), *((k, v) for k, v in _HEADERS if k not in have)]
            await send(msg)

        await self.app(scope, receive, with_headers)


class _TooLarge(HTTPException):
    """Raised while the body streams in; an HTTP error so that FastAPI's body parsing passes it on as it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit:,} bytes")


class BodyLimit:
    """Refuses (413) a request whose body is over ``limit`` bytes, by its Content-Length or as it streams in."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = _TooLarge(self.limit).detail
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await error_response(413, message if length.isdigit() else "bad Content-Length")(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return msg

        async def tracked_send(msg) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            if not started:
                await error_response(413, message)(scope, receive, send)
