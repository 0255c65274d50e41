"""A probe of vec2text's corrector (Morris et al., 2023) at this project's scale, not a product feature.

    python bench/corrector_probe.py --cache DIR --work DIR [--limit 102400] [--minutes 40] [--lr 1e-4] [--dev-limit 200]

vec2text's corrector reads, besides the target embedding t, a hypothesis (text) and the difference between t and the
hypothesis's embedding, and writes a better hypothesis; it is what lifts that system from BLEU 31.9 in one pass to 50.7
after one correction. Does the same idea pay with this project's 8.4M-parameter generator? The probe's corrector is the
shipped generator's transformer with two zero-initialised additions, so that at step 0 it computes the generator's
function:

- the hypothesis's tokens, in order, in ``memory_len`` (48) token slots before the prefix, with the copy gate of
  ``train --memory-len`` (``lightweight_decoder.model``);
- a linear map of ``t - e(hypothesis)`` (both unit-norm embeddings, scaled as the prefix scales t) added to the prefix.

Three steps, each skipped when its output is in ``--work``:

1. **hypotheses**: the shipped generator's text (its default decoding, numpy runtime, batch 64) for the first
   ``--limit`` texts of an embedding cache (``--cache``, a folder that ``train`` or ``bank build`` wrote), and its
   embedding (bf16 where the CPU has it), per 4,096 texts (interrupt and run again: it resumes);
2. **training**: ``--minutes`` from the generator's weights, batch 64, AdamW (0.9, 0.95; weight decay 0.1 on matrices),
   ``--lr`` for the generator's weights and 3x for the new ones, 100 steps of warm-up, the rate held for 70% of the
   time and decayed (cosine) to a tenth in the rest; Gaussian noise on t as in ``train``; for 10% of the rows the
   hypothesis is left out (empty slots, zero difference), so the corrector also learns to write without one. Not
   resumable: an interrupted run starts again;
3. **evaluation**, on the first ``--dev-limit`` lines of wikipedia_dev (never trained on): nll of the true sentence
   under the generator and under the corrector (given the generator's hypothesis; and given none), then BLEU and
   cosine (re-encoded) of the generator's hypothesis, of the hybrid's regeneration from the residual (the generator
   on ``t + 0.5 (t - e(hypothesis))``, normalised), and of two rounds of the corrector, each alone and as the better
   of it and the text before it by cosine (the hybrid's judge).

Writes bench/results/corrector_probe.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from pathlib import Path

import numpy as np
from _common import command, dev_sentences, machine, write_result

GENERATOR = Path(__file__).resolve().parents[1] / "models" / "default" / "generative"
SLOTS = 48  # hypothesis tokens read; the generator writes at most 48 by default
CHUNK = 4096


def corrector_class():
    import torch
    import torch.nn as nn

    from lightweight_decoder.model import PrefixLM, _unit_variance

    class Corrector(PrefixLM):
        """A PrefixLM whose input row is [t, t - e(hypothesis)] (2E wide) and whose memory slots hold the hypothesis."""

        def __init__(self, cfg):
            super().__init__(cfg)
            self.delta = nn.Linear(cfg.embedding_dim, cfg.prefix_len * cfg.d_model, bias=False)
            nn.init.zeros_(self.delta.weight)

        def conditioning(self, cond, memory=None):
            return super().conditioning(cond[:, :self.config.embedding_dim], memory)

        def _context(self, cond, memory):
            E, P, C = self.config.embedding_dim, self.config.prefix_len, self.config.d_model
            prefix = self.prefix(cond[:, :E]) + self.delta(_unit_variance(cond[:, E:])).view(-1, P, C)
            if memory is None:
                memory = torch.full((cond.shape[0], self.config.memory_len), self.config.pad_id, dtype=torch.long)
            return torch.cat([self.tok_emb(memory) + self.memory_type, prefix], dim=1)

    return Corrector


def build(generator):
    """The corrector with the generator's weights; its new parts zero."""
    cfg = dataclasses.replace(generator.model.config, memory_len=SLOTS)
    model = corrector_class()(cfg)
    missing, unexpected = model.load_state_dict(generator.model.state_dict(), strict=False)
    assert not unexpected and set(missing) == {"delta.weight", "memory_type", "memory_gate.weight", "memory_gate.bias"}, (missing, unexpected)
    return model


def slots(tokenizer, texts, pad_id):
    out = np.full((len(texts), SLOTS), pad_id, dtype=np.int64)
    for i, enc in enumerate(tokenizer.encode_batch(list(texts))):
        out[i, :len(enc.ids[:SLOTS])] = enc.ids[:SLOTS]
    return out


def condition(t, hyp_vectors, empty):
    """Rows [t, t - e(hypothesis)], the difference zero where ``empty``."""
    import torch

    t = torch.as_tensor(np.asarray(t, np.float32))
    d = t - torch.as_tensor(np.asarray(hyp_vectors, np.float32))
    d[torch.as_tensor(empty)] = 0
    return torch.cat([t, d], 1)


def hypotheses(work: Path, texts, vectors, encoder, drafter):
    """Step 1: the generator's text (``drafter``: its numpy runtime) and that text's embedding for each cached text,
    per chunk, resumable."""
    out_texts, out_vectors = [], []
    for i in range(0, len(texts), CHUNK):
        name = work / f"hyp-{i // CHUNK:05d}"
        if not (name.with_suffix(".npy")).exists():
            start = time.time()
            batch = vectors[i:i + CHUNK].astype(np.float32)
            written = [t if t.strip() else "." for j in range(0, len(batch), 64) for t in drafter.decode(batch[j:j + 64])]
            embedded = encoder.encode(written, batch_size=64, precision="auto").astype(np.float16)
            name.with_suffix(".txt.tmp").write_text("\n".join(t.replace("\n", " ") for t in written) + "\n")
            np.save(name.with_suffix(".tmp.npy"), embedded)
            os.replace(name.with_suffix(".txt.tmp"), name.with_suffix(".txt"))
            os.replace(name.with_suffix(".tmp.npy"), name.with_suffix(".npy"))
            print(f"hypotheses {i + len(batch):,}/{len(texts):,} ({time.time() - start:.0f} s)", flush=True)
        got = np.load(name.with_suffix(".npy"))
        out_vectors.append(got)
        out_texts += name.with_suffix(".txt").read_text().split("\n")[:len(got)]
    return out_texts, np.concatenate(out_vectors)


def train(work: Path, model, tokenizer, texts, vectors, hyp_texts, hyp_vectors, minutes: float, lr: float) -> int:
    """Step 2; returns the number of steps."""
    import torch

    from lightweight_decoder.train import _bow_targets, _tokenize, teacher_forcing

    torch.manual_seed(0)
    mc = model.config
    ids = _tokenize(tokenizer, texts, mc.max_len, mc.eos_id)
    memory_all = slots(tokenizer, hyp_texts, mc.pad_id)
    new = ("delta.", "memory_type", "memory_gate.")
    groups = []
    for fresh in (False, True):
        named = [(n, p) for n, p in model.named_parameters() if n.startswith(new) == fresh]
        for decayed in (True, False):
            params = [p for n, p in named if (p.dim() >= 2) == decayed]
            if params:
                groups.append({"params": params, "weight_decay": 0.1 if decayed else 0.0, "mult": 3.0 if fresh else 1.0})
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ids))
    B, warmup, step = 64, 100, 0
    start = time.monotonic()
    log = (work / "train_log.jsonl").open("a")
    model.train()
    while (now := time.monotonic()) < start + minutes * 60:
        frac = (now - start) / (minutes * 60)
        decay = 1.0 if frac < 0.7 else 0.1 + 0.45 * (1 + math.cos(math.pi * (frac - 0.7) / 0.3))
        rate = lr * min(1.0, (step + 1) / warmup) * decay
        for group in opt.param_groups:
            group["lr"] = rate * group["mult"]
        at = (step * B) % len(order)
        rows = order[at:at + B] if at + B <= len(order) else rng.integers(0, len(ids), B)
        inputs, targets = teacher_forcing([ids[r] for r in rows], mc.pad_id, mc.bos_id)
        t = vectors[rows].astype(np.float32)
        t = t + rng.uniform(0, 0.1, (B, 1)).astype(np.float32) * rng.standard_normal(t.shape).astype(np.float32) / math.sqrt(t.shape[1])
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        empty = rng.random(B) < 0.1
        memory = torch.from_numpy(memory_all[rows].copy())
        memory[torch.from_numpy(empty)] = mc.pad_id
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, losses = model(condition(t, hyp_vectors[rows], empty), inputs, targets,
                              _bow_targets(targets, mc.vocab_size, (mc.pad_id, mc.bos_id, mc.eos_id)), memory)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            log.write(f'{{"step": {step}, "minutes": {(time.monotonic() - start) / 60:.1f}, "lr": {rate:.3g}, "lm": {float(losses["lm"]):.4f}}}\n')
            log.flush()
            print(f"step {step}: lm {float(losses['lm']):.3f}", flush=True)
    torch.save({"state": model.state_dict(), "step": step}, work / "corrector.pt.tmp")
    os.replace(work / "corrector.pt.tmp", work / "corrector.pt")
    return step


def evaluate(model, generator, drafter, encoder, truth, rounds: int) -> dict:
    """Step 3."""
    import torch

    from lightweight_decoder.config import GenerationConfig
    from lightweight_decoder.generation import generate
    from lightweight_decoder.quality import bleu
    from lightweight_decoder.train import _tokenize, teacher_forcing

    model.eval()
    tok, mc, N = generator.tokenizer, model.config, len(truth)
    t = encoder.encode(truth, precision="auto")
    hyp = drafter.decode(t)
    hyp_vectors = encoder.encode(hyp, precision="auto")
    inputs, targets = teacher_forcing(_tokenize(tok, truth, mc.max_len, mc.eos_id), mc.pad_id, mc.bos_id)

    def nll(m, cond, memory):
        total = count = 0.0
        with torch.inference_mode():
            for i in range(0, N, 50):
                logits, _ = m(cond[i:i + 50], inputs[i:i + 50], **({} if memory is None else {"memory": memory[i:i + 50]}))
                mask = targets[i:i + 50] != mc.pad_id
                picked = torch.log_softmax(logits.float(), -1).gather(-1, targets[i:i + 50, :, None])[..., 0]
                total += float((picked * mask).sum())
                count += float(mask.sum())
        return round(-total / count, 4)

    def cosine(vectors):
        return round(float(np.mean(np.sum(t * vectors, 1) / np.linalg.norm(t, axis=1) / np.linalg.norm(vectors, axis=1))), 4)

    def written(m, cond, memory=None):
        with torch.inference_mode():
            rows = generate(m, cond, GenerationConfig(repetition_penalty=1.2), memory)
        return [tok.decode(r[0].tokens).strip() or "." for r in rows]

    def scored(name, texts, vectors, before, before_vectors):
        """A row for ``texts``, and for the better of it and ``before`` per sentence by cosine."""
        better = np.sum(t * vectors, 1) > np.sum(t * before_vectors, 1)
        kept = [a if b else c for a, c, b in zip(texts, before, better)]
        kept_vectors = np.where(better[:, None], vectors, before_vectors)
        rows.append({"text": name, "bleu": round(bleu(texts, truth), 2), "cosine": cosine(vectors),
                     "bleu_better_of_two": round(bleu(kept, truth), 2), "cosine_better_of_two": cosine(kept_vectors)})
        return kept, kept_vectors

    none, full = np.zeros(N, bool), np.ones(N, bool)
    memory = torch.from_numpy(slots(tok, hyp, mc.pad_id))
    result = {"nll": {"generator": nll(generator.model, torch.from_numpy(t), None),
                      "corrector_with_hypothesis": nll(model, condition(t, hyp_vectors, none), memory),
                      "corrector_without_hypothesis": nll(model, condition(t, hyp_vectors, full), torch.full_like(memory, mc.pad_id))}}
    rows = [{"text": "generator (greedy, its defaults)", "bleu": round(bleu(hyp, truth), 2), "cosine": cosine(hyp_vectors)}]
    shifted = t + 0.5 * (t - hyp_vectors)
    regenerated = written(generator.model, torch.from_numpy((shifted / np.linalg.norm(shifted, axis=1, keepdims=True)).astype(np.float32)))
    scored("regeneration from the residual (alpha 0.5)", regenerated, encoder.encode(regenerated, precision="auto"), hyp, hyp_vectors)
    current, current_vectors = hyp, hyp_vectors
    for r in range(rounds):
        out = written(model, condition(t, current_vectors, none), torch.from_numpy(slots(tok, current, mc.pad_id)))
        current, current_vectors = scored(f"corrector, round {r + 1}", out, encoder.encode(out, precision="auto"), current, current_vectors)
        if r == 0:
            result["examples"] = [{"truth": a, "hypothesis": b, "corrected": c} for a, b, c in list(zip(truth, hyp, out))[:5]]
    result["rows"] = rows
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True, help="an embedding cache folder of all-mpnet-base-v2 vectors (from train or bank build)")
    parser.add_argument("--work", required=True, help="folder for the hypotheses, the training log and the corrector")
    parser.add_argument("--limit", type=int, default=102_400, help="cached texts used (the first N)")
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--dev-limit", type=int, default=200, help="wikipedia_dev lines evaluated (the first N)")
    parser.add_argument("--rounds", type=int, default=2, help="correction rounds evaluated")
    args = parser.parse_args()

    import torch

    from lightweight_decoder.data import EmbeddingCache
    from lightweight_decoder.decoders.generative import GenerativeDecoder
    from lightweight_decoder.encoder import TextEncoder

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    encoder = TextEncoder("all-mpnet-base-v2")
    generator = GenerativeDecoder.load(GENERATOR)
    drafter = GenerativeDecoder.load(GENERATOR, runtime="numpy")  # the same weights; writes the hypotheses
    model = build(generator)
    texts, vectors = EmbeddingCache.open(args.cache).load(limit=args.limit)
    hyp_texts, hyp_vectors = hypotheses(work, texts, vectors, encoder, drafter)
    if (work / "corrector.pt").exists():
        saved = torch.load(work / "corrector.pt")
        model.load_state_dict(saved["state"])
        steps = saved["step"]
    else:
        steps = train(work, model, generator.tokenizer, texts, vectors, hyp_texts, hyp_vectors, args.minutes, args.lr)
    result = evaluate(model, generator, drafter, encoder, dev_sentences("wikipedia_dev.txt", n=args.dev_limit), args.rounds)
    result.update({"command": command(), "machine": machine(), "texts": len(texts), "steps": steps, "minutes": args.minutes,
                   "lr": args.lr, "dev_lines": args.dev_limit})
    for row in result["rows"]:
        print(row)
    print(result["nll"])
    write_result("corrector_probe", result)


if __name__ == "__main__":
    main()
