"""``tagger serve``: an HTTP JSON API and a page for a trained model (FastAPI + uvicorn).

``POST /annotate`` takes ``{"text": ...}``, ``{"texts": [...]}`` or ``{"tokens": [[...], ...]}``
(with optional ``nbest`` and ``scheme``) and answers ``{"results": [...]}``: one record per text or
token list, exactly the JSON line ``tagger annotate`` writes for the same input (tokens, tags,
entities with character offsets and CRF probabilities; offsets and sentences for text).
``GET /health`` and ``GET /model`` describe the server and the model; ``/`` is a page that
highlights the entities of a text; ``/docs`` the OpenAPI documentation.

Concurrent requests are tagged together (:mod:`.batcher`); requests are bounded in size, the
queue in length and each request in time (:mod:`.options`). Modules: :mod:`.options`,
:mod:`.schema` (request and response bodies), :mod:`.service` (model and records),
:mod:`.batcher`, :mod:`.limits`, :mod:`.app` (routes), :mod:`.run` (uvicorn).

Library use::

    from tagger.serve import ServeOptions, create_app, load_service
    app = create_app(load_service("model", ServeOptions()))   # any ASGI server can run it
"""

from tagger.serve.options import ServeOptions

__all__ = ["ServeOptions", "create_app", "load_service", "serve"]


def __getattr__(name: str):
    # The server packages (fastapi, uvicorn) are an optional extra: imported on first use only,
    # so that `tagger --help` and ServeOptions work without them.
    if name == "create_app":
        from tagger.serve.app import create_app

        return create_app
    if name in ("load_service", "serve"):
        from tagger.serve import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
