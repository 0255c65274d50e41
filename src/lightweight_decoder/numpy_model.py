"""The generative decoder's transformer and greedy decoding in NumPy alone: the ``numpy`` runtime.

:class:`NumpyPrefixLM` computes what :class:`~lightweight_decoder.model.PrefixLM` computes at inference (the
prefix MLP, ``cond_inject``, ``cond_adaln``, RMSNorm, rotary attention with a KV cache, SwiGLU, the tied output
layer) from the same ``model.safetensors``, in fp32, without importing torch. Two things make that worth a
second implementation of the forward pass:

- **memory**: importing torch alone takes ~220 MB of resident memory here; a process that only turns vectors
  into text with this module holds NumPy, the tokenizer and the weights.
- **latency at batch 1**: decoding one sentence runs ~40 small operations per token, and eager torch spends
  several microseconds of dispatch on each, more than the arithmetic of a 256-wide layer. NumPy's per-call cost
  is lower.

``bench/generative.py`` measures both, and how often the text equals the torch model's (float rounding differs
between the two, so a near tie between two tokens can go the other way).

Only greedy decoding (the shipped setting), with ``repetition_penalty``, ``no_repeat_ngram_size`` and
``max_new_tokens``; beams and sampling, scoring texts (the hybrid's judge), training and models with memory
slots need the torch runtime.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from .config import GenerationConfig, ModelConfig
from .decoding import Hypothesis, block_repeated_ngrams, extend_histories
from .errors import ConfigError, CorruptArtifact, IncompatibleArtifact

__all__ = ["NumpyPrefixLM", "NumpyCache", "greedy_generate"]

_EPS = 1e-6  # RMSNorm's, as in model.RMSNorm


class NumpyCache:
    """Keys and values of every layer, (n_layer, B, H, capacity, head_dim), filled at positions ``[0, length)``."""

    def __init__(self, keys: np.ndarray, values: np.ndarray, length: int) -> None:
        self.keys, self.values, self.length = keys, values, length

    def select(self, rows: np.ndarray) -> "NumpyCache":
        """Keep ``rows`` (in that order): row i becomes old row ``rows[i]``. Returns this cache, changed."""
        self.keys, self.values = self.keys[:, rows], self.values[:, rows]
        return self


class NumpyPrefixLM:
    """A :class:`~lightweight_decoder.model.PrefixLM`'s inference from its tensors (names as in its state dict)."""

    def __init__(self, config: ModelConfig, tensors: dict[str, np.ndarray]) -> None:
        if config.memory_len:
            raise IncompatibleArtifact(f"the numpy runtime does not read memory slots (this model has memory_len {config.memory_len}); "
                                       "load it with the torch runtime")
        self.config = config
        C, E, L, V = config.d_model, config.embedding_dim, config.n_layer, config.vocab_size
        if "tok_emb.weight" not in tensors and "lm_head.weight" in tensors:  # tied: safetensors keeps one name
            tensors = {**tensors, "tok_emb.weight": tensors["lm_head.weight"]}
        expected = {"tok_emb.weight": (V, C), "norm.weight": (C,), "bow_bias": (V,),
                    "prefix.net.0.weight": (config.prefix_hidden, E), "prefix.net.0.bias": (config.prefix_hidden,),
                    "prefix.net.2.weight": (config.prefix_len * C, config.prefix_hidden), "prefix.net.2.bias": (config.prefix_len * C,)}
        if config.cond_inject:
            expected["cond_proj.weight"] = (C, E)
        if config.cond_adaln:
            expected.update({"adaln.0.weight": (C, E), "adaln.0.bias": (C,), "adaln.2.weight": (L * 4 * C, C), "adaln.2.bias": (L * 4 * C,)})
        for i in range(L):
            expected.update({f"blocks.{i}.norm1.weight": (C,), f"blocks.{i}.attn.qkv.weight": (3 * C, C), f"blocks.{i}.attn.proj.weight": (C, C),
                             f"blocks.{i}.norm2.weight": (C,), f"blocks.{i}.mlp.gate.weight": (config.d_ff, C),
                             f"blocks.{i}.mlp.up.weight": (config.d_ff, C), f"blocks.{i}.mlp.proj.weight": (C, config.d_ff)})
        for name, shape in expected.items():
            if name not in tensors:
                raise CorruptArtifact(f"model weights lack {name!r}")
            if tuple(tensors[name].shape) != shape:
                raise CorruptArtifact(f"model weight {name!r} has shape {tuple(tensors[name].shape)}, the config says {shape}")
        w = {name: np.asarray(tensors[name], dtype=np.float32) for name in expected}
        # the number of parameters as torch counts them: the tied output layer once
        self._num_parameters = sum(w[name].size for name in expected)

        def t(name: str) -> np.ndarray:  # x @ W.T as x @ (a contiguous W.T)
            return np.ascontiguousarray(w[name].T)

        # the tied matrix is kept once, laid out for the output layer's product (the hot one at every step);
        # a token's input embedding is a column of it
        self.head = t("tok_emb.weight")
        self.norm = w["norm.weight"]
        self.prefix = (t("prefix.net.0.weight"), w["prefix.net.0.bias"], t("prefix.net.2.weight"), w["prefix.net.2.bias"])
        self.cond_proj = t("cond_proj.weight") if config.cond_inject else None
        self.adaln = (t("adaln.0.weight"), w["adaln.0.bias"], t("adaln.2.weight"), w["adaln.2.bias"]) if config.cond_adaln else None
        # per block: norm1, qkv, attention output, norm2, gate and up side by side (one product), MLP output
        self.blocks = [(w[f"{b}.norm1.weight"], t(f"{b}.attn.qkv.weight"), t(f"{b}.attn.proj.weight"), w[f"{b}.norm2.weight"],
                        np.ascontiguousarray(np.concatenate([w[f"{b}.mlp.gate.weight"], w[f"{b}.mlp.up.weight"]]).T),
                        t(f"{b}.mlp.proj.weight")) for b in (f"blocks.{i}" for i in range(L))]
        self.cos, self.sin = _rotary_tables(config.context_len + config.max_len + 1, C // config.n_head, config.rope_base)

    @classmethod
    def load(cls, config: ModelConfig, path: str | os.PathLike[str]) -> "NumpyPrefixLM":
        """Read ``model.safetensors`` (fp32 or fp16 tensors; computed in fp32)."""
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(path))
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own types for a damaged file
            raise CorruptArtifact(f"{path}: not a readable safetensors file ({exc})") from None
        try:
            return cls(config, tensors)
        except CorruptArtifact as exc:
            raise CorruptArtifact(f"{path}: {exc}") from None

    def num_parameters(self) -> int:
        return self._num_parameters

    # ---- the forward pass -----------------------------------------------------------------------
    def conditioning(self, cond: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Per-row state besides the cache: ``cond_inject``'s addition to every text token (B, C) and
        ``cond_adaln``'s scales and shifts (n_layer, B, 4, C); None where the model has neither."""
        scaled = cond * np.float32(math.sqrt(cond.shape[-1]))  # unit-norm embeddings -> unit variance, as in training
        inject = scaled @ self.cond_proj if self.cond_proj is not None else None
        mods = None
        if self.adaln is not None:
            w1, b1, w2, b2 = self.adaln
            mods = (_silu(scaled @ w1 + b1) @ w2 + b2).reshape(len(cond), self.config.n_layer, 4, self.config.d_model).transpose(1, 0, 2, 3)
        return inject, mods

    def start(self, cond: np.ndarray, state: tuple[np.ndarray | None, np.ndarray | None], steps: int) -> tuple[np.ndarray, NumpyCache]:
        """Run the prefix and BOS for embeddings ``cond`` (B, E); return the first text token's logits (B, V) and a
        cache with room for ``steps`` more tokens."""
        mc = self.config
        inject, mods = state
        w1, b1, w2, b2 = self.prefix
        B, C, H = len(cond), mc.d_model, mc.n_head
        prefix = (_gelu(cond * np.float32(math.sqrt(cond.shape[-1])) @ w1 + b1) @ w2 + b2).reshape(B, mc.prefix_len, C)
        bos_emb = self.head[:, mc.bos_id]
        bos = np.broadcast_to(bos_emb, (B, C)) if inject is None else bos_emb + inject
        x = np.concatenate([prefix, bos[:, None]], axis=1)  # (B, P+1, C)
        T, hd = x.shape[1], C // H
        cache = NumpyCache(np.zeros((mc.n_layer, B, H, T + steps, hd), np.float32), np.zeros((mc.n_layer, B, H, T + steps, hd), np.float32), T)
        causal = np.triu(np.full((T, T), -np.inf, np.float32), 1)
        cos, sin = self.cos[:T], self.sin[:T]
        for i, (norm1, qkv_w, proj, norm2, gate_up, down) in enumerate(self.blocks):
            h = _modulate(_rms(x, norm1), mods, i, 0)
            q, k, v = (h @ qkv_w).reshape(B, T, 3, H, hd).transpose(2, 0, 3, 1, 4)  # each (B, H, T, hd)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
            cache.keys[i, :, :, :T], cache.values[i, :, :, :T] = k, v
            y = _softmax(q @ k.swapaxes(-1, -2) * np.float32(1 / math.sqrt(hd)) + causal) @ v  # (B, H, T, hd)
            x = x + y.transpose(0, 2, 1, 3).reshape(B, T, C) @ proj
            x = x + _swiglu(_modulate(_rms(x, norm2), mods, i, 2), gate_up, down)
        return _rms(x[:, -1], self.norm) @ self.head, cache

    def step(self, tokens: np.ndarray, cache: NumpyCache, state: tuple[np.ndarray | None, np.ndarray | None]) -> np.ndarray:
        """Feed one token per row at the cache's next position; return the next logits (B, V). The cache gains it."""
        mc = self.config
        inject, mods = state
        position = cache.length
        if position >= cache.keys.shape[3]:
            raise ValueError(f"the cache has room for {cache.keys.shape[3]} positions")
        B, C, H = len(tokens), mc.d_model, mc.n_head
        hd = C // H
        x = self.head[:, tokens].T  # (B, C): the tokens' input embeddings
        if inject is not None:
            x = x + inject
        cos, sin = self.cos[position], self.sin[position]
        for i, (norm1, qkv_w, proj, norm2, gate_up, down) in enumerate(self.blocks):
            h = _modulate(_rms(x, norm1), mods, i, 0)
            qkv = h @ qkv_w
            qk = _rotate(qkv[:, :2 * C].reshape(B, 2 * H, hd), cos, sin)  # q and k in one go
            keys, values = cache.keys[i], cache.values[i]
            keys[:, :, position], values[:, :, position] = qk[:, H:], qkv[:, 2 * C:].reshape(B, H, hd)
            scores = (qk[:, :H, None] @ keys[:, :, :position + 1].swapaxes(-1, -2)) * np.float32(1 / math.sqrt(hd))  # (B, H, 1, T)
            y = _softmax(scores) @ values[:, :, :position + 1]  # (B, H, 1, hd)
            x = x + y.reshape(B, C) @ proj
            x = x + _swiglu(_modulate(_rms(x, norm2), mods, i, 2), gate_up, down)
        cache.length = position + 1
        return _rms(x, self.norm) @ self.head


def greedy_generate(model: NumpyPrefixLM, cond: np.ndarray, config: GenerationConfig | None = None) -> list[list[Hypothesis]]:
    """Greedy decoding for embeddings ``cond`` (B, E) float32: per row one :class:`Hypothesis`, as
    :func:`lightweight_decoder.generation.generate` returns for ``num_beams=1, do_sample=False``."""
    cfg = config or GenerationConfig()
    cfg.validate()
    if cfg.num_beams != 1 or cfg.do_sample:
        raise ConfigError(f"the numpy runtime decodes greedily; num_beams={cfg.num_beams}, do_sample={cfg.do_sample} "
                          "need the torch runtime")
    for setting in cfg.ignored_settings():
        warnings.warn(f"generation setting {setting} has no effect with greedy decoding", UserWarning, stacklevel=2)
    mc = model.config
    cond = np.ascontiguousarray(cond, dtype=np.float32)
    N = len(cond)
    steps = min(cfg.max_new_tokens, mc.max_len)
    inject, mods = model.conditioning(cond)
    logits, cache = model.start(cond, (inject, mods), steps)
    histories: list[list[int]] = [[] for _ in range(N)]
    scores = np.zeros(N)
    active = np.arange(N)  # rows still generating: logits, cache and state hold only these
    seen = np.full((N, steps), mc.pad_id, dtype=np.int64) if cfg.repetition_penalty != 1.0 else None
    for step in range(steps):
        logits[:, [mc.pad_id, mc.bos_id]] = -np.inf
        if seen is not None and step:
            # CTRL's penalty, as in generation._penalise: a token written twice is penalised once
            values = np.take_along_axis(logits, seen[:, :step], axis=1)
            np.put_along_axis(logits, seen[:, :step], np.where(values > 0, values / cfg.repetition_penalty, values * cfg.repetition_penalty), axis=1)
        if cfg.no_repeat_ngram_size > 0:  # (the list of histories is built only when needed)
            block_repeated_ngrams(logits, [histories[row] for row in active], cfg.no_repeat_ngram_size)
        token = logits.argmax(-1)
        top = logits.max(-1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(-1))
        scores[active] += logits[np.arange(len(token)), token] - log_norm  # the token's log-probability
        ended = token == mc.eos_id
        if seen is not None:
            seen[:, step] = token
        extend_histories(histories, active.tolist(), token.tolist(), ended.tolist())
        if ended.all() or step == steps - 1:
            break
        if ended.any():
            keep = np.nonzero(~ended)[0]
            active, token = active[keep], token[keep]
            cache = cache.select(keep)
            inject = None if inject is None else inject[keep]
            mods = None if mods is None else mods[:, keep]
            seen = None if seen is None else seen[keep]
        logits = model.step(token, cache, (inject, mods))
    return [[Hypothesis(h, float(s))] for h, s in zip(histories, scores)]


# ---- the layers' arithmetic ---------------------------------------------------------------------
def _rotary_tables(length: int, head_dim: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """As model.rotary_tables: every angle's cosine twice, and its sine negated at even places."""
    inv_freq = (1.0 / (np.float32(base) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)))).astype(np.float32)
    angles = np.outer(np.arange(length, dtype=np.float32), inv_freq)
    sin = (np.sin(angles)[..., None] * np.array([-1.0, 1.0], np.float32)).reshape(length, head_dim)
    return np.repeat(np.cos(angles), 2, axis=-1), sin


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Turn the pairs (even, odd) of x's last axis: ``x * cos + swapped(x) * sin`` (see model.apply_rotary)."""
    swapped = x.reshape(*x.shape[:-1], -1, 2)[..., ::-1].reshape(x.shape)
    return x * cos + swapped * sin


def _rms(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return weight * x / np.sqrt((x * x).sum(-1, keepdims=True) / np.float32(x.shape[-1]) + np.float32(_EPS))


def _modulate(h: np.ndarray, mods: np.ndarray | None, layer: int, first: int) -> np.ndarray:
    """Adaptive norm: ``h * (1 + scale) + shift`` with the layer's pair starting at ``first`` (0 attention, 2 MLP)."""
    if mods is None:
        return h
    scale, shift = mods[layer, :, first], mods[layer, :, first + 1]  # (B, C)
    if h.ndim == 3:
        scale, shift = scale[:, None], shift[:, None]
    return h * (1 + scale) + shift


def _swiglu(h: np.ndarray, gate_up: np.ndarray, down: np.ndarray) -> np.ndarray:
    both = h @ gate_up
    half = both.shape[-1] // 2
    return (_silu(both[..., :half]) * both[..., half:]) @ down


def _silu(x: np.ndarray) -> np.ndarray:
    return x * (0.5 + 0.5 * np.tanh(0.5 * x))  # sigmoid(x) written with tanh: no overflow for large |x|


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _gelu(x: np.ndarray) -> np.ndarray:
    """torch's exact GELU, x * Phi(x), with erf from Abramowitz and Stegun 7.1.26 (error < 1.5e-7, below fp32's
    resolution of Phi near 1), since NumPy has no erf."""
    z = np.abs(x) * np.float32(1 / math.sqrt(2))
    t = 1 / (1 + np.float32(0.3275911) * z)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (np.float32(1.421413741)
                + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    erf = np.sign(x) * (1 - poly * np.exp(-z * z))
    return (0.5 * x * (1 + erf)).astype(np.float32)
