"""Tests for ``tagger serve`` (tagger.serve): the API answers what ``tagger annotate`` writes, limits,
errors, micro-batching, a real server process and the page in a headless Chromium."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
from fastapi.testclient import TestClient  # noqa: E402

from tagger.cli import main  # noqa: E402
from tagger.commands.annotate import AnnotateOptions, annotate_paths  # noqa: E402
from tagger.serve import ServeOptions, create_app, load_service  # noqa: E402

TEXT = "Peter Blackburn lives in Brussels. The European Commission said on Thursday it disagreed."
TEXTS = [TEXT, "", "EU rejects German call to boycott British lamb .\n\nGermany 's representative said so."]


@pytest.fixture(scope="module")
def client(model_dir):
    app = create_app(load_service(model_dir, ServeOptions(threads=1, window_ms=1)))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def annotate_jsonl(model_dir: Path, tmp_path: Path, objs: list[dict], **options) -> list[dict]:
    """What `tagger annotate` writes for these JSONL records."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    summary = annotate_paths(model_dir, [str(src)], str(tmp_path / "out.jsonl"),
                             AnnotateOptions(progress=False, threads=1, **options))
    assert summary.ok
    return [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------- the API answers as annotate


def test_text_texts_and_tokens_answer_what_annotate_writes(client, model_dir, tmp_path):
    r = client.post("/annotate", json={"text": TEXT})
    assert r.status_code == 200
    assert r.json()["results"] == annotate_jsonl(model_dir, tmp_path, [{"text": TEXT}])
    res = r.json()["results"][0]
    assert res["tokens"][:2] == ["Peter", "Blackburn"] and len(res["tags"]) == len(res["tokens"])
    for e in res["entities"]:
        assert TEXT[e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1

    r = client.post("/annotate", json={"texts": TEXTS})
    assert r.json()["results"] == annotate_jsonl(model_dir, tmp_path, [{"text": t} for t in TEXTS])
    assert r.json()["results"][1]["tokens"] == []

    sents = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], []]
    r = client.post("/annotate", json={"tokens": sents})
    assert r.json()["results"] == annotate_jsonl(model_dir, tmp_path, [{"tokens": s} for s in sents])


@pytest.mark.parametrize("nbest,scheme", [(3, "iob2"), (0, "bioes"), (2, "model"), (0, "iob1")])
def test_nbest_and_scheme_as_annotate(client, model_dir, tmp_path, nbest, scheme):
    body = {"texts": TEXTS, "nbest": nbest, "scheme": scheme}
    got = client.post("/annotate", json=body).json()["results"]
    assert got == annotate_jsonl(model_dir, tmp_path, [{"text": t} for t in TEXTS], nbest=nbest, scheme=scheme)
    if nbest:
        assert len(got[0]["nbest"][0]) == nbest  # one list per sentence


def test_long_sentences_are_tagged_in_pieces_as_annotate(model_dir, tmp_path):
    tokens = (["Peter", "Blackburn", "lives", "in", "Brussels", "."] * 30)[:170]
    app = create_app(load_service(model_dir, ServeOptions(threads=1, max_length=50)))
    with TestClient(app) as c:
        got = c.post("/annotate", json={"tokens": [tokens]}).json()["results"]
    assert got == annotate_jsonl(model_dir, tmp_path, [{"tokens": tokens}], max_length=50)


def test_text_with_lone_surrogates_and_non_bmp_characters(client, model_dir, tmp_path):
    raw = b'{"text": "\\ud800 Peter Blackburn \\ud83d\\ude00 lives in Brussels"}'
    r = client.post("/annotate", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200
    text = json.loads(raw)["text"]
    assert r.json()["results"] == annotate_jsonl(model_dir, tmp_path, [{"text": text}])


def test_onnx_runtime_answers_as_the_torch_runtime(client, model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from tagger.onnx.export import export

    export(model_dir, tmp_path / "onnx", "onnx")
    app = create_app(load_service(tmp_path / "onnx", ServeOptions(threads=1, runtime="onnx")))
    body = {"texts": TEXTS, "nbest": 2}
    with TestClient(app) as c:
        got = c.post("/annotate", json=body).json()["results"]
        info = c.get("/model").json()
    want = client.post("/annotate", json=body).json()["results"]

    def scores(results: list[dict]) -> list[float]:  # CRF probabilities: float rounding may differ
        return [x for r in results for e in r["entities"] for x in [e.pop("score")]] + \
               [x for r in results for sent in r["nbest"] for nb in sent for x in [nb.pop("prob")]]

    assert scores(got) == pytest.approx(scores(want), abs=1e-5)
    assert got == want
    assert info["runtime"] == "onnx" and info["labels"] == client.get("/model").json()["labels"]


# ---------------------------------------------------------------------------- health, model, page, docs


def test_health_model_page_and_docs(client, model_dir):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["runtime"] == "torch" and h["waiting"] == 0
    m = client.get("/model").json()
    cfg = json.loads((model_dir / "config.json").read_text())
    assert m["task"] == "entity" and m["scheme"] == cfg["scheme"] and m["version"] == cfg["tagger_version"]
    assert "<pad>" not in m["labels"] and set(m["labels"]) == set(cfg["vocab"]["labels"]) - {"<pad>"}
    assert m["entity_types"] == sorted({t[2:] for t in m["labels"] if t != "O"})
    assert m["training"]["summary"]["epochs"] == 3 and m["training"]["options"]["hidden"] == 32
    assert m["architecture"]["hidden"] == 32 and m["limits"]["max_items"] == 1000

    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script src=\"/static/app.js\"" in page.text and "http" not in page.text.split("<footer")[0]
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "textContent" in js.text and "innerHTML" not in js.text
    assert client.get("/static/style.css").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/annotate" in schema["paths"] and "AnnotateRequest" in schema["components"]["schemas"]
    if client.get("/docs").status_code == 200:  # swagger-ui-bundle installed: served locally, no CDN
        docs = client.get("/docs").text
        assert "/docs-static/swagger-ui-bundle.js" in docs and "cdn." not in docs
        assert client.get("/docs-static/swagger-ui-bundle.js").status_code == 200


# ---------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize("body,status,message", [
    (b'{"text": "x", "tokens": [["a"]]}', 422, "exactly one of 'text', 'texts' or 'tokens' (got text, tokens)"),
    (b"{}", 422, "exactly one of"),
    (b'{"text": 5}', 422, "text: Input should be a valid string"),
    (b'{"tokens": [["a", " "]]}', 422, "tokens[0]: 'tokens' must be a list of non-blank strings"),
    (b'{"tokens": ["a b"]}', 422, "tokens.0: Input should be a valid list"),
    (b'{"text": "x", "nbest": -1}', 422, "nbest: Input should be greater than or equal to 0"),
    (b'{"text": "x", "nbest": 11}', 422, "nbest: at most 10"),
    (b'{"text": "x", "scheme": "bilou"}', 422, "scheme: Input should be"),
    (b'{"text": "x", "colour": 1}', 422, "colour: Extra inputs are not permitted"),
    (b'{"text": "x"', 422, "JSON decode error"),
    (b"[1, 2]", 422, "valid dictionary"),
    (b'{"texts": [' + b'"a",' * 1000 + b'"a"]}', 413, "1001 items in 'texts': at most 1000 per request"),
])
def test_bad_requests_get_a_clear_json_error_and_the_server_goes_on(client, body, status, message):
    r = client.post("/annotate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert client.post("/annotate", json={"text": "Peter lives in Paris."}).status_code == 200


def test_size_limits_and_unknown_routes(model_dir):
    app = create_app(load_service(model_dir, ServeOptions(threads=1, max_body=2000, max_tokens=50, max_sentences=3)))
    with TestClient(app) as c:
        r = c.post("/annotate", json={"text": "word " * 1000})
        assert r.status_code == 413 and r.json()["error"] == "the request body is over 2,000 bytes"

        def chunks():  # no Content-Length: counted as it streams in
            for _ in range(10):
                yield b" " * 500
        r = c.post("/annotate", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "over 2,000 bytes" in r.json()["error"]
        r = c.post("/annotate", json={"text": "word " * 60})
        assert r.status_code == 413 and r.json()["error"] == "more than 50 tokens in the request"
        r = c.post("/annotate", json={"tokens": [["a"], ["b"], ["c"], ["d"]]})
        assert r.status_code == 413 and r.json()["error"] == "more than 3 sentences in the request"
        r = c.post("/annotate", json={"text": "One. Two. Three. Four."})
        assert r.status_code == 413 and r.json()["error"] == "more than 3 sentences in the request"
        assert c.get("/nothing").status_code == 404 and c.get("/nothing").json() == {"error": "Not Found"}
        r = c.get("/annotate")
        assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed"}
        assert c.post("/annotate", json={"text": "word " * 40}).status_code == 200


def test_model_failure_is_a_500_and_the_server_goes_on(model_dir, monkeypatch):
    service = load_service(model_dir, ServeOptions(threads=1))
    real = service.predict

    def flaky(key, sentences):
        if any("boom" in s for s in sentences):
            raise RuntimeError("kaput")
        return real(key, sentences)

    monkeypatch.setattr(service, "predict", flaky)
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        r = c.post("/annotate", json={"tokens": [["boom"]]})
        assert r.status_code == 500 and r.json() == {"error": "internal error: RuntimeError"}
        assert c.post("/annotate", json={"tokens": [["fine"]]}).status_code == 200


def test_timeout_is_a_504_and_a_full_queue_a_503(model_dir, monkeypatch):
    service = load_service(model_dir, ServeOptions(threads=1, timeout=0.2, max_queue=1, window_ms=0))
    real = service.predict

    def slow(key, sentences):
        time.sleep(0.5)
        return real(key, sentences)

    monkeypatch.setattr(service, "predict", slow)
    with TestClient(create_app(service)) as c:
        r = c.post("/annotate", json={"text": "Peter lives in Paris."})
        assert r.status_code == 504 and r.json()["error"] == "the request took longer than 0.2 s"
        time.sleep(0.5)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            codes = sorted(f.result().status_code for f in [
                pool.submit(c.post, "/annotate", json={"tokens": [["a"]]}) for _ in range(4)])
        assert 503 in codes
        busy = [r for r in [c.post("/annotate", json={"tokens": [["a"]]})] if r.status_code == 503]
        for b in busy:
            assert b.headers["retry-after"] == "1"


def test_concurrent_requests_are_batched_and_answered_correctly(model_dir, tmp_path):
    service = load_service(model_dir, ServeOptions(threads=1, window_ms=50))
    texts = [f"Peter Blackburn number {i} lives in Brussels." for i in range(24)]
    expected = annotate_jsonl(model_dir, tmp_path, [{"text": t} for t in texts])
    with TestClient(create_app(service)) as c, concurrent.futures.ThreadPoolExecutor(12) as pool:
        got = list(pool.map(lambda t: c.post("/annotate", json={"text": t}).json()["results"][0], texts))
        stats = c.get("/health").json()
    assert got == expected
    assert stats["requests"] == 24 and stats["calls"] < 24 and stats["largest_call"] > 1


# ---------------------------------------------------------------------------- the command and a real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tagger.cli", "serve", str(model_dir), "--port", str(port),
                             "--threads", "1", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode() if proc.stdout else "server exited")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not start")


def stop_server(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal (exit by SIGTERM, as the caller asked)
    assert proc.returncode in (0, -signal.SIGTERM), out.decode()
    assert b"Application shutdown complete" in out or b"Finished server process" in out, out.decode()
    return out.decode()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_server_process_answers_concurrent_clients_and_stops_cleanly(model_dir, tmp_path, workers):
    import httpx

    texts = [f"Peter Blackburn {i} lives in Brussels." for i in range(16)]
    expected = annotate_jsonl(model_dir, tmp_path, [{"text": t} for t in texts])
    proc, url = start_server(model_dir, "--workers", str(workers))
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda t: httpx.post(url + "/annotate", json={"text": t}, timeout=30).json(), texts))
        assert [g["results"][0] for g in got] == expected
        assert httpx.post(url + "/annotate", content=b"{", timeout=10).status_code == 422
    finally:
        out = stop_server(proc)
    assert f"serving {model_dir}" in out and "http://127.0.0.1:" in out


def test_cli_errors_exit_2_without_traceback(model_dir, tmp_path, monkeypatch):
    r = CliRunner().invoke(main, ["serve", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = CliRunner().invoke(main, ["serve", str(tmp_path)])
    assert r.exit_code == 2 and "config.json" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["serve", str(model_dir), "--host", "bad host!"])
    assert r.exit_code == 2 and "neither an IP address nor a host name" in r.output
    r = CliRunner().invoke(main, ["serve", str(model_dir), "--port", "70000"])
    assert r.exit_code == 2
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    r = CliRunner().invoke(main, ["serve", str(model_dir)])
    assert r.exit_code == 2 and "pip install 'tagger[serve]'" in r.output


# ---------------------------------------------------------------------------- the page in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--hide-scrollbars", "--virtual-time-budget=15000", *args],
                          capture_output=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium)")
def test_page_highlights_entities_in_headless_chromium(model_dir, tmp_path):
    import numpy as np
    from PIL import Image

    proc, url = start_server(model_dir)
    try:
        import httpx

        text = "Peter Blackburn lives in Brussels . The European Commission said so ."
        expected = httpx.post(url + "/annotate", json={"text": text}, timeout=30).json()["results"][0]["entities"]
        assert expected, "the sample model finds entities in this text"
        page = f"{url}/?{urllib.parse.urlencode({'text': text})}"
        dom = chromium("--dump-dom", page).stdout.decode()
        for e in expected:  # each entity as a highlighted <mark> with its label and confidence
            assert f'data-label="{e["label"]}"' in dom
            assert f'{e["label"]} {100 * e["score"]:.1f}%' in dom
        assert dom.count('class="ent"') == len(expected)
        assert dom.count("<tr>") == len(text.split()) + 1  # the token table (and its header)
        shot = tmp_path / "page.png"
        chromium(f"--screenshot={shot}", "--window-size=1000,900", page)
        pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
        colours = {"PER": (0xAA, 0x9C, 0xFC), "ORG": (0x7A, 0xEC, 0xEC), "LOC": (0xFF, 0x95, 0x61),
                   "MISC": (0xC8, 0x87, 0xFB)}
        for label in {e["label"] for e in expected}:  # the highlight colour is painted
            hits = int((np.abs(pixels.astype(int) - colours[label]).sum(1) < 12).sum())
            assert hits > 200, f"{label}: {hits} pixels of its colour"
    finally:
        stop_server(proc)
