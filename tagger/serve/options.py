"""What ``tagger serve`` can be told (:class:`ServeOptions`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tagger.errors import TaggerError
from tagger.options import check_fields, option
from tagger.runtime import RUNTIMES


@dataclass
class ServeOptions:
    """Everything ``tagger serve`` can be told (the CLI makes one flag of each field it shows)."""

    host: str = option("127.0.0.1", help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every "
                       "interface).")
    port: int = option(8080, min=0, max=65535, help="TCP port (0: any free port).")
    workers: int = option(1, min=1, max=64, help="Server processes, each with its own copy of the model.")
    threads: int = option(0, min=0, help="Torch threads per process (0 = cores / workers, not counting cores "
                          "other processes keep busy).")
    runtime: str = option("torch", choices=RUNTIMES, help="torch: a model directory; onnx: a directory written by "
                          "`tagger export --format onnx`.")
    window_ms: float = option(2.0, min=0.0, max=1000.0, help="How long an idle server waits for more requests to "
                              "tag together with the first.")
    batch_size: int = option(32, min=1, help="Sentences per LSTM batch within a model call (a call's sentences come "
                             "from many requests, of mixed lengths: small batches of similar lengths waste less "
                             "padding than annotate's 256).")
    batch_tokens: int = option(16384, min=1, help="Tokens per model call, at most (a larger request is one call "
                               "of its own).")
    max_queue: int = option(256, min=1, help="Requests waiting for the model; more are refused with 503.")
    timeout: float = option(30.0, above=0.0, help="Seconds a request may wait and run before it gets 504.")
    max_body: int = option(1_000_000, min=1, help="Largest request body in bytes (413 beyond).")
    max_items: int = option(1000, min=1, help="Texts or token lists per request, at most.")
    max_sentences: int = option(5000, min=1, help="Sentences per request, at most.")
    max_tokens: int = option(100_000, min=1, help="Tokens per request, at most.")
    max_length: int = option(1000, min=1, help="Longer sentences are tagged in pieces of this many tokens and "
                             "rejoined (as `tagger annotate --max-length`).")
    access_log: bool = option(False, help="Log every request (uvicorn's access log; off: it costs more than a "
                              "small request's tagging).")
    max_nbest: int = option(10, min=0, max=100, help="Largest n-best list a request may ask for.")

    def validate(self) -> None:
        check_fields(self)
        host = self.host.strip("[]")
        if not host:
            raise TaggerError("--host must not be empty")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost" and not all(part.isalnum() or "-" in part for part in host.split(".")):
                raise TaggerError(f"--host {self.host!r} is neither an IP address nor a host name") from None
