"""Write models/default/generative/CARD.md from the shipped model's config.json, its training log and
bench/results/generative.json, so that every number in the card comes from a file a command wrote.

    python bench/make_generative_card.py --command "lightweight-decoder train ..."
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import REPO, RESULTS, changed_generation, decoding_name, mean_of, numpy_variant_note, speed_rows, speed_rss_text

from lightweight_decoder.lineage import expand_runs, steps_in_all
from lightweight_decoder.quality import markdown_table

MODEL = REPO / "models" / "default" / "generative"


def _longest(sources: list[dict]) -> dict:
    """Of the decoders a mean was taken of (``averaged_from``), the one with the longest training history."""
    return max(sources, key=lambda s: steps_in_all(s) or 0)


def _history(t: dict) -> list[str]:
    """Earlier runs this model was initialised from (``train --init``), newest first."""
    rows, run = [], t.get("initialised_from")
    while run:
        if "averaged_from" in run:  # a mean (`average`): the chain goes on through its source with the longest history
            rows.append({"from": f"{run.get('path')}: the mean of {mean_of(run['averaged_from'])}", "steps": "-", "tokens_seen": "-", "train_texts": "-",
                         "minutes": "-", "precision": "-"})
            run = _longest(run["averaged_from"])
            continue
        rows.append({"from": run.get("path"), "steps": run.get("steps"), "tokens_seen": run.get("tokens_seen"),
                     "train_texts": run.get("train_texts"), "minutes": round(run.get("train_seconds", 0) / 60),
                     "precision": run.get("precision", "bf16")})
        run = run.get("initialised_from")
    if not rows:
        return []
    return ["", f"It continued from an earlier model (`--init`); {steps_in_all(t):,} steps in all. "
            "Earlier runs, newest first:", "",
            markdown_table(rows, ["from", "steps", "tokens_seen", "train_texts", "minutes", "precision"])]


def _averaged(sources: list[dict]) -> list[str]:
    """The decoders whose weights were averaged into this one, each with its weight and training history."""
    if not sources:
        return []
    rows = [{"source": s.get("path", "-"), "weight": s["weight"], "steps in all": steps_in_all(s),
             "its last run's data": _data(s) if "data" in s or "train_texts" in s else "-"} for s in sources]
    return ["", "Its weights are then the mean of these decoders' (`lightweight-decoder average`, in the command above):", "",
            markdown_table(rows, list(rows[0]))]


def _decay(train_config: dict) -> str:
    """The learning-rate schedule after warm-up, in words (decoders trained before ``schedule`` existed: cosine)."""
    if train_config.get("schedule", "cosine") == "cosine":
        return "cosine decay"
    return f"constant, then a cosine decay over the last {train_config['decay_fraction']:.0%} of the steps"


def _data(t: dict) -> str:
    """The training data in words, from the sources ``train`` recorded (older models record only a count)."""
    parts = []
    for source in t.get("data", []):
        if "corpus" in source:
            where = f", from text {source['offset']:,} on" if source.get("offset") else ""
            parts.append(f"{source['texts']:,} corpus sentences (shuffle seed {source['seed']}{where})")
        else:
            fidelity = f", cosine {source['cosine_to_fresh']} to fresh encodings" if "cosine_to_fresh" in source else ""
            parts.append(f"{source['texts']:,} texts of bank {source['bank']} ({source['vectors']} vectors{fidelity})")
    return "; ".join(parts) if parts else f"{t['train_texts']:,} sentences (the embedded part of the corpus)"


def _converted(bench: dict) -> list[str]:
    """Float against int8 weights (`--quantize int8`) on the same sentences, and how often each format writes fp32's text."""
    if not bench.get("quality_int8"):
        return []
    rows = [{"file": f["file"], "n": f["n"], **{f"{m} {w}": row[m] for m in ("bleu", "token_f1", "cosine") for w, row in (("fp32", f), ("int8", q))}}
            for f, q in zip(bench["quality"], bench["quality_int8"])]
    lines = ["With int8 weights (`--quantize int8`: the linear layers' weights in int8, inputs quantized per call), same sentences, "
             "same run:", "", markdown_table(rows, list(rows[0])), ""]
    if bench.get("same_text_as_fp32"):
        lines += ["How often `--quantize fp16`, `--quantize int8` and the numpy runtime (`--runtime numpy`) write exactly the fp32 torch "
                  "model's text (same sentences, batches of 64):", "",
                  markdown_table(bench["same_text_as_fp32"], list(bench["same_text_as_fp32"][0])), ""]
    return lines


def _baseline(bench: dict) -> list[str]:
    """One table: each metric for the shipped model, then for every ``--baseline`` decoder (named by its folder)."""
    bases = bench.get("baselines", [])
    if not bases:
        return []
    names = [Path(base["model"]).name for base in bases]
    rows = []
    for i, new in enumerate(bench["quality"]):
        row = {"file": new["file"], "n": new["n"]}
        for metric in ("bleu", "token_f1", "cosine", "nll"):
            if metric not in new:  # measured before the benchmark reported it
                continue
            row[f"{metric} shipped"] = new[metric]
            for name, base in zip(names, bases):
                row[f"{metric} {name}"] = base["quality"][i].get(metric)
        rows.append(row)
    listed = ", ".join(f"`{base['model']}`" for base in bases)
    return [f"Against other decoders measured on the same sentences in the same run (`--baseline`: {listed}):", "",
            markdown_table(rows, list(rows[0])), ""]


def _speed() -> list[str]:
    """The speed table, from bench/results/generative_speed.json and the command that wrote it."""
    speed = json.loads((RESULTS / "generative_speed.json").read_text())
    rows, columns = speed_rows(speed)
    return [
        f"Speed of generation alone (no re-encoding; `{speed['command']}`, best of {speed['rounds']} rounds that each try "
        f"every setting twice, five times at batch 64; "
        f"{speed['machine']['date']}):",
        "",
        markdown_table(rows, columns),
        "",
        *([note, ""] if (note := numpy_variant_note(speed)) else []),
        f"Peak RSS of the decoder alone (a fresh process that loads it and decodes a batch of 64; VmHWM): {speed_rss_text(speed)}.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--command", required=True, help="the exact training command")
    parser.add_argument("--note", default="", help="where training stands (one paragraph)")
    args = parser.parse_args()

    meta = json.loads((MODEL / "config.json").read_text())
    m, t, mem = meta["model"], expand_runs(meta["metadata"]), meta.get("memory", {})
    sources = t.get("averaged_from", [])
    if sources:  # `lightweight-decoder average`: the training rows describe the latest run that went into the mean
        t = _longest(sources)
    log = [json.loads(line) for line in (MODEL / "train_log.jsonl").read_text().splitlines()]
    bench = json.loads((RESULTS / "generative.json").read_text())
    changed = changed_generation(meta.get("generation", {}))
    set_defaults = (["", "Its decoding defaults were then set, after comparing settings with `python bench/decoding.py` "
                     "(bench/README.md, \"Decoding settings\"):", "", "```bash",
                     "lightweight-decoder generation-defaults models/default/generative "
                     + " ".join(f"--set {k}={json.dumps(v)}" for k, v in changed.items()), "```"] if changed else [])
    lines = [
        "# Default generative decoder",
        "",
        f"A {meta['parameters']:,}-parameter decoder-only transformer that writes the text an all-mpnet-base-v2 "
        "(768-D) embedding encodes. It reads the embedding through a learned prefix of "
        f"{m['prefix_len']} vectors (an MLP maps the embedding to them)"
        + (" and a linear map of the embedding added to every token's input" if m.get("cond_inject") else "")
        + (", and the embedding scales and shifts the normalised input of every sublayer (adaptive norm)" if m.get("cond_adaln") else "")
        + (f". Before the prefix it reads {m['memory_len']} candidate tokens retrieved for the embedding from a phrase bank "
           "(the word pieces of the bank's nearest texts)" if m.get("memory_len") else "")
        + ", and was trained on this project's corpus on a 2-core CPU.",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | {m['n_layer']} layers, d_model {m['d_model']}, {m['n_head']} heads, SwiGLU {m['d_ff']}, RMSNorm, rotary positions, tied embeddings |",
        f"| conditioning | prefix of {m['prefix_len']} vectors from a {m['embedding_dim']} -> {m['prefix_hidden']} -> {m['prefix_len']}x{m['d_model']} MLP"
        + ("; the embedding's linear map added to every token's input" if m.get("cond_inject") else "")
        + (f"; adaptive norm: a {m['embedding_dim']} -> {m['d_model']} -> {m['n_layer']}x4x{m['d_model']} MLP gives each "
           "sublayer's input a scale and shift" if m.get("cond_adaln") else "")
        + f"; auxiliary bag-of-tokens loss (weight {m['bow_loss_weight']}) |",
        *([f"| memory | {m['memory_len']} token slots before the prefix: the distinct token ids of the {mem['neighbours']} nearest texts in "
           f"the bank `{mem['bank']}` (the shipped phrase bank when `default`), in rank order, {len(mem['skip_ids'])} frequent tokens "
           f"(in > 2% of the training sentences) left out; {t['train_config'].get('memory_dropout', 0):.0%} of training sentences saw "
           "them empty, so it also decodes without a bank |"] if m.get("memory_len") else []),
        f"| tokenizer | byte-level BPE, {m['vocab_size']:,} tokens, cased, trained on the training sentences |",
        f"| max length | {m['max_len']} tokens |",
        f"| decoding defaults | {decoding_name(meta.get('generation', {}))} (`lightweight-decoder generation-defaults` shows and changes them) |",
        f"| training | {t['steps']:,} steps, batch {t['train_config']['batch_size']}, AdamW lr {t['train_config']['lr']} "
        f"(warm-up {t['train_config']['warmup_steps']}, {_decay(t['train_config'])}), noise on inputs up to {t['train_config']['noise_std']}, "
        + (f"length curriculum over {t['train_config']['curriculum_steps']} steps; " if t['train_config']['curriculum_steps'] else "no length curriculum; ")
        + f"{t['tokens_seen']:,} target tokens seen |",
        f"| data | {_data(t)} |",
        f"| wall time | {t['train_seconds'] / 60:.0f} minutes of training on a 2-core CPU ({t.get('precision', 'bf16')}"
        + (f", {t['threads']} thread{'s' if t['threads'] > 1 else ''}" if "threads" in t else "") + ") |",
        f"| on disk | {sum(p.stat().st_size for p in MODEL.iterdir() if p.is_file()) / 2**20:.1f} MB |",
        *([f"| weights | the weighted mean of {len(sources)} decoders' weights (`lightweight-decoder average`, see below); "
           "the training rows above are the latest run's that went into it |"] if sources else []),
        "",
        "## How it was built",
        "",
        "```bash",
        args.command,
        "```",
        *_history(t),
        "",
        ("then `lightweight-decoder average` wrote the mean here, and the `train_log.jsonl` of each run in it that the shipped "
         "log lacked was appended to the logs of the earlier runs" if sources else
         "then `decoder/` of the training folder was copied here with its `train_log.jsonl`"
         + (" (after the logs of the earlier runs)" if t.get("initialised_from") else ""))
        + ". The training folder also holds `checkpoint/` (model and optimizer state), so the same `train` command with a "
        "larger `--steps` continues training where it stopped.",
        *_averaged(sources),
        *set_defaults,
        "",
        "## Measured",
        "",
        f"`{bench.get('command', 'python bench/generative.py')}` ({bench['quality'][0].get('decoding', 'greedy')} decoding, first "
        f"{bench['quality'][0]['n']} sentences of each held-out dev file; {bench['machine']['cpu_count']} cores, CPU bf16 "
        f"instructions: {bench['machine']['cpu_bf16']}, {bench['machine']['date']}):",
        "",
        markdown_table(bench["quality"], ["file", "n", "bleu", "exact_match", "token_f1", "rouge_l", "cosine", "nll", "nll_mismatched"]),
        "",
        "nll is the mean negative log-likelihood per token (nats) of the true sentence given its embedding, "
        "nll_mismatched the same with each sentence read under another one's embedding: the gap shows how much the "
        "model's predictions rest on the right embedding (`lightweight-decoder eval --decoder generative` reports both).",
        "",
        *_baseline(bench),
        *_converted(bench),
        *_speed(),
        "Dev BLEU during training (`train_log.jsonl`, 200 sentences of wikipedia_dev.txt, greedy; steps counted "
        "across all runs; loss is the training LM loss in nats/token, over every token since the previous line where "
        "the log has `lm_mean`, else that of the last batch; nll, where logged, that of the dev sentences):",
        "",
        markdown_table([{"step": r.get("cumulative_step", r["step"]), "loss": r.get("lm_mean", r.get("lm")),
                         **{k: r.get(k) for k in ("bleu", "exact_match", "cosine", "nll")}}
                        for r in log], ["step", "loss", "bleu", "exact_match", "cosine"] + (["nll"] if any("nll" in r for r in log) else [])),
        "",
    ]
    if args.note:
        lines += ["## Where it stands", "", args.note, ""]
    lines += [
        "## Data and licence",
        "",
        "Trained on English Wikipedia and Simple English Wikipedia text (CC BY-SA 3.0) and the Schema-Guided "
        "Dialogue data set (CC BY-SA 4.0). Sources: `../shared/data/SOURCES.md`. The dev sets it is measured on "
        "were removed from the training corpus.",
        "",
        "## Limits",
        "",
        "- It decodes all-mpnet-base-v2 embeddings only; for another encoder, train one with `lightweight-decoder train --encoder ...`.",
        "- English; at most 64 tokens.",
        "",
    ]
    (MODEL / "CARD.md").write_text("\n".join(lines))
    print(f"wrote {MODEL / 'CARD.md'}")


if __name__ == "__main__":
    main()
