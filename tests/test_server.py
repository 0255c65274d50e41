"""The HTTP service, started for real on 127.0.0.1 and called over HTTP."""

from __future__ import annotations

import json
import math
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightweight_decoder.errors import ConfigError
from lightweight_decoder.server import ServerConfig, create_app

from .conftest import BANK_TEXTS

MAX_BATCH = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory, small_bank, small_encoder):
    import uvicorn

    from lightweight_decoder.decoders.generative import create_generative_decoder

    folder = tmp_path_factory.mktemp("served")
    small_bank.save(folder / "bank")
    # an untrained tiny model: these tests check the API, not the quality of its text
    create_generative_decoder("tiny", 384, encoder_name=small_encoder.name, texts=BANK_TEXTS * 10, vocab_size=300,
                              max_len=16).save(folder / "gen")
    app = create_app(ServerConfig(bank=str(folder / "bank"), generative=str(folder / "gen"), nprobe=3, quantize="int8", max_batch=MAX_BATCH,
                                  max_text_chars=500))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.1)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client
    srv.should_exit = True
    thread.join(timeout=30)


def _good_roundtrip(client) -> None:
    r = client.post("/roundtrip", json={"texts": [BANK_TEXTS[1]]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["output"] == BANK_TEXTS[1]


def test_health_info_metrics(server):
    assert server.get("/health").json()["status"] == "ok"
    info = server.get("/info").json()
    assert info["encoder"] == {"name": "all-MiniLM-L6-v2", "dimension": 384}
    assert info["decoders"] == ["generative", "phrase"] and info["bank"]["size"] == len(BANK_TEXTS)
    assert info["bank"]["nprobe"] == 3  # the server's --nprobe, not the bank's saved 16
    assert info["generative"]["quantization"] == "int8" and info["generative"]["parameters"] > 100_000  # counted before quantizing
    assert info["generative"]["runtime"] == "torch"
    server.get("/health")
    text = server.get("/metrics").text
    assert 'ld_requests_total{endpoint="/health",status="200"}' in text and "ld_ready 1" in text


def test_encode_decode_roundtrip(server, small_encoder):
    enc = server.post("/encode", json={"texts": BANK_TEXTS[:2]}).json()
    assert enc["dimension"] == 384 and len(enc["embeddings"]) == 2
    np.testing.assert_allclose(enc["embeddings"][0], small_encoder.encode(BANK_TEXTS[0]), atol=1e-5)
    dec = server.post("/decode", json={"vectors": enc["embeddings"], "method": "weighted"}).json()
    assert [r["text"] for r in dec["results"]] == BANK_TEXTS[:2] and dec["results"][0]["method"] == "weighted"
    gen = server.post("/decode", json={"vectors": enc["embeddings"][:1], "decoder": "generative", "num_beams": 2, "max_new_tokens": 5})
    assert gen.status_code == 200, gen.text
    assert gen.json()["results"][0]["method"] == "generative"
    _good_roundtrip(server)


@pytest.mark.parametrize(
    "path, body, status, error_type",
    [
        ("/decode", {"vectors": [[0.1] * 10]}, 422, "InvalidEmbedding"),
        ("/decode", {"vectors": [[0.0] * 384]}, 422, "InvalidEmbedding"),
        ("/decode", {"vectors": [[1.0] * 384] * (MAX_BATCH + 1)}, 413, "PayloadTooLarge"),
        ("/decode", {"vectors": []}, 422, "InvalidInput"),
        ("/decode", {"vectors": [[1.0] * 384, [1.0] * 3]}, 422, "InvalidEmbedding"),
        ("/decode", {"vectors": [[1.0] * 384], "num_beams": 2, "do_sample": True, "decoder": "generative"}, 422, "ConfigError"),
        ("/decode", {"vector": [1.0]}, 422, "ValidationError"),
        ("/roundtrip", {"texts": ["x" * 501]}, 413, "PayloadTooLarge"),
        ("/roundtrip", {"texts": [""]}, 422, "InvalidText"),
        ("/encode", {"texts": "not a list"}, 422, "ValidationError"),
    ],
)
def test_bad_requests_get_typed_errors(server, path, body, status, error_type):
    r = server.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error_type"] == error_type and r.json()["error"]


def test_nan_and_malformed_json(server):
    nan = server.post("/decode", content='{"vectors": [[NaN' + ", 1.0" * 383 + "]]}", headers={"content-type": "application/json"})
    assert nan.status_code == 422 and nan.json()["error_type"] in ("InvalidEmbedding", "ValidationError")
    broken = server.post("/decode", content="{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["error_type"] == "ValidationError"
    _good_roundtrip(server)


def test_concurrent_requests(server):
    errors = []

    def work():
        try:
            for _ in range(3):
                _good_roundtrip(server)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
vectors = st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=400), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.sampled_from(["/decode", "/roundtrip", "/encode"]), body=json_values)
def test_fuzz_arbitrary_json_never_500(server, path, body):
    r = server.post(path, content=json.dumps(body, allow_nan=False), headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    assert r.status_code == 200 or {"error", "error_type"} <= set(r.json())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(vecs=vectors, decoder=st.sampled_from(["phrase", "generative"]))
def test_fuzz_vectors_never_500(server, vecs, decoder):
    body = json.dumps({"vectors": vecs, "decoder": decoder, "max_new_tokens": 4})
    r = server.post("/decode", content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    ok = vecs and len(vecs) <= MAX_BATCH and all(len(v) == 384 and all(math.isfinite(x) for x in v) and any(v) for v in vecs)
    assert (r.status_code == 200) == bool(ok), (r.status_code, r.text[:200])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=st.lists(st.text(max_size=700), max_size=12))
def test_fuzz_texts_never_500_and_server_survives(server, texts):
    r = server.post("/roundtrip", json={"texts": texts})
    assert r.status_code < 500, r.text
    _good_roundtrip(server)


def test_server_config_rejects_a_bad_nprobe_quantization_or_runtime():
    with pytest.raises(ConfigError, match="nprobe"):
        ServerConfig(nprobe=0)
    with pytest.raises(ConfigError, match="quantize"):
        ServerConfig(quantize="int4")
    with pytest.raises(ConfigError, match="runtime must be one of \\['torch', 'numpy'\\], got 'jax'"):
        ServerConfig(runtime="jax")


def test_a_numpy_runtime_service_decodes_greedily_and_refuses_beams(tmp_path, small_bank, small_encoder):
    from fastapi.testclient import TestClient

    from lightweight_decoder.decoders.generative import GenerativeDecoder, create_generative_decoder

    small_bank.save(tmp_path / "bank")
    create_generative_decoder("tiny", 384, encoder_name=small_encoder.name, texts=BANK_TEXTS * 10, vocab_size=300,
                              max_len=16).save(tmp_path / "gen")
    app = create_app(ServerConfig(bank=str(tmp_path / "bank"), generative=str(tmp_path / "gen"), runtime="numpy"))
    vector = small_encoder.encode(BANK_TEXTS[2])
    with TestClient(app) as client:
        assert client.get("/info").json()["generative"]["runtime"] == "numpy"
        ok = client.post("/decode", json={"vectors": [vector.tolist()], "decoder": "generative"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["results"][0]["text"] == GenerativeDecoder.load(tmp_path / "gen").decode(vector)  # torch's greedy text
        beams = client.post("/decode", json={"vectors": [vector.tolist()], "decoder": "generative", "num_beams": 2})
        assert beams.status_code == 422 and "torch runtime" in beams.json()["error"]
