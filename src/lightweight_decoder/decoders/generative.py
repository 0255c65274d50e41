"""Variant 2: a small transformer that writes the text an embedding encodes.

>>> decoder = GenerativeDecoder.load("models/default/generative", encoder=encoder)   # doctest: +SKIP
>>> decoder.decode(encoder.encode("The cat sat on the mat."))                        # doctest: +SKIP
'The cat sat on the mat.'
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _atomic
from ..artifacts import read_artifact_config
from ..checkpoint import read_weights
from ..config import QUANTIZATION_SCHEMES, RUNTIMES, WEIGHT_FORMATS, GenerationConfig, ModelConfig, check_weight_format
from ..errors import ConfigError, IncompatibleArtifact, InvalidInput
from ..lineage import share_repeated_runs, steps_in_all
from ..memory import MemoryConfig, Retriever
from ..phrasebank import as_query_matrix
from ..tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
from .base import Candidate, DecodeResult, TextDecoder, PerformanceMonitor

if TYPE_CHECKING:  # pragma: no cover
    from ..encoder import TextEncoder
    from ..model import PrefixLM
    from ..numpy_model import NumpyPrefixLM
    from ..phrasebank import PhraseBank

__all__ = ["GenerativeDecoder", "average_decoders", "create_generative_decoder", "set_generation_defaults"]

FORMAT_VERSION = 1


class GenerativeDecoder(TextDecoder):
    """Embedding -> text with a :class:`PrefixLM`. Attach an ``encoder`` to get cosine scores.

    ``model`` is a torch :class:`~lightweight_decoder.model.PrefixLM` (the ``torch`` runtime: every decoding
    strategy, scoring, training, saving) or the same weights in a
    :class:`~lightweight_decoder.numpy_model.NumpyPrefixLM` (the ``numpy`` runtime: greedy decoding only, without
    importing torch; see :meth:`load`). This module imports torch only when the torch runtime is used.

    A model with memory slots (``memory_len > 0``) reads candidate words that ``retriever`` finds in a phrase bank
    for each embedding (see :mod:`lightweight_decoder.memory`); without a retriever its slots stay empty.
    """

    def __init__(self, model: "PrefixLM | NumpyPrefixLM", tokenizer: Any, *, encoder_name: str, generation_config: GenerationConfig | None = None,
                 encoder: "TextEncoder | None" = None, metadata: dict | None = None, retriever: Retriever | None = None) -> None:
        if tokenizer.get_vocab_size() > model.config.vocab_size:
            raise IncompatibleArtifact(f"tokenizer has {tokenizer.get_vocab_size()} tokens; the model only {model.config.vocab_size}")
        if encoder is not None and (encoder.name != encoder_name or encoder.dimension != model.config.embedding_dim):
            raise IncompatibleArtifact(
                f"decoder was trained for {encoder_name} ({model.config.embedding_dim}-D); got {encoder.name} ({encoder.dimension}-D)"
            )
        from ..numpy_model import NumpyPrefixLM

        self.runtime = "numpy" if isinstance(model, NumpyPrefixLM) else "torch"
        self.model = model if self.runtime == "numpy" else model.eval()
        self.tokenizer = tokenizer
        self.encoder_name = encoder_name
        self.encoder = encoder
        self.generation_config = generation_config or GenerationConfig()
        self.metadata = dict(metadata or {})
        self.embedding_dim = model.config.embedding_dim
        self.num_parameters = model.num_parameters()  # kept: a quantized model no longer holds them as float parameters
        self.quantization: str | None = None
        self.monitor = PerformanceMonitor()
        if retriever is not None and not model.config.memory_len:
            raise IncompatibleArtifact("a memory retriever was given, but this model has no memory slots (memory_len 0)")
        self.retriever = retriever

    def __repr__(self) -> str:
        weights = f", {self.quantization} weights" if self.quantization else ""
        runtime = ", numpy runtime" if self.runtime == "numpy" else ""
        return f"GenerativeDecoder({self.encoder_name}, {self.num_parameters:,} parameters{weights}{runtime})"

    def _require_torch(self, what: str) -> None:
        if self.runtime != "torch":
            raise ConfigError(f"{what} needs the torch runtime; this decoder was loaded with runtime={self.runtime!r}")

    def quantize(self, scheme: str) -> "GenerativeDecoder":
        """Convert the model's linear layers (attention, MLP, prefix, output head) for inference, in place; returns self.

        Decoding one sentence is bound by reading the weights for every token (~21 MB in fp32, more than this
        CPU keeps in cache), so smaller weights decode faster. Embeddings and norms stay fp32.

        - ``fp16``: weights stored in half precision, computed in fp32; a sentence's text does not depend on
          its batch. ``bench/generative.py`` measures it on the shipped model (README, Measured: on 2026-12-06
          1.8x faster greedy at batch 1, and the fp32 model's exact text for 97-100% of dev sentences).
        - ``int8``: weights in int8, and each layer's input quantized per call with one scale for the whole
          batch (PyTorch's dynamic quantization). A little faster again, the same quality on average, but
          the text differs from fp32's for most sentences and depends on the batch it is decoded in.

        A converted decoder decodes but cannot be saved or trained: convert after loading.
        """
        import warnings

        import torch

        if scheme not in QUANTIZATION_SCHEMES:
            raise ConfigError(f"unknown quantization {scheme!r}; choose one of {list(QUANTIZATION_SCHEMES)}")
        self._require_torch(f"quantize={scheme!r}")
        if self.quantization is not None:
            raise ConfigError(f"this decoder is already quantized ({self.quantization})")
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():  # torch.ao's notice that this API is moving to torchao: nothing the user can act on
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            dtype = torch.float16 if scheme == "fp16" else torch.qint8
            self.model = quantize_dynamic(self.model, {torch.nn.Linear}, dtype=dtype, inplace=True).eval()
        self.quantization = scheme
        return self

    # ---- decoding -----------------------------------------------------------------------------

    def generate(self, vectors: np.ndarray, batch_size: int = 64, *, rescore: bool = True,
                 **generation_kwargs: Any) -> DecodeResult | list[DecodeResult]:
        """Decode with detail: text, token ids, cosine after re-encoding (NaN without an encoder), timings.

        ``generation_kwargs`` are :class:`GenerationConfig` fields (``num_beams``, ``do_sample``, ...).
        With an encoder attached, the outputs are re-encoded and ranked by cosine; ``rescore=False`` skips that
        (scores NaN, candidates in the model's order) for a caller that judges them itself, as the hybrid does.
        """
        cfg = self.generation_config.replace(**generation_kwargs) if generation_kwargs else self.generation_config
        start = time.perf_counter()
        queries, single = as_query_matrix(vectors, self.embedding_dim)
        hyps: list = []
        for i in range(0, len(queries), batch_size):
            hyps.extend(self._hypotheses(queries[i:i + batch_size], cfg))
        gen_ms = (time.perf_counter() - start) * 1000.0 / max(len(queries), 1)
        texts = [[self.tokenizer.decode(h.tokens).strip() for h in row] for row in hyps]
        scored = rescore and self.encoder is not None
        scores = self._cosines(queries, texts) if scored else [np.full(len(row), math.nan) for row in texts]
        results = []
        for row_hyps, row_texts, row_scores in zip(hyps, texts, scores):
            order = np.argsort(-row_scores, kind="stable") if scored else np.arange(len(row_texts))
            best = int(order[0])
            results.append(DecodeResult(
                text=row_texts[best], score=float(row_scores[best]), method="generative",
                candidates=[Candidate(row_texts[j], float(row_scores[j]), "generator") for j in order],
                timings={"generate_ms": gen_ms}, token_ids=row_hyps[best].tokens,
                details={"log_prob": row_hyps[best].score},
            ))
        total = time.perf_counter() - start
        for r in results:
            r.timings["total_ms"] = total * 1000.0 / len(results)
        self.monitor.record(total, n=len(results))
        return results[0] if single else results

    def _hypotheses(self, queries: np.ndarray, cfg: GenerationConfig) -> list:
        """Per row of ``queries`` (normalised, float32), the runtime's hypotheses, best first."""
        if self.runtime == "numpy":
            from ..numpy_model import greedy_generate

            return greedy_generate(self.model, queries, cfg)
        import torch

        from ..generation import generate

        with torch.inference_mode():
            return generate(self.model, torch.from_numpy(queries), cfg, self._memory(queries))

    def log_likelihood(self, texts: list[str], vectors: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """How likely the model finds each text given an embedding: the mean log-probability of its tokens (end of
        text included, nats per token), float32 ``[N]``. ``vectors`` is one embedding ``[D]`` for every text, or one
        per text ``[N, D]``. The hybrid decoder adds it to the cosine when it judges candidates, to prefer fluent
        texts among those that embed close to the target."""
        sums, counts = self.sequence_log_probs(texts, vectors, batch_size)
        return (sums / counts).astype(np.float32)  # every text has at least its end-of-text token

    def sequence_log_probs(self, texts: list[str], vectors: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Per text, the summed log-probability (nats) of its tokens given its embedding, float64 ``[N]``, and how
        many tokens that is, int64 ``[N]`` (the end-of-text token counts; a text longer than the model's
        ``max_len`` is cut as in training). ``vectors`` as in :meth:`log_likelihood`. Sums and counts rather than
        means, so that a corpus's likelihood can weigh every token alike (:func:`~lightweight_decoder.quality.likelihood`).
        """
        self._require_torch("scoring texts")
        import torch

        from ..train import _tokenize, teacher_forcing

        query, single = as_query_matrix(vectors, self.embedding_dim)
        if isinstance(texts, str) or not all(isinstance(t, str) and t.strip() for t in texts):
            raise InvalidInput("expected a list of non-empty texts to score")
        if not single and len(query) != len(texts):
            raise InvalidInput(f"{len(texts)} texts but {len(query)} vectors: give one vector, or one per text")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        sums, counts = np.zeros(len(texts)), np.zeros(len(texts), dtype=np.int64)
        if not texts:
            return sums, counts
        mc = self.model.config
        memory = self._memory(query)
        for start in range(0, len(texts), batch_size):
            rows = slice(start, start + batch_size)
            inputs, targets = teacher_forcing(_tokenize(self.tokenizer, texts[rows], mc.max_len, mc.eos_id), mc.pad_id, mc.bos_id)
            cond = torch.from_numpy(query).expand(len(inputs), -1) if single else torch.from_numpy(query[rows])
            mem = None if memory is None else (memory.expand(len(inputs), -1) if single else memory[rows])
            with torch.inference_mode():
                logits, _ = self.model(cond, inputs, memory=mem)
                mask = targets != mc.pad_id
                picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None])[..., 0]
                sums[rows] = (picked * mask).sum(1).double().numpy()
                counts[rows] = mask.sum(1).numpy()
        return sums, counts

    def _memory(self, queries: np.ndarray):
        """The retrieved memory rows (B, memory_len) for ``queries``, or None (no memory slots, or no retriever)."""
        import torch

        if self.retriever is None:
            return None
        return torch.from_numpy(self.retriever(queries))

    def _cosines(self, queries: np.ndarray, texts: list[list[str]]) -> list[np.ndarray]:
        from ..quality import output_cosines

        lengths = [len(row) for row in texts]
        flat = [t for row in texts for t in row]
        sims = output_cosines(self.encoder, flat, queries[np.repeat(np.arange(len(texts)), lengths)])
        return np.split(sims, np.cumsum(lengths)[:-1])

    def health(self) -> dict[str, Any]:
        memory = None if self.retriever is None else {"bank": self.retriever.config.bank, "entries": len(self.retriever.bank),
                                                      "neighbours": self.retriever.config.neighbours, "slots": self.retriever.length}
        return {"status": "ok", "decoder": "generative", "encoder": self.encoder_name, "dimension": self.embedding_dim,
                "parameters": self.num_parameters, "runtime": self.runtime, "quantization": self.quantization, "memory": memory, **self.monitor.stats()}

    # ---- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, weights: str = "fp32") -> None:
        """Write config.json, model.safetensors and tokenizer.json as one folder, atomically. Saving over an existing
        decoder folder keeps its other files (a card, a training log).

        ``weights="fp16"`` stores the float weights in half precision: half the size on disk (and in a git
        history that keeps every shipped model). They load as fp32 again, rounded; ``bench/weight_storage.py``
        found the shipped model's text unchanged for 98% of wikipedia_dev and 100% of dialogue_dev sentences.
        This decoder keeps its fp32 weights; training checkpoints are always fp32.
        """
        import copy

        from safetensors.torch import save_model

        self._require_torch("saving")
        if self.quantization is not None:
            raise ConfigError(f"a decoder quantized for inference ({self.quantization}) cannot be saved; save the float model it was loaded from")
        check_weight_format(weights)
        model = self.model if weights == "fp32" else copy.deepcopy(self.model).half()  # a copy: this decoder keeps fp32
        if self.model.config.memory_len and self.retriever is None:
            raise ConfigError("a decoder with memory slots is saved with the retriever that fills them (it names the bank)")
        with _atomic.atomic_dir(path, owned={"model.safetensors", "tokenizer.json", "config.json"}) as tmp:
            save_model(model, str(tmp / "model.safetensors"))
            save_tokenizer(self.tokenizer, tmp / "tokenizer.json")
            _atomic.write_json(tmp / "config.json", {
                "type": "generative_decoder", "format_version": FORMAT_VERSION,
                "encoder": self.encoder_name, "dimension": self.embedding_dim,
                "parameters": self.num_parameters, "weights": weights,
                "model": self.model.config.to_dict(), "generation": self.generation_config.to_dict(),
                **({"memory": self.retriever.config.to_dict()} if self.retriever is not None else {}),
                "metadata": self.metadata,
            })

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, encoder: "TextEncoder | None" = None, quantize: str | None = None,
             memory_bank: "PhraseBank | None" = None, runtime: str = "torch") -> "GenerativeDecoder":
        """Load a decoder folder (or a training folder's ``decoder/``); with ``encoder``, its name and dimension must match.

        ``quantize`` (``"fp16"`` or ``"int8"``) converts it for inference after loading: see :meth:`quantize`.
        ``runtime="numpy"`` computes with NumPy instead of torch (:mod:`lightweight_decoder.numpy_model`): greedy
        decoding only, no quantization, no memory slots; torch is never imported. ``bench/generative.py``
        measures its speed, memory and how often its text equals the torch runtime's.
        A decoder with memory slots loads the phrase bank its config names (``memory.bank``), or reads from
        ``memory_bank`` (an already loaded bank, e.g. the hybrid's) instead.
        """
        path = _decoder_folder(path)
        meta = read_artifact_config(path, "generative_decoder", FORMAT_VERSION, "generative decoder")
        weights = meta.get("weights", "fp32")  # folders written before the field existed hold fp32
        if weights not in WEIGHT_FORMATS:
            raise IncompatibleArtifact(f"{path / 'config.json'}: unknown weight format {weights!r} (this version reads {list(WEIGHT_FORMATS)})")
        if runtime not in RUNTIMES:
            raise ConfigError(f"unknown runtime {runtime!r}; choose one of {list(RUNTIMES)}")
        if runtime == "numpy" and quantize is not None:
            raise ConfigError(f"quantize={quantize!r} applies to the torch runtime; the numpy runtime computes in fp32")
        config = ModelConfig.from_dict(meta["model"])
        if runtime == "numpy":
            from ..numpy_model import NumpyPrefixLM

            model = NumpyPrefixLM.load(config, path / "model.safetensors")
        else:
            from ..model import PrefixLM

            model = PrefixLM(config)
            read_weights(model, path / "model.safetensors")  # fp16 tensors are cast into the fp32 model
        tokenizer = load_tokenizer(path / "tokenizer.json")
        retriever = None
        if model.config.memory_len:
            if "memory" not in meta:
                raise IncompatibleArtifact(f"{path / 'config.json'}: the model has memory slots but no 'memory' entry names their bank")
            retriever = Retriever.load(MemoryConfig.from_dict(meta["memory"]), tokenizer, length=model.config.memory_len,
                                       pad_id=model.config.pad_id, encoder_name=meta["encoder"], dimension=model.config.embedding_dim,
                                       bank=memory_bank)
        decoder = cls(model, tokenizer, encoder_name=meta["encoder"], encoder=encoder, retriever=retriever,
                      generation_config=GenerationConfig.from_dict(meta.get("generation", {})), metadata=meta.get("metadata"))
        return decoder if quantize is None else decoder.quantize(quantize)


def _decoder_folder(path: str | os.PathLike[str]) -> Path:
    """A decoder folder, or a training folder's ``decoder/`` (its latest saved decoder)."""
    path = Path(path)
    if not (path / "config.json").exists() and (path / "decoder" / "config.json").exists():
        return path / "decoder"
    return path


def set_generation_defaults(path: str | os.PathLike[str], **fields: Any) -> GenerationConfig:
    """Change the generation settings a decoder folder (or a training folder's decoder) decodes with when a
    call names none; returns them.

    ``fields`` are :class:`GenerationConfig` fields (unknown or invalid ones raise ConfigError). Only
    config.json's ``generation`` entry changes, atomically: the weights, tokenizer and any card stay as
    they are. With no fields, this returns the current settings.
    """
    path = _decoder_folder(path)
    meta = read_artifact_config(path, "generative_decoder", FORMAT_VERSION, "generative decoder")
    config = GenerationConfig.from_dict(meta.get("generation", {}))
    if fields:
        config = config.replace(**fields)
        _atomic.write_json(path / "config.json", {**meta, "generation": config.to_dict()})
    return config


def average_decoders(sources: "list[str | os.PathLike[str] | GenerativeDecoder]",
                     weights: "list[float] | None" = None) -> GenerativeDecoder:
    """A decoder whose every parameter is the weighted mean of the ``sources``' (folders or loaded decoders).

    Models that share their training history (one continued from the other with ``train --init``, or both from
    one model) can average into a model better than either ("model soups", Wortsman et al. 2022): the README
    measures the mean of the shipped generator's last two runs against each. Models trained from different
    initialisations are not expected to: their hidden units need not line up.

    The sources must be float decoders of the torch runtime with the same encoder, model config, tokenizer and
    memory settings, or this raises :class:`IncompatibleArtifact` naming the difference. ``weights`` (default:
    equal) must be finite, non-negative and not all zero; they are normalised to sum to 1. The result decodes
    with the first source's generation defaults, and its ``metadata["averaged_from"]`` records each source's
    path (when given as a folder), weight and metadata; a source's record that another source's history repeats
    (a mean of a model and its continuation) is written once (:func:`~lightweight_decoder.lineage.share_repeated_runs`).
    """
    import copy

    import torch

    if len(sources) < 2:
        raise InvalidInput(f"averaging needs at least two decoders, got {len(sources)}")
    if weights is None:
        weights = [1.0] * len(sources)
    if len(weights) != len(sources):
        raise InvalidInput(f"{len(weights)} weights for {len(sources)} decoders: give one per decoder, or none")
    try:
        values = [float(w) for w in weights]
    except (TypeError, ValueError):
        values = [math.nan]
    if not all(math.isfinite(w) and w >= 0 for w in values) or sum(values) <= 0:
        raise InvalidInput(f"weights must be finite, non-negative and not all zero, got {list(weights)}")
    shares = [w / sum(values) for w in values]
    paths = [None if isinstance(source, GenerativeDecoder) else str(source) for source in sources]  # None: given loaded
    decoders = [source if path is None else GenerativeDecoder.load(path) for source, path in zip(sources, paths)]
    names = [path or f"decoder {i + 1}" for i, path in enumerate(paths)]
    first = decoders[0]
    for name, decoder in zip(names, decoders):
        decoder._require_torch(f"averaging ({name})")
        if decoder.quantization is not None:
            raise ConfigError(f"{name} is quantized ({decoder.quantization}); average the float decoders it was loaded from")
    for name, decoder in zip(names[1:], decoders[1:]):
        if (decoder.encoder_name, decoder.embedding_dim) != (first.encoder_name, first.embedding_dim):
            raise IncompatibleArtifact(f"{name} is for {decoder.encoder_name} ({decoder.embedding_dim}-D), "
                                       f"{names[0]} for {first.encoder_name} ({first.embedding_dim}-D)")
        ours, theirs = first.model.config.to_dict(), decoder.model.config.to_dict()
        differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        if differ:
            raise IncompatibleArtifact(f"{name} and {names[0]} differ in model config: "
                                       + ", ".join(f"{k} {theirs.get(k)!r} against {ours.get(k)!r}" for k in differ))
        if decoder.tokenizer.to_str() != first.tokenizer.to_str():
            raise IncompatibleArtifact(f"{name} has another tokenizer than {names[0]}: token ids would mean different words")
        memory = [d.retriever.config.to_dict() if d.retriever is not None else None for d in (first, decoder)]
        if memory[0] != memory[1]:
            raise IncompatibleArtifact(f"{name} reads its memory slots with other settings than {names[0]}: {memory[1]} against {memory[0]}")
    states = [decoder.model.state_dict() for decoder in decoders]
    averaged = {}
    for key, tensor in states[0].items():
        if tensor.is_floating_point():
            averaged[key] = sum(share * state[key].double() for share, state in zip(shares, states)).to(tensor.dtype)
        elif not all(torch.equal(state[key], tensor) for state in states[1:]):
            raise IncompatibleArtifact(f"the decoders' {key!r} (not a weight, so it cannot be averaged) differ")
        else:
            averaged[key] = tensor.clone()
    model = copy.deepcopy(first.model)
    model.load_state_dict(averaged)
    metadata = {"averaged_from": [{**decoder.metadata, **({"path": path} if path is not None else {}), "weight": share}
                                  for path, share, decoder in zip(paths, shares, decoders)]}
    steps = [steps_in_all(d.metadata) for d in decoders]
    if None not in steps:
        metadata["cumulative_steps"] = max(steps)  # the longest history that went into the mean, for a later --init to count on
    metadata = share_repeated_runs(metadata)  # a source's history repeated inside another's is written once (see lineage)
    return GenerativeDecoder(model, first.tokenizer, encoder_name=first.encoder_name, generation_config=first.generation_config,
                             metadata=metadata, retriever=first.retriever)


def create_generative_decoder(preset: str = "small", embedding_dim: int = 768, *, encoder_name: str = "all-mpnet-base-v2",
                              texts: list[str] | None = None, tokenizer: Any = None, seed: int = 0, **overrides: Any) -> GenerativeDecoder:
    """An untrained decoder of a preset size. Give ``texts`` to train its tokenizer, or a ``tokenizer``.

    >>> dec = create_generative_decoder("tiny", embedding_dim=384, texts=["a b c"] * 10)  # doctest: +SKIP
    """
    import torch

    from ..model import PrefixLM

    cfg = ModelConfig.preset(preset, embedding_dim=embedding_dim, **overrides)
    if tokenizer is None:
        if not texts:
            raise InvalidInput("create_generative_decoder needs texts to train a tokenizer, or a tokenizer")
        tokenizer = train_tokenizer(texts, vocab_size=cfg.vocab_size)
    torch.manual_seed(seed)
    return GenerativeDecoder(PrefixLM(cfg), tokenizer, encoder_name=encoder_name)
