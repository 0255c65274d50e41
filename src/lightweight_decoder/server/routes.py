"""The service's endpoints: /health, /info, /metrics, /encode, /decode, /roundtrip."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ..errors import DecoderError, InvalidEmbedding, InvalidInput, ModelNotFound
from .schemas import (
    DecodedText,
    DecodeRequest,
    DecodeResponse,
    EncodeRequest,
    EncodeResponse,
    RoundtripRequest,
    RoundtripResponse,
    RoundtripRow,
)

router = APIRouter()

_GENERATION_FIELDS = ("max_new_tokens", "num_beams", "do_sample", "temperature", "top_p", "repetition_penalty",
                      "no_repeat_ngram_size", "length_penalty", "num_return_sequences", "seed")


class PayloadTooLarge(DecoderError):
    """A batch or a text is over the configured limit (HTTP 413)."""


def _state(request: Request) -> Any:
    state = request.app.state.decoder_state
    if not state.ready:
        raise ModelNotFound("models are still loading")
    return state


def _check_batch(state: Any, n: int, what: str) -> None:
    if n == 0:
        raise InvalidInput(f"{what} is empty")
    if n > state.config.max_batch:
        raise PayloadTooLarge(f"{n} {what} in one request; the limit is {state.config.max_batch}")


def _check_texts(state: Any, texts: list[str]) -> None:
    _check_batch(state, len(texts), "texts")
    for i, text in enumerate(texts):
        if len(text) > state.config.max_text_chars:
            raise PayloadTooLarge(f"text {i} has {len(text)} characters; the limit is {state.config.max_text_chars}")


def _decoder(state: Any, name: str) -> Any:
    if name not in state.decoders:
        raise ModelNotFound(f"the {name} decoder is not loaded on this server; available: {sorted(state.decoders)}")
    return state.decoders[name]


@router.get("/health")
def health(request: Request) -> JSONResponse:
    state = request.app.state.decoder_state
    if not state.ready:
        return JSONResponse({"status": "loading"}, status_code=503)
    return JSONResponse({"status": "ok", "decoders": sorted(state.decoders), "uptime_s": round(time.time() - state.started, 1)})


@router.get("/info")
def info(request: Request) -> dict[str, Any]:
    from .. import __version__

    state = _state(request)
    phrase = state.decoders["phrase"]
    out = {
        "version": __version__,
        "encoder": {"name": state.encoder.name, "dimension": state.encoder.dimension},
        "decoders": sorted(state.decoders),
        "bank": {"size": len(phrase.bank), "index": phrase.bank.config.index_factory, "nprobe": phrase.bank.config.nprobe},
        "limits": {"max_batch": state.config.max_batch, "max_text_chars": state.config.max_text_chars},
    }
    if "generative" in state.decoders:
        out["generative"] = {"parameters": state.decoders["generative"].num_parameters,
                             "quantization": state.decoders["generative"].quantization,
                             "runtime": state.decoders["generative"].runtime}
    return out


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> str:
    """Prometheus text format."""
    state = request.app.state.decoder_state
    lines = ["# HELP ld_requests_total Requests by endpoint and status.", "# TYPE ld_requests_total counter"]
    with state.metrics_lock:
        for (endpoint, status), count in sorted(state.requests.items()):
            lines.append(f'ld_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}')
        lines += ["# HELP ld_request_seconds_sum Total time spent per endpoint.", "# TYPE ld_request_seconds_sum counter"]
        for endpoint, seconds in sorted(state.latency_sum.items()):
            lines.append(f'ld_request_seconds_sum{{endpoint="{endpoint}"}} {seconds:.6f}')
    lines += ["# HELP ld_decoder_latency_ms Decode latency percentiles.", "# TYPE ld_decoder_latency_ms gauge"]
    for name, decoder in sorted(state.decoders.items()):
        stats = decoder.monitor.stats(getattr(decoder, "cache", None))
        lines.append(f'ld_decoder_latency_ms{{decoder="{name}",quantile="0.5"}} {stats["p50_ms"]:.3f}')
        lines.append(f'ld_decoder_latency_ms{{decoder="{name}",quantile="0.95"}} {stats["p95_ms"]:.3f}')
        lines.append(f'ld_decoder_decodes_total{{decoder="{name}"}} {stats["decodes"]}')
        if "cache_hit_rate" in stats:
            lines.append(f'ld_decoder_cache_hit_rate{{decoder="{name}"}} {stats["cache_hit_rate"]:.4f}')
    lines += ["# HELP ld_decode_requests_total /decode requests per decoder; ld_decoder_calls_total: the decoder calls that "
              "served them (fewer when queued requests were decoded together).", "# TYPE ld_decode_requests_total counter",
              "# TYPE ld_decoder_calls_total counter"]
    for name, batcher in sorted(state.batchers.items()):
        lines.append(f'ld_decode_requests_total{{decoder="{name}"}} {batcher.stats["requests"]}')
        lines.append(f'ld_decoder_calls_total{{decoder="{name}"}} {batcher.stats["calls"]}')
    lines.append(f"ld_ready {int(state.ready)}")
    return "\n".join(lines) + "\n"


@router.post("/encode", response_model=EncodeResponse)
def encode(body: EncodeRequest, request: Request) -> EncodeResponse:
    state = _state(request)
    _check_texts(state, body.texts)
    with state.locks["encoder"]:
        vectors = state.encoder.encode(body.texts, precision=body.precision)
    return EncodeResponse(model=state.encoder.name, dimension=state.encoder.dimension, embeddings=vectors.tolist())


@router.post("/decode", response_model=DecodeResponse)
def decode(body: DecodeRequest, request: Request) -> DecodeResponse:
    state = _state(request)
    _check_batch(state, len(body.vectors), "vectors")
    decoder = _decoder(state, body.decoder)
    if len({len(v) for v in body.vectors}) != 1:
        raise InvalidEmbedding("all vectors must have the same length")
    matrix = np.asarray(body.vectors, dtype=np.float32)
    if body.decoder == "phrase":
        kwargs = {k: v for k, v in {"method": body.method, "top_k": body.top_k}.items() if v is not None}
    else:
        kwargs = {k: getattr(body, k) for k in _GENERATION_FIELDS if getattr(body, k) is not None}
    # a bad vector fails its own request: a merged call that raises is retried request by request
    results = state.batchers[body.decoder].submit(matrix, mergeable=_mergeable(decoder, kwargs), **kwargs)
    return DecodeResponse(decoder=body.decoder, results=[
        DecodedText(text=r.text, score=None if math.isnan(r.score) else r.score, method=r.method, fallback_used=r.fallback_used)
        for r in results])


def _mergeable(decoder: Any, kwargs: dict[str, Any]) -> bool:
    """Whether a request's rows decode the same merged with other requests' (see server/batching.py)."""
    if kwargs.get("do_sample"):
        return False  # the rows share one stream of random draws
    # int8 quantizes each layer's input with one scale per call: a row's text depends on the others
    return getattr(decoder, "quantization", None) != "int8"


@router.post("/roundtrip", response_model=RoundtripResponse)
def roundtrip(body: RoundtripRequest, request: Request) -> RoundtripResponse:
    from ..quality import roundtrip as run

    state = _state(request)
    _check_texts(state, body.texts)
    decoder = _decoder(state, body.decoder)
    with state.locks[body.decoder], state.locks["encoder"]:
        rows = [RoundtripRow(**r.to_dict()) for r in run(body.texts, state.encoder, decoder.decode)]
    return RoundtripResponse(decoder=body.decoder, results=rows)
