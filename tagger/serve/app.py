"""The HTTP application: ``POST /annotate``, ``GET /health``, ``GET /model``, the page at ``/``, ``/docs``.

Errors are JSON objects ``{"error": message}`` (422 with a ``detail`` list for a malformed
request): 404/405 for unknown routes, 413 for a body over ``max_body`` or a request over the
item/token limits, 422 for invalid input, 503 when ``max_queue`` requests wait already, 504 when a
request waited and ran longer than ``timeout``; anything unexpected is a 500 and the server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from tagger import __version__
from tagger.commands.annotate.render import dumps
from tagger.serve.batcher import MicroBatcher, Overloaded
from tagger.serve.limits import BodyLimit, SecurityHeaders, error_response
from tagger.serve.schema import AnnotateRequest, AnnotateResponse, ErrorOut
from tagger.serve.service import RequestProblem, Service

log = logging.getLogger("tagger.serve")

STATIC = resources.files("tagger.serve") / "static"
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (413, 422, 503, 504)}


#: Requests with more characters of raw text than this are tokenised in a thread (syntok: ~1 µs a character).
INLINE_CHARS = 5000


def _chars(req: AnnotateRequest) -> int:
    return len(req.text or "") + sum(len(t) for t in req.texts or ())


def _json(obj, status: int = 200) -> Response:
    return Response(dumps(obj), status_code=status, media_type="application/json")


def create_app(service: Service) -> FastAPI:
    """The application serving ``service``'s model (its batcher starts and stops with the app)."""
    o = service.options
    batcher: MicroBatcher | None = None
    started = time.time()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal batcher
        batcher = MicroBatcher(service.predict, o.window_ms / 1000, o.batch_tokens, o.max_queue)
        await batcher.start()
        try:
            yield
        finally:
            await batcher.close()

    app = FastAPI(title="tagger", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Sequence labelling with a BiLSTM-CRF: the answers are those of `tagger annotate` "
                  "for the same input.")
    app.add_middleware(BodyLimit, limit=o.max_body)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            msg = str(e.get("msg")).removeprefix("Value error, ")
            problems.append(f"{where}: {msg}" if where else msg)
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": e.get("type")}
                  for e in exc.errors()]
        return error_response(422, "; ".join(problems) or "invalid request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("error while answering %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}")

    @app.post("/annotate", response_model=AnnotateResponse, responses=_ERRORS)
    async def annotate(req: AnnotateRequest) -> Response:
        """Tag texts or token lists: one result per text or token list, as `tagger annotate` writes it."""
        assert batcher is not None
        if req.nbest > o.max_nbest:
            return error_response(422, f"nbest: at most {o.max_nbest}")
        if req.nbest and not service.has_crf:
            return error_response(422, "nbest: the model has no CRF layer")
        try:
            if _chars(req) > INLINE_CHARS:  # tokenising a long text: off the event loop, which goes on meanwhile
                records = await asyncio.to_thread(service.records, req.text, req.texts, req.tokens)
            else:  # a short one takes less time than handing it to a thread
                records = service.records(req.text, req.texts, req.tokens, req.features)
            key = (req.nbest, req.scheme)
            preds = await batcher.submit(key, [s for r in records for s in r.sentences], o.timeout)
        except RequestProblem as exc:
            return error_response(exc.status, exc.message)
        except Overloaded as exc:
            return error_response(503, f"the server is busy ({exc}); try again", headers={"Retry-After": "1"})
        except TimeoutError:
            return error_response(504, f"the request took longer than {o.timeout:g} s")
        return _json({"results": service.render(key, records, preds)})

    @app.get("/health")
    async def health() -> Response:
        """Liveness and load: requests waiting, model calls so far."""
        assert batcher is not None
        s = batcher.stats
        return _json({"status": "ok", "model": service.info["name"], "runtime": service.runtime,
                      "waiting": batcher.waiting, "calls": s.calls, "requests": s.requests,
                      "largest_call": s.largest_call, "uptime_s": round(time.time() - started, 1)})

    @app.get("/model")
    async def model() -> Response:
        """The model: labels, task, scheme, version, architecture, training summary and the server's limits."""
        return _json(service.info)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _mount_docs(app)
    return app


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` from the ``swagger-ui-bundle`` package (served locally, no CDN), if installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # the OpenAPI document at /openapi.json is still there
        return
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount("/docs-static", StaticFiles(directory=str(swagger_ui_path)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="tagger API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon-32x32.png")
