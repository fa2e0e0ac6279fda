"""Starting the server: load the model, build the app, run uvicorn (one process or ``workers``)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

from tagger.runtime import load_predictor
from tagger.serve.options import ServeOptions
from tagger.serve.service import Service

#: Where a worker process finds its model and options (uvicorn starts workers from an import string).
ENVIRONMENT = "TAGGER_SERVE"


def load_service(model_dir: str | os.PathLike, options: ServeOptions) -> Service:
    """The model of ``model_dir`` ready to serve."""
    options.validate()
    return Service(load_predictor(model_dir, options.runtime), options, Path(model_dir), options.runtime)


def app_from_environment():
    """The app of a worker process (``uvicorn --factory``): the model and options from :data:`ENVIRONMENT`."""
    from tagger.serve.app import create_app

    spec = json.loads(os.environ[ENVIRONMENT])
    return create_app(load_service(spec["model"], ServeOptions(**spec["options"])))


def serve(model_dir: str | os.PathLike, options: ServeOptions, announce: Callable[[str], None] = print) -> None:
    """Serve the model until interrupted (Ctrl-C / SIGTERM stop it gracefully)."""
    import uvicorn

    from tagger.serve.app import create_app

    options.validate()
    service = load_service(model_dir, options)  # a bad model directory fails here, before anything listens
    host = f"[{options.host}]" if ":" in options.host else options.host
    common = dict(host=options.host, port=options.port, log_level="info", access_log=options.access_log,
                  limit_concurrency=4 * options.max_queue + 64, timeout_graceful_shutdown=5)
    announce(f"serving {model_dir} ({options.runtime}) on http://{host}:{options.port} with {options.workers} "
             f"worker(s); the page is at /, the API documentation at /docs")
    if options.workers == 1:
        uvicorn.run(create_app(service), **common)  # type: ignore[arg-type]
        return
    del service  # each worker loads its own copy
    os.environ[ENVIRONMENT] = json.dumps({"model": str(Path(model_dir).resolve()),
                                          "options": dataclasses.asdict(options)})
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=options.workers,
                **common)  # type: ignore[arg-type]
