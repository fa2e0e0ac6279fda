"""ASGI guards: a request-body size limit and the security headers of every response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
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


async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


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
