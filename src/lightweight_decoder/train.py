"""Training the generative decoder, readable top to bottom.

Given texts and their embeddings (from the embedding cache, so a corpus is embedded once):
AdamW with warm-up and a cosine decay (over the whole run, or over its last ``decay_fraction``, a fifth by default,
after a stable phase: "wsd"), gradient clipping, bf16 autocast where the CPU has bf16, a length curriculum (short
sentences first), Gaussian noise on the input embeddings, dev evaluation every N steps appended to
``train_log.jsonl``, and checkpoints (safetensors + JSON, no pickle) that resume after an interruption. Seeded. A
model with memory slots reads, for each training sentence, the memory a phrase bank gives its vector (the sentence
itself left out), as it will when decoding.

>>> decoder = train("out", texts, vectors, encoder_name="all-mpnet-base-v2", preset="small",   # doctest: +SKIP
...                 train_config=TrainConfig(steps=2000))
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .config import PRECISIONS, BaseConfig, _check, _is_int, _is_number, check_weight_format
from .errors import IncompatibleArtifact, InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from .decoders.generative import GenerativeDecoder
    from .encoder import TextEncoder
    from .memory import MemoryConfig
    from .phrasebank import PhraseBank

__all__ = ["TrainConfig", "train"]

SCHEDULES = ("cosine", "wsd")

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainConfig(BaseConfig):
    """Optimisation settings.

    ``steps`` sets the schedule length. ``minutes`` stops training at a deadline; given without ``steps``,
    the schedule is fitted to the deadline: after 20 measured steps, and again at every step, its length is set
    to the steps done plus the time left divided by the mean time of the recent steps, so that the learning
    rate reaches its end of the decay at the deadline however the step time drifts (it grows with sentence
    length under the length curriculum). A resumed run that was fitted this way fits again to its new
    deadline, unless it had reached the end of its schedule.
    """

    steps: int | None = 2000
    minutes: float | None = None
    batch_size: int = 64
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    # "wsd": warm-up, stable at lr, then a cosine decay over the last decay_fraction of the schedule; "cosine": the decay
    # takes the whole schedule after warm-up. On runs of 8-13 minutes, wsd reached a lower dev nll (see README)
    schedule: str = "wsd"
    decay_fraction: float = 0.2
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    noise_std: float = 0.1
    # share of training sentences whose memory slots are left empty, so the decoder also works without a bank
    memory_dropout: float = 0.1
    curriculum_steps: int = 1000
    curriculum_start_len: int = 16
    # rows of a batch come from a megabatch of length_grouping * batch_size random rows sorted by length,
    # so a batch pads to about its own length rather than to the longest of 64 random sentences (1: off)
    length_grouping: int = 8
    eval_every: int = 250
    eval_size: int = 200
    checkpoint_every: int = 250
    precision: str = "auto"
    seed: int = 0

    def validate(self) -> None:
        _check(self.steps is not None or self.minutes is not None, "give steps or minutes")
        _check(self.steps is None or (_is_int(self.steps) and self.steps >= 1), f"steps must be an int >= 1, got {self.steps!r}")
        self._check_ints("batch_size", "eval_every", "eval_size", "checkpoint_every", "curriculum_start_len", "length_grouping", minimum=1)
        self._check_ints("warmup_steps", "curriculum_steps", "seed", minimum=0)
        _check(self.minutes is None or (_is_number(self.minutes) and self.minutes > 0), f"minutes must be > 0, got {self.minutes!r}")
        _check(_is_number(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr!r}")
        self._check_fractions("min_lr_ratio", "noise_std", "memory_dropout", "decay_fraction")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _check(_is_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay must be >= 0")
        _check(_is_number(self.grad_clip) and self.grad_clip > 0, "grad_clip must be > 0")
        _check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")


def learning_rate(step: int, cfg: TrainConfig, total: int) -> float:
    """Linear warm-up, then a cosine decay to ``lr * min_lr_ratio`` at ``total``: from the end of warm-up
    (``schedule="cosine"``), or over the last ``decay_fraction`` of the steps, ``lr`` until then (``"wsd"``)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    start = cfg.warmup_steps if cfg.schedule == "cosine" else max(cfg.warmup_steps, round(total * (1 - cfg.decay_fraction)))
    progress = min(1.0, max(0, step - start) / max(1, total - start))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class _DeadlineFit:
    """The length of a schedule that should end at ``deadline``: the steps done plus the time left over the cost of
    a step, once ``min_steps`` steps of this run have been timed. A step costs the mean time of the last ``window``
    optimizer steps plus its share of the evaluations and checkpoints so far (their time is kept apart, so that
    one evaluation does not swing the estimate)."""

    def __init__(self, deadline: float, *, min_steps: int = 20, window: int = 50) -> None:
        self.deadline, self.min_steps = deadline, min_steps
        self.recent: collections.deque[float] = collections.deque(maxlen=window)
        self.timed, self.overhead = 0, 0.0

    def record(self, seconds: float, overhead: float = 0.0) -> None:
        """One optimizer step's time, and the time spent after it on evaluation and checkpoints."""
        self.recent.append(seconds)
        self.timed += 1
        self.overhead += overhead

    @property
    def ready(self) -> bool:
        return self.timed >= self.min_steps

    def total(self, step: int, now: float) -> int:
        per_step = sum(self.recent) / len(self.recent) + self.overhead / self.timed
        return max(step + 1, step + int((self.deadline - now) / per_step))


def _tokenize(tokenizer: Any, texts: Sequence[str], max_len: int, eos_id: int) -> list[list[int]]:
    """Token ids of each text, truncated to leave room for EOS."""
    return [enc.ids[: max_len - 1] + [eos_id] for enc in tokenizer.encode_batch(list(texts))]


def teacher_forcing(sequences: Sequence[Sequence[int]], pad_id: int, bos_id: int):
    """Padded ``(inputs, targets)`` LongTensors (B, T) for token sequences that end with EOS: the inputs are BOS and
    each sequence but its last token, the targets the sequence itself."""
    import torch

    T = max(len(seq) for seq in sequences)
    inputs = torch.full((len(sequences), T), pad_id, dtype=torch.long)
    targets = torch.full((len(sequences), T), pad_id, dtype=torch.long)
    for i, seq in enumerate(sequences):
        inputs[i, 0] = bos_id
        inputs[i, 1:len(seq)] = torch.tensor(seq[:-1], dtype=torch.long)
        targets[i, :len(seq)] = torch.tensor(seq, dtype=torch.long)
    return inputs, targets


class _Batches:
    """Seeded batches with a length curriculum (the allowed length grows over ``curriculum_steps``) and
    length grouping (``length_grouping`` consecutive steps share one length-sorted megabatch)."""

    def __init__(self, ids: list[list[int]], vectors: np.ndarray, cfg: TrainConfig, max_len: int, pad_id: int, bos_id: int,
                 memory: np.ndarray | None = None) -> None:
        self.ids, self.vectors, self.cfg, self.max_len, self.memory = ids, vectors, cfg, max_len, memory
        self.pad_id, self.bos_id = pad_id, bos_id
        self.lengths = np.array([len(x) for x in ids])
        self.by_length = np.argsort(self.lengths, kind="stable")
        self.sorted_lengths = self.lengths[self.by_length]
        # a corpus smaller than a megabatch would repeat rows in it, and its sorted batches would hold a few
        # sentences many times over: group only when there is a megabatch of texts
        self.grouping = cfg.length_grouping if len(ids) >= cfg.batch_size * cfg.length_grouping else 1

    def allowed_length(self, step: int) -> int:
        if self.cfg.curriculum_steps == 0:
            return self.max_len
        frac = min(1.0, step / self.cfg.curriculum_steps)
        return int(self.cfg.curriculum_start_len + frac * (self.max_len - self.cfg.curriculum_start_len))

    def get(self, step: int):
        import torch

        rng = np.random.default_rng((self.cfg.seed, step))  # a function of the step: resuming replays nothing
        group, slot = divmod(step, self.grouping)
        first = group * self.grouping  # the megabatch is drawn as of its first step, so all its steps agree
        pool = max(int(np.searchsorted(self.sorted_lengths, self.allowed_length(first), side="right")), self.cfg.batch_size)
        mega = np.random.default_rng((self.cfg.seed, first, 1)).integers(0, min(pool, len(self.ids)),
                                                                          self.cfg.batch_size * self.grouping)
        mega = np.sort(mega)  # by_length is sorted by length, so sorting positions sorts rows by length
        rows = self.by_length[mega[slot * self.cfg.batch_size:(slot + 1) * self.cfg.batch_size]]
        inputs, targets = teacher_forcing([self.ids[r] for r in rows], self.pad_id, self.bos_id)
        cond = torch.from_numpy(self.vectors[rows].astype(np.float32))
        if self.cfg.noise_std > 0:  # noise of relative size up to noise_std, so transformed vectors still decode
            scale = torch.from_numpy(rng.uniform(0, self.cfg.noise_std, (len(rows), 1)).astype(np.float32))
            noise = torch.from_numpy(rng.standard_normal(cond.shape).astype(np.float32)) / math.sqrt(cond.shape[1])
            cond = cond + scale * noise
        cond = cond / cond.norm(dim=1, keepdim=True)
        memory = None
        if self.memory is not None:
            memory = torch.from_numpy(self.memory[rows])
            memory[torch.from_numpy(rng.random(len(rows)) < self.cfg.memory_dropout)] = self.pad_id
        return cond, inputs, targets, memory


def _bow_targets(targets, vocab_size: int, specials: tuple[int, ...]):
    import torch

    bow = torch.zeros(targets.shape[0], vocab_size)
    bow.scatter_(1, targets, 1.0)
    bow[:, list(specials)] = 0.0
    return bow


def _init_decoder(path: str | os.PathLike[str], dimension: int, encoder_name: str, overrides: dict, *,
                  load_weights: bool, seed: int) -> "GenerativeDecoder":
    """A decoder with the config and tokenizer of the saved decoder at ``path`` (plus ``overrides``), and its
    weights when ``load_weights``; parts that ``overrides`` add keep their (zero) initialisation."""
    import torch

    from .decoders.generative import GenerativeDecoder
    from .model import ModelConfig, PrefixLM, grown_state_dict

    source = GenerativeDecoder.load(path)  # with memory slots, this loads the bank its memory reads
    if source.encoder_name != encoder_name or source.embedding_dim != dimension:
        raise IncompatibleArtifact(f"--init decoder {path} is for {source.encoder_name} ({source.embedding_dim}-D); "
                                   f"this run trains for {encoder_name} ({dimension}-D)")
    shape_keys = {"vocab_size", "d_model", "n_layer", "n_head", "d_ff", "prefix_len", "prefix_hidden", "embedding_dim"}
    old_layers = source.model.config.n_layer
    new_layers = overrides.get("n_layer", old_layers)
    changed = sorted(k for k in shape_keys & set(overrides) if k != "n_layer" or new_layers < old_layers)
    if changed:
        raise InvalidInput(f"--init keeps the decoder's shapes (only n_layer may grow, from {old_layers}); cannot override {changed}")
    torch.manual_seed(seed)
    model = PrefixLM(ModelConfig.from_dict({**source.model.config.to_dict(), **overrides}))
    if load_weights:
        state = grown_state_dict(source.model.state_dict(), old_layers, new_layers)
        missing, unexpected = model.load_state_dict(state, strict=False)
        # parts an override may add: zero-initialised (adaln's first layer is random, but feeds only its zeroed last one)
        added = {"cond_proj.weight", "adaln.0.weight", "adaln.0.bias", "adaln.2.weight", "adaln.2.bias", "memory_type",
                 "memory_gate.weight", "memory_gate.bias"}
        if unexpected or set(missing) - added:
            raise IncompatibleArtifact(f"--init decoder {path} does not fit: missing {sorted(set(missing) - added)}, "
                                       f"unexpected {sorted(unexpected)}")
        logger.info("initialised from %s%s%s", path, f" (new, zero-initialised: {sorted(missing)})" if missing else "",
                    f"; {new_layers - old_layers} new layers (zeroed output projections)" if new_layers > old_layers else "")
    history = {"path": str(path), **{k: v for k, v in source.metadata.items() if k != "train_config"}}
    # the source's memory (its bank and settings) carries over while the slots keep their number
    retriever = source.retriever if model.config.memory_len == source.model.config.memory_len else None
    # and so do its decoding defaults (`generation-defaults`): the continued decoder decodes as its source did
    return GenerativeDecoder(model, source.tokenizer, encoder_name=encoder_name, generation_config=source.generation_config,
                             metadata={"initialised_from": history}, retriever=retriever)


def _retriever(decoder: "GenerativeDecoder", memory: "MemoryConfig | None", bank: "PhraseBank | None", texts: Sequence[str]):
    """The retriever that fills a training decoder's memory slots (see :func:`train`)."""
    from .memory import MemoryConfig, Retriever, frequent_token_ids

    config = memory or (decoder.retriever.config if decoder.retriever is not None else MemoryConfig())
    if config.skip_ids is None:
        config = config.replace(skip_ids=frequent_token_ids(decoder.tokenizer, texts))
    if bank is None and decoder.retriever is not None and config.bank == decoder.retriever.config.bank:
        bank = decoder.retriever.bank
    mc = decoder.model.config
    return Retriever.load(config, decoder.tokenizer, length=mc.memory_len, pad_id=mc.pad_id, encoder_name=decoder.encoder_name,
                          dimension=mc.embedding_dim, bank=bank)


def evaluate(decoder: "GenerativeDecoder", texts: Sequence[str], vectors: np.ndarray) -> dict[str, float]:
    """Greedy decoding of ``vectors``: BLEU, exact match and (with an encoder) cosine against ``texts``; and ``nll``,
    the mean negative log-likelihood per token of ``texts`` given ``vectors`` (nats), which unlike BLEU does not
    depend on how the text is decoded."""
    from .quality import bleu, exact_match, likelihood

    results = decoder.generate(vectors, max_new_tokens=decoder.model.config.max_len)
    outputs = [r.text for r in results]
    out = {"bleu": round(bleu(outputs, list(texts)), 3),
           "exact_match": round(float(np.mean([exact_match(o, t) for o, t in zip(outputs, texts)])), 4),
           "nll": likelihood(decoder, texts, vectors, mismatched=False)["nll"]}
    if decoder.encoder is not None:
        out["cosine"] = round(float(np.mean([r.score for r in results])), 4)
    out["example"] = outputs[0]
    return out


def train(
    out_dir: str | os.PathLike[str],
    texts: Sequence[str],
    vectors: np.ndarray,
    *,
    encoder_name: str,
    preset: str = "small",
    train_config: TrainConfig | None = None,
    model_overrides: dict | None = None,
    dev_texts: Sequence[str] | None = None,
    dev_vectors: np.ndarray | None = None,
    encoder: "TextEncoder | None" = None,
    init_from: str | os.PathLike[str] | None = None,
    data_sources: list[dict] | None = None,
    weights: str = "fp32",
    memory: "MemoryConfig | None" = None,
    memory_bank: "PhraseBank | None" = None,
    show_progress_bar: bool = True,
) -> "GenerativeDecoder":
    """Train (or resume training) a generative decoder in ``out_dir``; returns the trained decoder.

    ``init_from`` starts from a saved decoder's weights and tokenizer (its shapes; ``model_overrides``
    may add zero-initialised parts such as ``cond_inject=True`` or ``cond_adaln=True``, or change loss weights) instead of a fresh
    ``preset`` model, so training accumulates across runs and a shipped decoder can be fine-tuned.
    ``data_sources`` (where ``texts`` and ``vectors`` came from) is kept in the decoder's metadata.
    ``weights`` is how ``out_dir/decoder`` stores its weights (``"fp16"``: half the size; see
    :meth:`GenerativeDecoder.save`); the checkpoint that resumes training keeps fp32.
    A model with memory slots (``model_overrides={"memory_len": 64}``) reads the bank that ``memory`` names (or
    ``memory_bank``, already loaded; default: the ``init_from`` decoder's memory, else the shipped bank); its
    ``skip_ids``, when None, are the tokens in more than 2% of ``texts``.
    """
    import torch
    from tqdm.auto import tqdm

    from .decoders.generative import create_generative_decoder
    from .encoder import resolve_precision
    from .lineage import steps_in_all
    from .tokenizer import load_tokenizer, save_tokenizer

    cfg = train_config or TrainConfig()
    check_weight_format(weights)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vectors = np.asarray(vectors)
    if len(texts) != len(vectors) or len(texts) < cfg.batch_size:
        raise InvalidInput(f"need at least batch_size={cfg.batch_size} texts with one vector each; got {len(texts)} texts, {len(vectors)} vectors")
    torch.manual_seed(cfg.seed)

    # 1. tokenizer and model (the tokenizer is trained once and kept, so a resumed run reads the same ids)
    tok_path = out / "tokenizer.json"
    ckpt = out / "checkpoint"
    tokenizer = load_tokenizer(tok_path) if tok_path.exists() else None
    if init_from is not None:
        decoder = _init_decoder(init_from, vectors.shape[1], encoder_name, model_overrides or {},
                                load_weights=not (ckpt / "state.json").exists(), seed=cfg.seed)
    else:
        decoder = create_generative_decoder(preset, vectors.shape[1], encoder_name=encoder_name, texts=list(texts[:200_000]),
                                            tokenizer=tokenizer, seed=cfg.seed, **(model_overrides or {}))
    if tokenizer is None:
        save_tokenizer(decoder.tokenizer, tok_path)
    decoder.encoder = encoder
    model, mc = decoder.model, decoder.model.config
    logger.info("model: %s parameters", f"{model.num_parameters():,}")

    # 2. data (and the memory of every training sentence, retrieved once)
    memories = None
    if mc.memory_len:
        decoder.retriever = _retriever(decoder, memory, memory_bank, texts)
        memories = decoder.retriever(vectors, exclude=texts, show_progress_bar=show_progress_bar)
        filled = float((memories != mc.pad_id).mean())
        logger.info("memory: %d slots from %d nearest texts of %s (%d entries); %.0f%% of slots filled",
                    mc.memory_len, decoder.retriever.config.neighbours, decoder.retriever.config.bank, len(decoder.retriever.bank), 100 * filled)
    batches = _Batches(_tokenize(decoder.tokenizer, texts, mc.max_len, mc.eos_id), vectors, cfg, mc.max_len, mc.pad_id, mc.bos_id, memories)
    if dev_texts is not None and dev_vectors is not None:
        dev_texts, dev_vectors = list(dev_texts[: cfg.eval_size]), np.asarray(dev_vectors[: cfg.eval_size], np.float32)

    # 3. optimiser: no weight decay on norms, biases and embeddings' gains
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.lr, betas=(0.9, 0.95))
    use_bf16 = resolve_precision(cfg.precision) == "bf16"

    # 4. resume
    deadline = time.monotonic() + cfg.minutes * 60 if cfg.minutes else None
    state = {"step": 0, "elapsed_s": 0.0, "total_steps": cfg.steps or 10**9, "tokens_seen": 0, "fitted": cfg.steps is None}
    if (ckpt / "state.json").exists():
        state = load_checkpoint(ckpt, model, optimizer)
        if cfg.steps is not None:  # an explicit --steps sets (or extends) the schedule
            state["total_steps"] = max(cfg.steps, state["step"] + 1)
            state["fitted"] = False
        logger.info("resumed at step %d of %d", state["step"], state["total_steps"])
    # without --steps, the schedule's length follows the deadline (see TrainConfig)
    fit = _DeadlineFit(deadline) if deadline is not None and state.get("fitted") and state["step"] < state["total_steps"] else None
    total = state["total_steps"]
    log_path = out / "train_log.jsonl"

    def log(record: dict) -> None:
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    history = decoder.metadata.get("initialised_from")  # what an --init decoder had been through before this run
    steps_before = steps_in_all(history or {}) or 0

    def save_decoder() -> None:
        decoder.metadata = {"steps": state["step"], "train_seconds": round(state["elapsed_s"], 1),
                            "train_texts": len(texts), "tokens_seen": state["tokens_seen"],
                            "precision": "bf16" if use_bf16 else "fp32", "threads": torch.get_num_threads(), "train_config": cfg.to_dict()}
        if data_sources:
            decoder.metadata["data"] = data_sources
        if history:
            decoder.metadata.update(initialised_from=history, cumulative_steps=steps_before + state["step"])
        decoder.save(out / "decoder", weights=weights)

    # 5. the loop
    # a --minutes run knows its step count after 20 measured steps; until then the bar shows no total (and no ETA)
    bar = tqdm(total=None if fit is not None else total, initial=state["step"], desc="training", unit="step",
               disable=not show_progress_bar)
    model.train()
    step_start = time.monotonic()
    interval_nats = interval_tokens = 0.0  # the LM loss over all tokens since the last log line (one batch's swings with its length)
    while state["step"] < total:
        step = state["step"]
        # for the deadline fit: this step's own time from tick, and what the previous step spent after it (evaluation,
        # checkpoints) since step_start
        tick = time.monotonic()
        overhead = tick - step_start
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg, total)
        cond, inputs, targets, memory_rows = batches.get(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            _, losses = model(cond, inputs, targets, _bow_targets(targets, mc.vocab_size, (mc.pad_id, mc.bos_id, mc.eos_id)), memory_rows)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        optimizer.step()
        now = time.monotonic()
        state["elapsed_s"] += now - step_start
        step_start = now
        state["step"] += 1
        n_tokens = int((targets != mc.pad_id).sum())
        state["tokens_seen"] += n_tokens
        interval_nats += losses["lm"].item() * n_tokens
        interval_tokens += n_tokens
        bar.update(1)
        bar.set_postfix(loss=f"{interval_nats / interval_tokens:.3f}", lr=f"{group['lr']:.2e}")
        if fit is not None:
            fit.record(now - tick, overhead=overhead)
            if fit.ready:
                total = state["total_steps"] = bar.total = fit.total(state["step"], now)
        done = state["step"] >= total or (deadline is not None and now >= deadline)
        if done and fit is not None:  # a fitted schedule ends where the run does
            total = state["total_steps"] = state["step"]
        if state["step"] % cfg.eval_every == 0 or done:
            record = {"step": state["step"], "loss": round(losses["loss"].item(), 4), "lm": round(losses["lm"].item(), 4),
                      "lm_mean": round(interval_nats / interval_tokens, 4),
                      "bow": round(losses["bow"].item(), 4) if "bow" in losses else 0.0, "lr": group["lr"], "grad_norm": round(grad_norm, 3),
                      "elapsed_s": round(state["elapsed_s"], 1), "tokens_seen": state["tokens_seen"],
                      "cumulative_step": steps_before + state["step"]}
            if dev_texts is not None:
                model.eval()
                record.update(evaluate(decoder, dev_texts, dev_vectors))
                model.train()
            log(record)
            logger.info("step %d: %s", state["step"], record)
            interval_nats = interval_tokens = 0.0
        if state["step"] % cfg.checkpoint_every == 0 or done:
            save_checkpoint(ckpt, model, optimizer, state)
            save_decoder()
        if done:
            break
    bar.close()
    model.eval()
    return decoder
