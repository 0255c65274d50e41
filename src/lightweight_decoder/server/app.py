"""The HTTP service: ``create_app(ServerConfig(...))``; models load in the app's lifespan.

>>> app = create_app(ServerConfig(bank="models/default/bank"))   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections import defaultdict
from typing import Any, AsyncIterator

from ..config import QUANTIZATION_SCHEMES, RUNTIMES, BaseConfig, _check, _is_int

__all__ = ["ServerConfig", "create_app"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ServerConfig(BaseConfig):
    """What the service loads and the limits it enforces."""

    bank: str | None = None  # default: the shipped bank
    generative: str | None = None  # default: the shipped model, when present
    encoder: str | None = None  # default: the bank's encoder
    nprobe: int | None = None  # IVF lists a bank search visits; default: the bank's own setting
    quantize: str | None = None  # "fp16" or "int8": the generator's weights for inference (GenerativeDecoder.quantize)
    runtime: str = "torch"  # or "numpy": the generator computed with NumPy, greedy only (GenerativeDecoder.load)
    max_batch: int = 64
    max_text_chars: int = 2000

    def validate(self) -> None:
        _check(_is_int(self.max_batch) and self.max_batch >= 1, f"max_batch must be an int >= 1, got {self.max_batch!r}")
        _check(_is_int(self.max_text_chars) and self.max_text_chars >= 1, f"max_text_chars must be an int >= 1, got {self.max_text_chars!r}")
        _check(self.quantize is None or self.quantize in QUANTIZATION_SCHEMES,
               f"quantize must be null or one of {list(QUANTIZATION_SCHEMES)}, got {self.quantize!r}")
        _check(self.runtime in RUNTIMES, f"runtime must be one of {list(RUNTIMES)}, got {self.runtime!r}")
        _check(self.nprobe is None or (_is_int(self.nprobe) and self.nprobe >= 1), f"nprobe must be an int >= 1 or null, got {self.nprobe!r}")


class _State:
    """Loaded models, one lock per model (torch on 2 cores gains nothing from running them at once), metrics."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.ready = False
        self.encoder: Any = None
        self.decoders: dict[str, Any] = {}
        self.locks = {name: threading.Lock() for name in ("encoder", "phrase", "generative")}
        self.started = time.time()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.metrics_lock = threading.Lock()
        self.batchers: dict[str, Any] = {}  # per decoder: /decode requests queued for it are decoded together

    def _batcher(self, name: str) -> Any:
        from .batching import MicroBatcher

        decoder = self.decoders[name]

        def run(matrix: Any, **kwargs: Any) -> list:
            with self.locks["encoder"]:  # the phrase decoder re-ranks with it; the generator may rescore with it
                return decoder.generate(matrix, **kwargs)

        return MicroBatcher(run, max_rows=self.config.max_batch, lock=self.locks[name])

    def load(self) -> None:
        from ..loading import load_decoder
        from ..errors import ModelNotFound

        decoder, self.encoder = load_decoder("phrase", bank_path=self.config.bank, model=self.config.encoder, nprobe=self.config.nprobe)
        self.decoders["phrase"] = decoder
        try:
            self.decoders["generative"], _ = load_decoder("generative", generative_path=self.config.generative, encoder=self.encoder,
                                                         quantize=self.config.quantize, runtime=self.config.runtime)
        except ModelNotFound as exc:
            if self.config.generative is not None:
                raise
            logger.info("generative decoder not loaded: %s", exc)
        self.batchers = {name: self._batcher(name) for name in self.decoders}
        self.ready = True

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        with self.metrics_lock:
            self.requests[(endpoint, status)] += 1
            self.latency_sum[endpoint] += seconds


def create_app(config: ServerConfig | None = None):
    """The FastAPI application; models load when it starts (lifespan), not at import."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from .. import __version__
    from ..errors import DecoderError, EmptyBank, ModelNotFound
    from .routes import PayloadTooLarge, router

    state = _State(config or ServerConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.load()
        yield

    app = FastAPI(title="lightweight-decoder", version=__version__, lifespan=lifespan)
    app.state.decoder_state = state
    app.include_router(router)

    def error(status: int, exc: Exception, error_type: str | None = None) -> JSONResponse:
        return JSONResponse({"error": str(exc), "error_type": error_type or type(exc).__name__}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5])
        return error(422, Exception(details or "invalid request"), "ValidationError")

    @app.exception_handler(PayloadTooLarge)
    async def _too_large(request: Request, exc: PayloadTooLarge) -> JSONResponse:
        return error(413, exc)

    @app.exception_handler(DecoderError)
    async def _decoder_error(request: Request, exc: DecoderError) -> JSONResponse:
        if isinstance(exc, (ModelNotFound, EmptyBank)):
            return error(503, exc)
        return error(422 if isinstance(exc, ValueError) else 400, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug, logged
        logger.exception("unhandled error on %s", request.url.path)
        return error(500, Exception("internal error; see the server log"), "InternalError")

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Any:
        start = time.perf_counter()
        response = await call_next(request)
        state.record(request.url.path, response.status_code, time.perf_counter() - start)
        return response

    return app


