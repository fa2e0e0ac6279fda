"""``tagger serve``: the HTTP server of a trained model (the optional ``tagger[serve]`` extra)."""

from __future__ import annotations

import click

from tagger.declare import InputPath
from tagger.errors import TaggerError
from tagger.options import click_options, given
from tagger.serve.options import ServeOptions


@click.command()
@click.argument("model_dir", type=InputPath(exists=True, file_okay=False))
@click_options(ServeOptions)
def serve(model_dir, **flags):
    """Serve MODEL_DIR over HTTP: POST /annotate (JSON), GET /health, GET /model, a page at /, docs at /docs.

    Listens on 127.0.0.1 (this machine only) unless --host says otherwise. Stop it with Ctrl-C.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise TaggerError(f"tagger serve needs the server packages ({exc.name} is missing): "
                          "pip install 'tagger[serve]'") from None
    from tagger.serve import serve as run_server

    run_server(model_dir, ServeOptions(**given(flags)), announce=lambda m: click.echo(m, err=True))
