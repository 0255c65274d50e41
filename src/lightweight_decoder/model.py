"""The generative decoder's transformer, in nanoGPT order: config -> small modules -> model -> forward.

A decoder-only transformer (RMSNorm, SwiGLU, rotary positions, tied input/output embeddings) that reads
a sentence embedding through a learned prefix: an MLP maps the embedding to ``prefix_len`` vectors that
sit before the text tokens. With ``cond_inject`` a linear map of the embedding is also added to every text
token's input (Optimus's "embedding" injection beside the prefix "memory"), a direct path the model can
use from the first steps. With ``cond_adaln`` the embedding also scales and shifts the normalised input of
every attention and MLP sublayer (adaptive layer norm, as in DiT's adaLN), so each layer is conditioned
directly rather than only through what attention reads from the prefix. An auxiliary head predicts the sentence's bag of tokens from the prefix, which
makes the prefix carry the content (the language model alone can lower its loss while ignoring it). With
``memory_len > 0`` the model also reads ``memory_len`` token ids before the prefix: candidate words retrieved
for the embedding (see :mod:`lightweight_decoder.memory`), marked by a learned type vector. Before, not after:
rotary positions are relative, so the prefix stays as near the text as in a model trained without memory, and
such a model (``train --init``) gains the slots without its learned prefix-to-text attention moving. Attention
alone did not learn to copy from them (600 steps from the shipped model: held-out NLL the same with the memory
emptied), so a copy gate adds ``gate(h)`` to the logit of every token the memory holds, as a pointer-generator
adds a copy distribution: the model decides per position how much to trust the memory. Zero-initialised.

>>> cfg = ModelConfig.preset("tiny", embedding_dim=384)
>>> model = PrefixLM(cfg)
>>> model.num_parameters() <= 1_000_000
True
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import PRESETS, ModelConfig

__all__ = ["ModelConfig", "PrefixLM", "KVCache", "PRESETS", "grown_state_dict"]

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # sum / C rather than mean(): the same value, but on a (1, 256) row (decoding one sentence) mean() took
        # 11 us here against 4.6 for sum(), as long as the other four operations together
        mean_square = x.pow(2).sum(-1, keepdim=True).div_(x.shape[-1]).add_(self.eps)
        return self.weight * x * torch.rsqrt(mean_square)


def rotary_tables(length: int, head_dim: int, base: float, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables (length, head_dim): every angle's cosine twice, and its sine signed for :func:`apply_rotary`.

    Pair i of a head, (x[2i], x[2i+1]), turns by angle_i: it becomes (x[2i] cos - x[2i+1] sin, x[2i+1] cos + x[2i] sin),
    which is ``x * cos + swapped(x) * sin`` with the sine negated at even places.
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    sign = torch.tensor([-1.0, 1.0], device=device)
    return angles.cos().repeat_interleave(2, dim=-1), (angles.sin()[..., None] * sign).flatten(-2)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (even, odd) of x's last dimension by position-dependent angles; cos and sin from
    :func:`rotary_tables`, broadcasting over x (..., head_dim)."""
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return x * cos.to(x.dtype) + swapped * sin.to(x.dtype)


class KVCache:
    """Keys and values of every layer for incremental decoding, allocated once and filled at positions
    ``[0, length)``. Stored position-major, (capacity, n_layer, B, H, head_dim), so that the filled part is one
    contiguous block: :meth:`select` then moves it in a single gather into a spare buffer (beams reorder their
    rows at every step), and :meth:`PrefixLM.step` writes a position in place, so nothing grows per step.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        self.keys, self.values, self.length = keys, values, length
        self._spare: dict[str, torch.Tensor] = {}

    @classmethod
    def empty(cls, n_layer: int, rows: int, n_head: int, capacity: int, head_dim: int, dtype: torch.dtype) -> "KVCache":
        shape = (capacity, n_layer, rows, n_head, head_dim)
        return cls(torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype), 0)

    @property
    def capacity(self) -> int:
        return self.keys.shape[0]

    def __len__(self) -> int:  # rows
        return self.keys.shape[2]

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views of layer ``i``'s keys and values as (B, H, capacity, head_dim), the layout attention reads."""
        return self.keys[:, i].permute(1, 2, 0, 3), self.values[:, i].permute(1, 2, 0, 3)

    def select(self, rows: torch.Tensor) -> "KVCache":
        """Keep ``rows`` (int64 (N,), in that order, repeats allowed): row i becomes old row ``rows[i]``. Only the
        filled positions are copied, once. Returns this cache, changed."""
        t = self.length
        for name in ("keys", "values"):
            source = getattr(self, name)
            target = self._spare.get(name)
            if target is None or target.shape[2] != len(rows):
                target = source.new_empty((source.shape[0], source.shape[1], len(rows), *source.shape[3:]))
            torch.index_select(source[:t], 2, rows, out=target[:t])
            if source.shape[2] == len(rows):  # beams: the two buffers take turns; rows that finished: a smaller one
                self._spare[name] = source
            else:
                self._spare.pop(name, None)
            setattr(self, name, target)
        return self


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.d_model // cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """A whole sequence (B, T, C), causal -> output (B, T, C) and its keys and values (B, H, T, hd)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        dropout = self.dropout if self.training else 0.0
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, dropout_p=dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y), (k, v)

    def step(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
             position: int) -> torch.Tensor:
        """One new token per row, x (B, C) at ``position``: its key and value are written into ``keys`` and
        ``values`` (B, H, capacity, hd) there, and it attends to positions ``[0, position]``. Returns (B, C)."""
        B, C = x.shape
        qkv = self.qkv(x)
        qk = apply_rotary(qkv[:, :2 * C].view(B, 2 * self.n_head, self.head_dim), cos, sin)  # q and k in one go
        keys[:, :, position] = qk[:, self.n_head:]
        values[:, :, position] = qkv[:, 2 * C:].view(B, self.n_head, self.head_dim)
        y = F.scaled_dot_product_attention(qk[:, :self.n_head, None], keys[:, :, :position + 1], values[:, :, :position + 1])
        return self.proj(y.view(B, C))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.silu(self.gate(x)) * self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1, self.attn = RMSNorm(cfg.d_model), Attention(cfg)
        self.norm2, self.mlp = RMSNorm(cfg.d_model), SwiGLU(cfg)

    def forward(self, x, cos, sin, mask=None, mod=None):
        """x (B, T, C); ``mod`` (B, 1, 4, C): adaptive-norm scale and shift for the attention and MLP inputs, or None.
        Returns the output and the attention's keys and values."""
        h = self.norm1(x)
        if mod is not None:
            h = h * (1 + mod[:, :, 0]) + mod[:, :, 1]
        h, kv = self.attn(h, cos, sin, mask)
        x = x + h
        h = self.norm2(x)
        if mod is not None:
            h = h * (1 + mod[:, :, 2]) + mod[:, :, 3]
        return x + self.mlp(h), kv

    def step(self, x, cos, sin, keys, values, position, mod=None):
        """:meth:`forward` for one new token per row, x (B, C), with the layer's cache (see :meth:`Attention.step`)."""
        h = self.norm1(x)
        if mod is not None:
            h = torch.addcmul(mod[:, 0, 1], h, 1 + mod[:, 0, 0])
        x = x + self.attn.step(h, cos, sin, keys, values, position)
        h = self.norm2(x)
        if mod is not None:
            h = torch.addcmul(mod[:, 0, 3], h, 1 + mod[:, 0, 2])
        return x + self.mlp(h)


class Prefix(nn.Module):
    """Sentence embedding (B, E) -> prefix vectors (B, P, C)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.prefix_len, self.d_model = cfg.prefix_len, cfg.d_model
        self.net = nn.Sequential(
            nn.Linear(cfg.embedding_dim, cfg.prefix_hidden), nn.GELU(),
            nn.Linear(cfg.prefix_hidden, cfg.prefix_len * cfg.d_model),
        )

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.net(_unit_variance(cond)).view(-1, self.prefix_len, self.d_model)


def _unit_variance(cond: torch.Tensor) -> torch.Tensor:
    # unit-norm embeddings have tiny coordinates (~1/sqrt(E)); rescale to unit variance
    return cond * math.sqrt(cond.shape[-1])


class PrefixLM(nn.Module):
    """Text decoder conditioned on a sentence embedding through a learned prefix."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.prefix = Prefix(cfg)
        # zero-initialised (below), so a model trained without injection starts out computing the same function
        self.cond_proj = nn.Linear(cfg.embedding_dim, cfg.d_model, bias=False) if cfg.cond_inject else None
        # adaptive norm: embedding -> (n_layer, 4, C) scales and shifts; its last layer is zero-initialised too
        self.adaln = nn.Sequential(nn.Linear(cfg.embedding_dim, cfg.d_model), nn.SiLU(),
                                   nn.Linear(cfg.d_model, cfg.n_layer * 4 * cfg.d_model)) if cfg.cond_adaln else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied input/output embeddings
        # auxiliary bag-of-tokens head, tied to the token embeddings too: the prefix must point at the
        # sentence's tokens in the same space the language model reads them from
        self.bow_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        # added to every memory slot's token embedding: these tokens are candidates, not text already written
        self.memory_type = nn.Parameter(torch.zeros(cfg.d_model)) if cfg.memory_len else None
        # copy gate: hidden state -> logit bonus for the tokens in memory (zero-initialised below)
        self.memory_gate = nn.Linear(cfg.d_model, 1) if cfg.memory_len else None
        cos, sin = rotary_tables(cfg.context_len + cfg.max_len + 1, cfg.d_model // cfg.n_head, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
        if self.cond_proj is not None:
            nn.init.zeros_(self.cond_proj.weight)
        if self.adaln is not None:
            nn.init.zeros_(self.adaln[-1].weight)
            nn.init.zeros_(self.adaln[-1].bias)
        if self.memory_gate is not None:
            nn.init.zeros_(self.memory_gate.weight)
            nn.init.zeros_(self.memory_gate.bias)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def conditioning(self, cond: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor | None:
        """Per-row state that :meth:`step` needs besides the cache, (B, 1, K); None when there is none.

        It holds ``cond_inject``'s addition to every text token's input (C values), ``cond_adaln``'s
        per-layer scales and shifts (n_layer * 4 * C) and, with memory slots, which tokens the memory holds
        (V values, 1 or 0; all 0 without ``memory``). Callers treat it as opaque: rows may be selected with
        ``index_select(0, rows)`` like the cache.
        """
        parts = []
        if self.cond_proj is not None:
            parts.append(self.cond_proj(_unit_variance(cond)))
        if self.adaln is not None:
            parts.append(self.adaln(_unit_variance(cond)))
        if self.memory_gate is not None:
            parts.append(self._memory_mask(cond, memory))
        return torch.cat(parts, dim=-1)[:, None] if parts else None

    def _memory_mask(self, cond: torch.Tensor, memory: torch.Tensor | None) -> torch.Tensor:
        """(B, V): 1 for each token id the row's memory holds (pad never), else 0."""
        mask = torch.zeros(cond.shape[0], self.config.vocab_size, dtype=cond.dtype, device=cond.device)
        if memory is not None:
            mask.scatter_(1, memory, 1.0)
            mask[:, self.config.pad_id] = 0.0
        return mask

    def _split(self, state: torch.Tensor | None) -> tuple[torch.Tensor | None, list[torch.Tensor | None], torch.Tensor | None]:
        """:meth:`conditioning`'s state -> (injection (B, 1, C) or None, per-layer mods (B, 1, 4, C) or Nones,
        memory mask (B, 1, V) or None)."""
        C, L = self.config.d_model, self.config.n_layer
        if state is None:
            return None, [None] * L, None
        inject = state[..., :C] if self.cond_proj is not None else None
        mods: list[torch.Tensor | None] = [None] * L
        if self.adaln is not None:
            start = C if self.cond_proj is not None else 0
            table = state[..., start: start + L * 4 * C].reshape(state.shape[0], 1, L, 4, C)
            mods = [table[:, :, i] for i in range(L)]
        mask = state[..., state.shape[-1] - self.config.vocab_size:] if self.memory_gate is not None else None
        return inject, mods, mask

    def _logits(self, h: torch.Tensor, mask: torch.Tensor | None, *, decoding: bool = False) -> torch.Tensor:
        """Normalised hidden states (B, T, C) -> logits (B, T, V), with the copy gate's bonus on memory tokens.

        ``decoding`` (no gradients): a float output layer multiplies by a contiguous copy of its transposed weight
        instead: in that layout the (8192, 256) layer of the shipped model took 240 us for one row here instead of
        484, and 3.6 ms for 64 rows instead of 4.7. The copy is made again whenever the weight changes (training,
        loading); a quantized layer is called as it is.
        """
        if decoding and type(self.lm_head) is nn.Linear:
            weight = self.lm_head.weight
            key = (weight.data_ptr(), weight._version, weight.dtype)
            if getattr(self, "_head_key", None) != key:
                self._head_t, self._head_key = weight.detach().t().contiguous(), key
            logits = h @ self._head_t
        else:
            logits = self.lm_head(h)
        return logits if mask is None else logits + self.memory_gate(h) * mask

    def _context(self, cond: torch.Tensor, memory: torch.Tensor | None) -> torch.Tensor:
        """The memory slots, then the prefix vectors: (B, M + P, C). No ``memory`` reads as empty slots (all pad)."""
        prefix = self.prefix(cond)  # (B, P, C)
        if self.memory_type is None:
            if memory is not None:
                raise ValueError("this model has no memory slots (memory_len 0)")
            return prefix
        M = self.config.memory_len
        if memory is None:
            memory = torch.full((cond.shape[0], M), self.config.pad_id, dtype=torch.long, device=cond.device)
        if memory.shape != (cond.shape[0], M):
            raise ValueError(f"memory must be (batch, {M}) token ids, got {tuple(memory.shape)}")
        return torch.cat([self.tok_emb(memory) + self.memory_type, prefix], dim=1)

    def _embed(self, tokens: torch.Tensor, inject: torch.Tensor | None) -> torch.Tensor:
        x = self.tok_emb(tokens)  # (B, T, C)
        return x if inject is None else x + inject

    def forward(self, cond: torch.Tensor, tokens: torch.Tensor, targets: torch.Tensor | None = None,
                bow_targets: torch.Tensor | None = None,
                memory: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """cond (B, E), tokens (B, T) starting with BOS, memory (B, M) token ids or None -> logits (B, T, V) and,
        with targets, the losses."""
        B, T = tokens.shape
        inject, mods, mask = self._split(self.conditioning(cond, memory))
        x = torch.cat([self._context(cond, memory), self._embed(tokens, inject)], dim=1)  # (B, M+P+T, C)
        cos, sin = self.rope_cos[: x.shape[1]], self.rope_sin[: x.shape[1]]
        for block, mod in zip(self.blocks, mods):
            x, _ = block(x, cos, sin, mod=mod)
        h = self.norm(x)
        logits = self._logits(h[:, self.config.context_len:], mask)  # (B, T, V)
        if targets is None:
            return logits, None
        lm = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=self.config.pad_id)
        losses = {"lm": lm, "loss": lm}
        if bow_targets is not None and self.config.bow_loss_weight > 0:
            bow_logits = (h[:, self.config.memory_len: self.config.context_len].mean(1) @ self.tok_emb.weight.T + self.bow_bias).float()  # (B, V)
            # cross-entropy against the normalised bag: a mean BCE over V entries is dominated by the V - |bag|
            # absent tokens and gives the prefix almost no gradient
            bag = bow_targets / bow_targets.sum(1, keepdim=True).clamp_min(1.0)
            bow = -(bag * F.log_softmax(bow_logits, dim=-1)).sum(1).mean()
            losses["bow"] = bow
            losses["loss"] = lm + self.config.bow_loss_weight * bow
        return logits, losses

    # ---- incremental decoding (used by generation.py) -----------------------------------------
    @torch.no_grad()
    def start(self, cond: torch.Tensor, bos: torch.Tensor, memory: torch.Tensor | None = None,
              state: torch.Tensor | None = None, max_new_tokens: int | None = None) -> tuple[torch.Tensor, KVCache]:
        """Run memory, prefix and BOS; return logits for the first text token (B, V) and the KV cache, with room
        for ``max_new_tokens`` more tokens (default and at most the model's ``max_len``).

        ``state``: :meth:`conditioning` of ``cond`` and ``memory`` when the caller already computed it for :meth:`step`.
        """
        state = self.conditioning(cond, memory) if state is None else state
        inject, mods, mask = self._split(state)
        x = torch.cat([self._context(cond, memory), self._embed(bos[:, None], inject)], dim=1)  # (B, M+P+1, C)
        B, T, C = x.shape
        mc = self.config
        room = mc.max_len if max_new_tokens is None else min(max_new_tokens, mc.max_len)
        cache = KVCache.empty(mc.n_layer, B, mc.n_head, T + room, C // mc.n_head, x.dtype)
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        for i, (block, mod) in enumerate(zip(self.blocks, mods)):
            x, (k, v) = block(x, cos, sin, mod=mod)
            keys, values = cache.layer(i)
            keys[:, :, :T], values[:, :, :T] = k, v
        cache.length = T
        return self._logits(self.norm(x[:, -1:]), mask, decoding=True)[:, 0], cache

    @torch.no_grad()
    def step(self, token: torch.Tensor, cache: KVCache, position: int, state: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache]:
        """Feed one token per row at absolute ``position`` (the cache's length); return next-token logits (B, V)
        and the cache, which gains that position in place: to explore two continuations, start two caches.

        ``state`` is :meth:`conditioning` of the rows' embeddings and memory (computed once per generation).
        """
        if position != cache.length:
            raise ValueError(f"the cache holds {cache.length} positions; the next token goes at {cache.length}, not {position}")
        if position >= cache.capacity:
            raise ValueError(f"the cache has room for {cache.capacity} positions: start() with a larger max_new_tokens")
        inject, mods, mask = self._split(state)
        x = self.tok_emb(token)  # (B, C)
        if inject is not None:
            x = x + inject[:, 0]
        cos, sin = self.rope_cos[position], self.rope_sin[position]
        for i, (block, mod) in enumerate(zip(self.blocks, mods)):
            x = block.step(x, cos, sin, *cache.layer(i), position, mod)
        cache.length = position + 1
        return self._logits(self.norm(x)[:, None], mask, decoding=True)[:, 0], cache


def grown_state_dict(state: dict[str, torch.Tensor], old_layers: int, new_layers: int) -> dict[str, torch.Tensor]:
    """A ``PrefixLM`` state dict with ``old_layers`` blocks -> one for ``new_layers`` that computes the same function.

    Depth growth for continued training: the old blocks keep their order, spread evenly among the new ones
    (4 -> 8 puts a new block after each old one). A new block starts as a copy of the old block before it
    with its attention and MLP output projections zeroed, so it adds nothing to the residual stream until
    training moves those projections (the function is unchanged at step 0), while its copied internals give
    the gradient useful features from the first step. Rows of an adaptive-norm head move with their blocks;
    a new block's rows are zero (no modulation).

    >>> cfg = ModelConfig.preset("tiny", embedding_dim=8)
    >>> grown = grown_state_dict(PrefixLM(cfg).state_dict(), 2, 3)
    >>> sorted({k.split(".")[1] for k in grown if k.startswith("blocks.")})
    ['0', '1', '2']
    """
    if not 1 <= old_layers <= new_layers:
        raise ValueError(f"depth can only grow: {old_layers} -> {new_layers} layers")
    # where each old block goes, and which old block each new position copies
    position = [i * new_layers // old_layers for i in range(old_layers)]
    source = [max(i for i, pos in enumerate(position) if pos <= j) for j in range(new_layers)]
    out = {k: v for k, v in state.items() if not k.startswith("blocks.") and not k.startswith("adaln.2.")}
    blocks: list[dict[str, torch.Tensor]] = [{} for _ in range(old_layers)]  # old block -> its tensors by name inside it
    for key, value in state.items():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            blocks[int(index)][rest] = value
    for j, i in enumerate(source):
        fresh = j not in position
        for rest, value in blocks[i].items():
            zero = fresh and rest in ("attn.proj.weight", "mlp.proj.weight")
            out[f"blocks.{j}.{rest}"] = torch.zeros_like(value) if zero else value.clone()
    for key in ("adaln.2.weight", "adaln.2.bias"):
        if key in state:
            old = state[key].reshape(old_layers, -1, *state[key].shape[1:])
            new = old.new_zeros((new_layers, *old.shape[1:]))
            new[position] = old
            out[key] = new.reshape(-1, *state[key].shape[1:])
    return out
