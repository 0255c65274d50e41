"""Generative decoder: BLEU / exact match / cosine on every dev file, latency per sentence at batch 1 and
64 (greedy and beam 4), parameter count, peak RSS of the decoder alone, and a plot of dev BLEU against
training steps (from the training log).

    python bench/generative.py [--model models/default/generative] [--limit 300] [--log DIR/train_log.jsonl]
                               [--baseline OTHER_DECODER_DIR]

With --baseline, another decoder (e.g. the previously shipped one) is measured on the same sentences in
the same run.

Writes bench/results/generative.json and bench/results/generative_bleu.png.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path

import numpy as np

from _common import REPO, RESULTS, SHARED, command, dev_sentences, machine, write_result


def _peak_rss_child(model_dir: str, vectors: np.ndarray, queue) -> None:
    """In a fresh process: load only the decoder, generate; report peak RSS (MB) after the imports and at the end."""
    import sys

    sys.path.insert(0, str(REPO / "src"))
    from lightweight_decoder.decoders.generative import GenerativeDecoder

    after_imports = _peak_rss_mb()  # torch and the package, before any model
    decoder = GenerativeDecoder.load(model_dir)
    decoder.generate(vectors, batch_size=64)
    queue.put((after_imports, _peak_rss_mb()))


def _peak_rss_mb() -> float:
    """This process's peak resident set (MB). On Linux from VmHWM: ru_maxrss of a spawned child also counts
    the parent's resident set at fork time (the kernel keeps the pre-exec high-water mark), which made the
    first measurement report the benchmark process (encoder and all) instead of the decoder."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _latency(decoder, vectors: np.ndarray, batch: int, num_beams: int) -> float:
    start = time.perf_counter()
    if batch == 1:
        for v in vectors:
            decoder.generate(v, num_beams=num_beams)
    else:
        decoder.generate(vectors, batch_size=batch, num_beams=num_beams)
    return (time.perf_counter() - start) * 1000.0 / len(vectors)


def _decoding(decoder) -> str:
    """The decoder's default generation settings in words, e.g. "greedy, no_repeat_ngram_size 3"."""
    from lightweight_decoder.generation import GenerationConfig

    cfg, default = decoder.generation_config.to_dict(), GenerationConfig().to_dict()
    name = f"beam {cfg['num_beams']}" if cfg["num_beams"] > 1 else ("sampling" if cfg["do_sample"] else "greedy")
    return ", ".join([name, *(f"{k} {v}" for k, v in cfg.items() if v != default[k] and k not in ("num_beams", "do_sample"))])


def _plot(log_path: Path) -> str | None:
    if not log_path.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if "bleu" in line]
    if not rows:
        return None
    steps = [r.get("cumulative_step", r["step"]) for r in rows]  # runs continued with --init count on
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [r["bleu"] for r in rows], marker="o", label="dev BLEU (greedy)")
    ax.set_xlabel("training step (all runs)")
    ax.set_ylabel("BLEU")
    ax2 = ax.twinx()
    # lm_mean: the loss over every token since the previous line; older logs have only the last batch's (lm)
    ax2.plot(steps, [r.get("lm_mean", r["lm"]) for r in rows], color="tab:red", alpha=0.6, label="train loss (nats/token)")
    ax2.set_ylabel("loss")
    for before, row in zip(rows, rows[1:]):  # a step count that starts again marks a run continued with --init
        if row["step"] < before["step"]:
            ax.axvline(row.get("cumulative_step", row["step"]) - row["step"], color="grey", linestyle="--", linewidth=1)
    fig.legend(loc="upper center", ncol=2, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = RESULTS / "generative_bleu.png"
    fig.savefig(out, dpi=100)
    return out.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "default" / "generative"))
    parser.add_argument("--limit", type=int, default=300, help="sentences per dev file")
    parser.add_argument("--latency-n", type=int, default=64)
    parser.add_argument("--log", help="train_log.jsonl for the BLEU-vs-steps plot (default: the model folder's)")
    parser.add_argument("--baseline", help="another decoder folder, measured on the same sentences for comparison")
    args = parser.parse_args()

    from lightweight_decoder.decoders.generative import GenerativeDecoder
    from lightweight_decoder.encoder import TextEncoder
    from lightweight_decoder.quality import roundtrip, summarize

    encoder = TextEncoder()
    decoder = GenerativeDecoder.load(args.model, encoder=encoder)
    baseline = GenerativeDecoder.load(args.baseline, encoder=encoder) if args.baseline else None
    quality, baseline_quality = [], []
    measured = [("", decoder, quality)] + ([("baseline ", baseline, baseline_quality)] if baseline is not None else [])
    for path in sorted((SHARED / "eval").glob("*_dev.txt")):
        texts = dev_sentences(path.name, n=args.limit)
        targets = encoder.encode(texts)  # once per file: both decoders are judged against the same vectors
        for label, dec, rows in measured:  # roundtrip re-encodes each output once; rescore=False spares a second
            summary = summarize(list(roundtrip(texts, encoder, lambda v: dec.generate(v, rescore=False).text, vectors=targets)))
            rows.append({"file": path.name, "decoding": _decoding(dec), **summary})
            print(f"{label}{rows[-1]}", flush=True)
    vectors = encoder.encode(dev_sentences(n=args.latency_n), precision="auto")
    bare = GenerativeDecoder.load(args.model)  # no encoder: time generation alone
    latency = [{"batch_size": b, "num_beams": nb, "ms_per_sentence": round(_latency(bare, vectors, b, nb), 2)}
               for b in (1, 64) for nb in (1, 4)]
    for row in latency:
        row["sentences_per_s"] = round(1000.0 / row["ms_per_sentence"], 1)
        print(row, flush=True)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_peak_rss_child, args=(args.model, vectors, queue))
    child.start()
    imports_rss, peak = queue.get(timeout=600)
    child.join()
    log = Path(args.log) if args.log else Path(args.model) / "train_log.jsonl"
    path = write_result("generative", {
        "command": command(), "machine": machine(), "model": args.model,
        "parameters": bare.model.num_parameters(), "training": bare.metadata,
        "quality": quality, "latency": latency, "peak_rss_mb_decoder_only": round(peak, 1), "rss_mb_imports_only": round(imports_rss, 1), "plot": _plot(log),
        **({"baseline": {"model": args.baseline, "parameters": baseline.model.num_parameters(), "training": baseline.metadata,
                         "quality": baseline_quality}} if baseline is not None else {}),
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
