"""Generative decoder: BLEU / exact match / cosine, and the likelihood of the true text (nll, nll_mismatched:
see lightweight_decoder.quality.likelihood) on every dev file, latency per sentence at batch 1 and
64 (greedy and beam 4), parameter count, peak RSS of the decoder alone, and a plot of dev BLEU against
training steps (from the training log). Latency and RSS are measured for the saved fp32 weights and for
`--quantize fp16` and `--quantize int8`; quality for fp32 and int8, and for both how often their text is fp32's.

    python bench/generative.py [--model models/default/generative] [--limit 300] [--log DIR/train_log.jsonl]
                               [--baseline OTHER_DECODER_DIR]...

With --baseline (repeatable), other decoders (e.g. the previously shipped one, or the control arm of an
experiment) are measured on the same sentences in the same run; the plot draws their training logs too.

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

from _common import REPO, RESULTS, SHARED, command, decoding_name, dev_sentences, machine, write_result


def _peak_rss_child(model_dir: str, vectors: np.ndarray, quantize: str | None, queue) -> None:
    """In a fresh process: load only the decoder, generate; report peak RSS (MB) after the imports and at the end."""
    import sys

    sys.path.insert(0, str(REPO / "src"))
    from lightweight_decoder.decoders.generative import GenerativeDecoder

    after_imports = _peak_rss_mb()  # torch and the package, before any model
    decoder = GenerativeDecoder.load(model_dir, quantize=quantize)
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


WEIGHTS = ("fp32", "fp16", "int8")  # the model as saved, and as `--quantize fp16` / `--quantize int8` run it


def _latency(decoder, vectors: np.ndarray, batch: int, num_beams: int) -> float:
    start = time.perf_counter()
    if batch == 1:
        for v in vectors:
            decoder.generate(v, num_beams=num_beams)
    else:
        decoder.generate(vectors, batch_size=batch, num_beams=num_beams)
    return (time.perf_counter() - start) * 1000.0 / len(vectors)


def _log_rows(log_path: Path) -> list[dict]:
    return [json.loads(line) for line in log_path.read_text().splitlines() if "bleu" in line] if log_path.exists() else []


def _plot(log_path: Path, baselines: list[str]) -> str | None:
    """Dev BLEU and training loss against steps; the logs of ``baselines`` (decoder folders) drawn beside."""
    rows = _log_rows(log_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r.get("cumulative_step", r["step"]) for r in rows]  # runs continued with --init count on
    fig, ax = plt.subplots(figsize=(6, 4))
    for other in baselines:  # drawn first, so that the measured model's line is on top where they share a history
        other_rows = _log_rows(Path(other) / "train_log.jsonl")
        if other_rows:
            ax.plot([r.get("cumulative_step", r["step"]) for r in other_rows], [r["bleu"] for r in other_rows], marker=".",
                    linestyle=":", label=f"dev BLEU, baseline {Path(other).name}")
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
    parser.add_argument("--baseline", action="append", default=[],
                        help="another decoder folder, measured on the same sentences for comparison (repeatable)")
    args = parser.parse_args()

    from lightweight_decoder.decoders.generative import GenerativeDecoder
    from lightweight_decoder.encoder import TextEncoder
    from lightweight_decoder.quality import likelihood, roundtrip, summarize

    encoder = TextEncoder()
    decoder = GenerativeDecoder.load(args.model, encoder=encoder)
    baselines = [(path, GenerativeDecoder.load(path, encoder=encoder), []) for path in args.baseline]
    quality: list[dict] = []
    quality_int8: list[dict] = []  # the same model with int8 weights (--quantize int8)
    # without an encoder: decode() and the timings are generation alone, no re-encoding
    bare = {"fp32": GenerativeDecoder.load(args.model), **{w: GenerativeDecoder.load(args.model, quantize=w) for w in WEIGHTS[1:]}}
    measured = [("", decoder, quality), ("int8 ", bare["int8"], quality_int8)]
    measured += [(f"baseline {Path(path).name} ", dec, rows) for path, dec, rows in baselines]
    agreement: list[dict] = []  # how often each converted model writes exactly the fp32 model's text
    for path in sorted((SHARED / "eval").glob("*_dev.txt")):
        texts = dev_sentences(path.name, n=args.limit)
        targets = encoder.encode(texts)  # once per file: every decoder is judged against the same vectors
        for label, dec, rows in measured:  # roundtrip re-encodes each output once; rescore=False spares a second
            summary = summarize(list(roundtrip(texts, encoder, lambda v: dec.generate(v, rescore=False).text, vectors=targets)))
            if dec.quantization is None:  # the likelihood of the float models: int8 changes the text, not what is measured here
                summary.update(likelihood(dec, texts, targets))
            rows.append({"file": path.name, "decoding": decoding_name(dec.generation_config.to_dict()), **summary})
            print(f"{label}{rows[-1]}", flush=True)
        reference = bare["fp32"].decode(targets)  # batches of 64; fp32's text does not depend on the batch
        agreement.append({"file": path.name, "n": len(texts), **{
            f"same_text_{w}": round(float(np.mean([a == b for a, b in zip(bare[w].decode(targets), reference)])), 4)
            for w in WEIGHTS[1:]}})
        print(agreement[-1], flush=True)
    vectors = encoder.encode(dev_sentences(n=args.latency_n), precision="auto")
    latency = []
    for b in (1, 64):
        for nb in (1, 4):
            # best of two rounds, the weight formats alternating: this machine's speed drifts by 10-20% over minutes
            times: dict[str, list[float]] = {w: [] for w in WEIGHTS}
            for _ in range(2):
                for w in WEIGHTS:
                    times[w].append(_latency(bare[w], vectors, b, nb))
            best = {w: min(times[w]) for w in WEIGHTS}
            for w in WEIGHTS:
                latency.append({"weights": w, "batch_size": b, "num_beams": nb, "ms_per_sentence": round(best[w], 2),
                                "sentences_per_s": round(1000.0 / best[w], 1)})
                print(latency[-1], flush=True)
    ctx = multiprocessing.get_context("spawn")
    rss = {}
    for w in WEIGHTS:
        queue = ctx.Queue()
        child = ctx.Process(target=_peak_rss_child, args=(args.model, vectors, None if w == "fp32" else w, queue))
        child.start()
        rss[w] = queue.get(timeout=600)
        child.join()
        print(f"peak RSS {w}: {rss[w][1]:.1f} MB (imports {rss[w][0]:.1f} MB)", flush=True)
    log = Path(args.log) if args.log else Path(args.model) / "train_log.jsonl"
    path = write_result("generative", {
        "command": command(), "machine": machine(), "model": args.model,
        "parameters": decoder.num_parameters, "training": decoder.metadata,
        "quality": quality, "quality_int8": quality_int8, "same_text_as_fp32": agreement, "latency": latency,
        "peak_rss_mb_decoder_only": {w: round(rss[w][1], 1) for w in WEIGHTS}, "rss_mb_imports_only": round(rss["fp32"][0], 1),
        "plot": _plot(log, args.baseline),
        "baselines": [{"model": path, "parameters": dec.num_parameters, "training": dec.metadata, "quality": rows}
                      for path, dec, rows in baselines],
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
