"""Loading artifacts for the command line and the server: decoders by kind, vectors from files."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, CorruptArtifact, IncompatibleArtifact, InvalidInput, ModelNotFound

logger = logging.getLogger(__name__)

__all__ = ["load_decoder", "load_screen", "read_vectors"]


def _artifact_encoder(path: Path, model: str | None, encoder: Any = None) -> Any:
    """The encoder an artifact was built with (or ``model``); ``encoder``, if given, is reused as is."""
    from .encoder import TextEncoder

    if encoder is not None:
        return encoder
    meta = json.loads((path / "config.json").read_text())
    return TextEncoder(model or meta.get("encoder", "all-mpnet-base-v2"))


def load_decoder(kind: str, bank_path: str | None = None, generative_path: str | None = None, method: str | None = None,
                 top_k: int | None = None, num_beams: int | None = None, config_file: str | None = None,
                 model: str | None = None, encoder: Any = None, nprobe: int | None = None,
                 quantize: str | None = None, screen_path: str | None = None, memory_bank: Any = None,
                 runtime: str = "torch", with_encoder: bool = True) -> tuple[Any, Any]:
    """Load a decoder by kind (``phrase``, ``generative`` or ``hybrid``) with the encoder it was built for.

    Paths default to the shipped artifacts; a given ``encoder`` is reused instead of loading another.
    ``nprobe`` overrides how many IVF lists a bank search visits (see :meth:`PhraseBank.set_search`);
    ``quantize`` (``"fp16"`` or ``"int8"``) converts the generative model for inference (see :meth:`GenerativeDecoder.quantize`);
    ``runtime="numpy"`` runs it with NumPy instead of torch, greedy decoding only (see :meth:`GenerativeDecoder.load`).
    ``with_encoder=False`` loads a generative decoder alone (its outputs are then not re-encoded; the returned
    encoder is None), for callers that only turn vectors into text.
    The hybrid takes the screen at ``screen_path``, or the shipped one when it was trained for the encoder in use
    (see :mod:`lightweight_decoder.screen`). A generative decoder with memory slots reads its memory from
    ``memory_bank`` when given (the hybrid passes its own bank when it is the one the generator names), else
    from the bank its config names.
    Returns ``(decoder, encoder)``.

    >>> decoder, encoder = load_decoder("phrase")   # doctest: +SKIP
    """
    from .paths import default_paths

    if not with_encoder and (kind != "generative" or encoder is not None or model is not None):
        raise ConfigError(f"with_encoder=False loads a generative decoder alone; the {kind} decoder needs its encoder"
                          if kind != "generative" else "with_encoder=False contradicts a given encoder or model")
    if runtime != "torch" and kind == "hybrid":
        raise ConfigError(f"runtime={runtime!r}: the hybrid uses its generator's beams, samples and scores, which need the torch runtime")
    if runtime != "torch" and kind == "phrase":
        logger.warning("runtime=%s has no effect on the phrase decoder (it applies to the generative model)", runtime)
    if screen_path is not None and kind != "hybrid":
        logger.warning("a screen has no effect on the %s decoder (the hybrid uses it to rank its edits)", kind)
    if kind == "hybrid":
        from .decoders.hybrid import HybridConfig, HybridDecoder

        phrase, encoder = load_decoder("phrase", bank_path=bank_path, top_k=top_k, model=model, encoder=encoder, nprobe=nprobe)
        try:
            shared = phrase.bank if _memory_bank_path(generative_path) == Path(bank_path or default_paths()["bank"]).resolve() else None
            generator, _ = load_decoder("generative", generative_path=generative_path, encoder=encoder, quantize=quantize, memory_bank=shared)
        except (ModelNotFound, IncompatibleArtifact) as exc:
            if generative_path is not None:  # asked for by path: it must load
                raise
            logger.warning("hybrid decoder without a generator: %s", exc)
            generator = None  # bank candidates and edits only
        config = HybridConfig.load(config_file) if config_file else HybridConfig()
        return HybridDecoder(phrase, generator, encoder, config, screen=load_screen(screen_path, encoder)), encoder
    if kind == "generative":
        from .decoders.generative import GenerativeDecoder
        from .config import GenerationConfig

        path = Path(generative_path) if generative_path else default_paths()["generative"]
        if (path / "decoder" / "config.json").exists() and not (path / "config.json").exists():
            path = path / "decoder"
        if not (path / "config.json").exists():
            raise ModelNotFound(f"no generative decoder at {path}; train one with `lightweight-decoder train` and pass --generative DIR")
        encoder = _artifact_encoder(path, model, encoder) if with_encoder else None
        decoder = GenerativeDecoder.load(path, encoder=encoder, quantize=quantize, memory_bank=memory_bank, runtime=runtime)
        gen = GenerationConfig.load(config_file) if config_file else decoder.generation_config
        decoder.generation_config = gen.replace(**({"num_beams": num_beams} if num_beams else {}))
        return decoder, encoder
    from .config import PhraseDecoderConfig
    from .decoders import PhraseBankDecoder
    from .phrasebank import PhraseBank

    if quantize is not None:
        logger.warning("quantize=%s has no effect on the phrase decoder (it applies to the generative model)", quantize)
    path = Path(bank_path) if bank_path else default_paths()["bank"]
    if not (path / "config.json").exists():
        raise ModelNotFound(f"no phrase bank at {path}; build one with `lightweight-decoder bank build`")
    encoder = _artifact_encoder(path, model, encoder)
    loaded = PhraseBank.load(path, encoder_name=encoder.name, dimension=encoder.dimension)
    loaded.set_search(nprobe=nprobe)
    config = PhraseDecoderConfig.load(config_file) if config_file else PhraseDecoderConfig()
    changes = {k: v for k, v in {"method": method, "top_k": top_k}.items() if v is not None}
    return PhraseBankDecoder(loaded, config.replace(**changes), encoder=encoder), encoder


def _memory_bank_path(generative_path: str | None) -> Path | None:
    """The bank folder a generative decoder's memory reads (resolved), or None (no memory, or no decoder there)."""
    from .decoders.generative import _decoder_folder
    from .memory import MemoryConfig
    from .paths import default_paths

    config = _decoder_folder(generative_path or default_paths()["generative"]) / "config.json"
    try:
        memory = json.loads(config.read_text()).get("memory")
        return MemoryConfig.from_dict(memory).bank_path().resolve() if memory else None
    except (OSError, ValueError):  # a missing or broken decoder is reported when it is loaded
        return None


def load_screen(path: str | None, encoder: Any) -> Any:
    """The screen at ``path`` (it must fit the encoder), else the shipped one if it fits, else None."""
    from .paths import default_paths
    from .screen import EmbeddingScreen

    if path is not None:
        if not (Path(path) / "config.json").exists():
            raise ModelNotFound(f"no embedding screen at {path}; train one with `lightweight-decoder screen train`")
        return EmbeddingScreen.load(path, encoder_name=encoder.name, dimension=encoder.dimension)
    shipped = default_paths()["screen"]
    if not (shipped / "config.json").exists():
        return None
    try:
        return EmbeddingScreen.load(shipped, encoder_name=encoder.name, dimension=encoder.dimension)
    except IncompatibleArtifact as exc:  # another encoder: the hybrid judges unscreened edits
        logger.info("hybrid decoder without a screen: %s", exc)
        return None


def read_vectors(source: str) -> np.ndarray:
    """Vectors from a .npy file, or JSON lines (a list, or an object with "embedding") from a file or '-'."""
    if source != "-" and source.endswith(".npy"):
        try:
            return np.load(source, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CorruptArtifact(f"{source}: not a readable .npy array ({exc})") from None
    from .data import iter_json_lines

    rows = []
    with contextlib.nullcontext(sys.stdin) if source == "-" else open(source, encoding="utf-8") as fh:  # never close stdin
        for lineno, obj in iter_json_lines(fh, source):
            vec = obj.get("embedding") if isinstance(obj, dict) else obj
            if not isinstance(vec, list):
                raise CorruptArtifact(f"{source}:{lineno}: expected a list of numbers or an object with 'embedding'")
            rows.append(vec)
    if not rows:
        raise InvalidInput(f"no vectors in {source}")
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise CorruptArtifact(f"{source}: vectors of different lengths {sorted(lengths)}")
    return np.asarray(rows, dtype=np.float32)
