"""Generative decoder: BLEU / exact match / cosine, and the likelihood of the true text (nll, nll_mismatched:
see lightweight_decoder.quality.likelihood) on every dev file, latency per sentence at batch 1 and
64 (greedy and beam 4), parameter count, peak RSS of the decoder alone, and a plot of dev BLEU against
training steps (from the training log). Latency and RSS are measured for the saved fp32 weights, for
`--quantize fp16` and `--quantize int8`, and for the numpy runtime (`--runtime numpy`: the fp32 weights without
torch); quality for fp32 and int8, and for each variant how often its text is the torch fp32 model's.

    python bench/generative.py [--model models/default/generative] [--limit 300] [--log DIR/train_log.jsonl]
                               [--baseline OTHER_DECODER_DIR]... [--speed-only] [--code OTHER_SRC_DIR]...

With --baseline (repeatable), other decoders (e.g. the previously shipped one, or the control arm of an
experiment) are measured on the same sentences in the same run; the plot draws their training logs too.

Speed and RSS are measured in fresh child processes (bench/_generation_speed_child.py), each importing the
package from a source tree: this checkout's, and with --code (repeatable) another one, so that one command
times the same weights under two versions of the code:

    git worktree add /tmp/before <commit> && python bench/generative.py --speed-only --code /tmp/before/src

Each child repeats every setting (twice at batch 1, five times at batch 64), rounds alternate between the trees
(in turn first) and the weight formats, and the best time counts, because this machine's speed drifts by 10-30%
over minutes. --speed-only skips the quality measurement.

Writes bench/results/generative.json and bench/results/generative_bleu.png (quality), and
bench/results/generative_speed.json (speed and RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import REPO, RESULTS, command, decoding_name, dev_files, dev_sentences, machine, write_result
from _generation_speed_child import LOAD_KWARGS

# the model as saved, as `--quantize fp16` / `--quantize int8` run it, and as `--runtime numpy` runs it
WEIGHTS = tuple(LOAD_KWARGS)
CHILD = Path(__file__).resolve().with_name("_generation_speed_child.py")


def _child(tree: Path, model: str, vectors: Path, weights: str, what: str) -> dict:
    """Run the speed child with the package imported from ``tree``; its JSON answer."""
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(CHILD), model, str(vectors), weights, what], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the speed child failed with the code in {tree}:\n{done.stderr[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(answer["package"]) != (tree / "lightweight_decoder").resolve():
        raise RuntimeError(f"the speed child imported {answer['package']}, not the code in {tree}")
    return answer


def _code_label(tree: Path) -> str:
    """The commit a source tree is at (short hash, "+changes" when files in it have uncommitted changes), else its path."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return str(tree)
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no", "--", ".") else "")


def _speed(model: str, vectors: np.ndarray, trees: list[Path], rounds: int) -> dict:
    """Latency (best of ``rounds``) and peak RSS of generation alone for every weight format and code tree."""
    labels = [_code_label(tree) for tree in trees]
    best: dict[tuple, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.npy"
        np.save(path, vectors)
        for r in range(rounds):
            order = list(zip(trees, labels))
            for tree, label in order if r % 2 == 0 else order[::-1]:  # neither version always runs first
                for w in _variants(tree):
                    for row in _child(tree, model, path, w, "latency")["rows"]:
                        key = (label, w, row["batch_size"], row["num_beams"])
                        best[key] = min(best.get(key, float("inf")), row["ms_per_sentence"])
                        print(label, w, row, flush=True)
        rss = {label: {w: _child(tree, model, path, w, "rss") for w in _variants(tree)} for tree, label in zip(trees, labels)}
    latency = [{"code": label, "weights": w, "batch_size": b, "num_beams": nb, "ms_per_sentence": round(ms, 2),
                "sentences_per_s": round(1000.0 / ms, 1)} for (label, w, b, nb), ms in best.items()]
    return {
        "code": [{"label": label, "path": str(tree)} for tree, label in zip(trees, labels)],
        "rounds": rounds, "n": len(vectors), "latency": latency,
        "peak_rss_mb_decoder_only": {label: {w: r["peak_mb"] for w, r in rss[label].items()} for label in labels},
        "rss_mb_imports_only": {label: rss[label]["fp32"]["imports_mb"] for label in labels},
    }


def _variants(tree: Path) -> list[str]:
    """The variants a source tree can run: code from before the numpy runtime has no ``numpy_model``."""
    return [w for w in WEIGHTS if w != "numpy" or (tree / "lightweight_decoder" / "numpy_model.py").exists()]


def _log_rows(log_path: Path) -> list[dict]:
    return [json.loads(line) for line in log_path.read_text().splitlines() if "bleu" in line] if log_path.exists() else []


def _plot(log_path: Path, baselines: list[str]) -> str | None:
    """Dev BLEU, training loss and (where logged) dev nll against steps; the BLEU logs of ``baselines`` (decoder
    folders) drawn beside."""
    rows = _log_rows(log_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r.get("cumulative_step", r["step"]) for r in rows]  # runs continued with --init count on
    fig, ax = plt.subplots(figsize=(6, 4.6))
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
    dev_nll = [(step, r["nll"]) for step, r in zip(steps, rows) if r.get("nll") is not None]  # logged by newer runs only
    if dev_nll:
        ax2.plot(*zip(*dev_nll), color="tab:purple", label="dev nll (nats/token)")
    ax2.set_ylabel("loss, nll")
    for before, row in zip(rows, rows[1:]):  # a step count that starts again marks a run continued with --init
        if row["step"] < before["step"]:
            ax.axvline(row.get("cumulative_step", row["step"]) - row["step"], color="grey", linestyle="--", linewidth=1)
    fig.legend(loc="lower center", ncol=2, fontsize=8)  # below the axes, off the curves
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    out = RESULTS / "generative_bleu.png"
    fig.savefig(out, dpi=100)
    return out.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "default" / "generative"))
    parser.add_argument("--limit", type=int, default=300, help="sentences per dev file")
    parser.add_argument("--latency-n", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="speed rounds; the best counts")
    parser.add_argument("--log", help="train_log.jsonl for the BLEU-vs-steps plot (default: the model folder's)")
    parser.add_argument("--baseline", action="append", default=[],
                        help="another decoder folder, measured on the same sentences for comparison (repeatable)")
    parser.add_argument("--speed-only", action="store_true", help="measure speed and RSS, not quality")
    parser.add_argument("--code", action="append", default=[],
                        help="the src folder of another version of this project, whose speed on the same weights is "
                             "measured beside this checkout's (repeatable)")
    args = parser.parse_args()
    trees = [REPO / "src", *(Path(c).resolve() for c in args.code)]
    for tree in trees[1:]:
        if not (tree / "lightweight_decoder" / "__init__.py").exists():
            parser.error(f"--code {tree}: no lightweight_decoder package there (give the src folder of a checkout)")

    from lightweight_decoder.encoder import TextEncoder

    encoder = TextEncoder()
    if not args.speed_only:
        _quality(args, encoder)
    vectors = encoder.encode(dev_sentences(n=args.latency_n), precision="auto")
    speed = _speed(args.model, vectors, trees, args.rounds)
    path = write_result("generative_speed", {"command": command(), "machine": machine(), "model": args.model, **speed})
    print(f"wrote {path}")


def _quality(args: argparse.Namespace, encoder) -> None:
    from lightweight_decoder.decoders.generative import GenerativeDecoder
    from lightweight_decoder.quality import likelihood, roundtrip, summarize

    decoder = GenerativeDecoder.load(args.model, encoder=encoder)
    baselines = [(path, GenerativeDecoder.load(path, encoder=encoder), []) for path in args.baseline]
    quality: list[dict] = []
    quality_int8: list[dict] = []  # the same model with int8 weights (--quantize int8)
    # without an encoder: decode() is generation alone, no re-encoding
    bare = {w: GenerativeDecoder.load(args.model, **LOAD_KWARGS[w]) for w in WEIGHTS}
    measured = [("", decoder, quality), ("int8 ", bare["int8"], quality_int8)]
    measured += [(f"baseline {Path(path).name} ", dec, rows) for path, dec, rows in baselines]
    agreement: list[dict] = []  # how often each converted model writes exactly the fp32 model's text
    for path in dev_files():
        texts = dev_sentences(path.name, n=args.limit)
        targets = encoder.encode(texts)  # once per file: every decoder is judged against the same vectors
        for label, dec, rows in measured:  # roundtrip re-encodes each output once; rescore=False spares a second
            trips = list(roundtrip(texts, encoder, lambda v: dec.generate(v, rescore=False).text, vectors=targets))
            summary = summarize(trips)
            if dec.quantization is None:  # the likelihood of the float models: int8 changes the text, not what is measured here
                summary.update(likelihood(dec, texts, targets, outputs=[t.output for t in trips]))
            rows.append({"file": path.name, "decoding": decoding_name(dec.generation_config.to_dict()), **summary})
            print(f"{label}{rows[-1]}", flush=True)
        reference = bare["fp32"].decode(targets)  # batches of 64; fp32's text does not depend on the batch
        agreement.append({"file": path.name, "n": len(texts), **{
            f"same_text_{w}": round(float(np.mean([a == b for a, b in zip(bare[w].decode(targets), reference)])), 4)
            for w in WEIGHTS[1:]}})
        print(agreement[-1], flush=True)
    log = Path(args.log) if args.log else Path(args.model) / "train_log.jsonl"
    path = write_result("generative", {
        "command": command(), "machine": machine(), "model": args.model,
        "parameters": decoder.num_parameters, "training": decoder.metadata,
        "quality": quality, "quality_int8": quality_int8, "same_text_as_fp32": agreement,
        "speed": "generative_speed.json",
        "plot": _plot(log, args.baseline),
        "baselines": [{"model": path, "parameters": dec.num_parameters, "training": dec.metadata, "quality": rows}
                      for path, dec, rows in baselines],
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
