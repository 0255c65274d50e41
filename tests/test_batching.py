"""The service's micro-batching (server/batching.py): merged calls, each request's own rows, errors kept apart."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from lightweight_decoder.errors import InvalidEmbedding
from lightweight_decoder.server.batching import MicroBatcher


class _RecordingDecoderDouble:
    """Test double of a decoder's generate: row i of the result names the row's first value and the settings;
    records the number of rows of every call. A row whose first value is negative makes the call raise."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, matrix, **kwargs):
        self.calls.append(len(matrix))
        if (matrix[:, 0] < 0).any():
            raise InvalidEmbedding("a negative first value")
        return [f"{row[0]:g} {sorted(kwargs.items())}" for row in matrix]


def _submit_while_busy(batcher: MicroBatcher, requests: list[tuple[np.ndarray, bool, dict]]) -> list:
    """Submit every request from its own thread while the model is busy (its lock held), so that all of them
    queue up; then free the model. Returns each request's result or exception, in submission order."""
    out: list = [None] * len(requests)

    def worker(i: int, matrix, mergeable, kwargs) -> None:
        try:
            out[i] = batcher.submit(matrix, mergeable=mergeable, **kwargs)
        except Exception as exc:  # noqa: BLE001 - compared by the test
            out[i] = exc

    threads = []
    with batcher.lock:
        for i, (matrix, mergeable, kwargs) in enumerate(requests):
            threads.append(threading.Thread(target=worker, args=(i, matrix, mergeable, kwargs)))
            threads[-1].start()
            deadline = time.monotonic() + 10
            while batcher.stats["requests"] < i + 1:  # submitted in this order, so the queue keeps it
                assert time.monotonic() < deadline
                time.sleep(0.001)
    for t in threads:
        t.join(timeout=10)
    return out


def _rows(*values: float) -> np.ndarray:
    return np.array([[v, 0.0] for v in values], np.float32)


def test_a_lone_request_is_decoded_at_once():
    double = _RecordingDecoderDouble()
    batcher = MicroBatcher(double, max_rows=8)
    assert batcher.submit(_rows(1, 2), mergeable=True) == ["1 []", "2 []"]
    assert double.calls == [2]


def test_requests_queued_with_the_same_settings_share_one_call_and_keep_their_own_rows():
    double = _RecordingDecoderDouble()
    batcher = MicroBatcher(double, max_rows=8)
    kwargs = {"num_beams": 2}
    requests = [(_rows(i, i + 0.5), True, kwargs) for i in range(4)]
    out = _submit_while_busy(batcher, requests)
    assert out == [[f"{i:g} [('num_beams', 2)]", f"{i + 0.5:g} [('num_beams', 2)]"] for i in range(4)]
    assert double.calls == [8] and batcher.stats == {"requests": 4, "calls": 1, "merged_requests": 4}


def test_other_settings_unmergeable_requests_and_the_row_limit_split_calls_in_arrival_order():
    double = _RecordingDecoderDouble()
    batcher = MicroBatcher(double, max_rows=3)
    out = _submit_while_busy(batcher, [
        (_rows(1), True, {"top_k": 1}),
        (_rows(2), True, {"top_k": 2}),       # other settings: its own call
        (_rows(3, 4), True, {"top_k": 1}),    # joins the first (3 rows)
        (_rows(5), True, {"top_k": 1}),       # over max_rows: next call
        (_rows(6), False, {"top_k": 1}),      # sampling, say: never merged
    ])
    assert out == [["1 [('top_k', 1)]"], ["2 [('top_k', 2)]"], ["3 [('top_k', 1)]", "4 [('top_k', 1)]"], ["5 [('top_k', 1)]"],
                   ["6 [('top_k', 1)]"]]
    assert double.calls == [3, 1, 1, 1]


def test_a_failing_merged_call_is_decoded_request_by_request_so_only_the_bad_one_fails():
    double = _RecordingDecoderDouble()
    batcher = MicroBatcher(double, max_rows=8)
    out = _submit_while_busy(batcher, [(_rows(1), True, {}), (_rows(-1), True, {}), (_rows(2), True, {})])
    assert out[0] == ["1 []"] and out[2] == ["2 []"]
    assert isinstance(out[1], InvalidEmbedding)
    assert double.calls == [3, 1, 1, 1]


def test_many_threads_all_get_their_own_results():
    double = _RecordingDecoderDouble()
    batcher = MicroBatcher(lambda m, **kw: (time.sleep(0.002), double(m, **kw))[1], max_rows=16)
    results: dict[int, list] = {}

    def worker(i: int) -> None:
        results[i] = batcher.submit(_rows(i), mergeable=True)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == {i: [f"{i:g} []"] for i in range(40)}
    assert sum(double.calls) == 40 and batcher.stats["calls"] == len(double.calls) <= 40


@pytest.mark.parametrize("decoder", ["generative", "phrase"])
def test_the_service_merges_concurrent_decodes_without_changing_any_text(tmp_path, small_bank, small_encoder, decoder):
    """A real app (fp32 generator): requests queued while the model is busy come back with the text each vector
    decodes to alone, and /metrics counts fewer decoder calls than requests."""
    from fastapi.testclient import TestClient

    from lightweight_decoder.decoders.generative import create_generative_decoder
    from lightweight_decoder.server import ServerConfig, create_app

    from .conftest import BANK_TEXTS

    small_bank.save(tmp_path / "bank")
    create_generative_decoder("tiny", 384, encoder_name=small_encoder.name, texts=BANK_TEXTS * 10, vocab_size=300,
                              max_len=16).save(tmp_path / "gen")
    app = create_app(ServerConfig(bank=str(tmp_path / "bank"), generative=str(tmp_path / "gen")))
    vectors = small_encoder.encode(BANK_TEXTS[:6] + ["A dog barked at the moon.", "Rain again."]).tolist()
    with TestClient(app) as client:
        alone = [client.post("/decode", json={"vectors": [v], "decoder": decoder}).json()["results"][0]["text"] for v in vectors]
        state = app.state.decoder_state
        out: list = [None] * len(vectors)

        def worker(i: int) -> None:
            out[i] = client.post("/decode", json={"vectors": [vectors[i]], "decoder": decoder}).json()["results"][0]["text"]

        batcher = state.batchers[decoder]
        before = dict(batcher.stats)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(vectors))]
        with batcher.lock:  # the model is busy: every request queues
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while batcher.stats["requests"] < before["requests"] + len(vectors):
                assert time.monotonic() < deadline
                time.sleep(0.005)
        for t in threads:
            t.join(timeout=60)
        assert out == alone
        assert batcher.stats["calls"] - before["calls"] == 1
        metrics = client.get("/metrics").text
        assert f'ld_decoder_calls_total{{decoder="{decoder}"}} {batcher.stats["calls"]}' in metrics
        assert f'ld_decode_requests_total{{decoder="{decoder}"}} {batcher.stats["requests"]}' in metrics
