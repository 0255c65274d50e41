"""Write models/default/generative/CARD.md from the shipped model's config.json, its training log and
bench/results/generative.json, so that every number in the card comes from a file a command wrote.

    python bench/make_generative_card.py --command "lightweight-decoder train ..."
"""

from __future__ import annotations

import argparse
import json

from _common import REPO, RESULTS

from lightweight_decoder.quality import markdown_table

MODEL = REPO / "models" / "default" / "generative"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--command", required=True, help="the exact training command")
    parser.add_argument("--note", default="", help="where training stands (one paragraph)")
    args = parser.parse_args()

    meta = json.loads((MODEL / "config.json").read_text())
    m, t = meta["model"], meta["metadata"]
    log = [json.loads(line) for line in (MODEL / "train_log.jsonl").read_text().splitlines()]
    bench = json.loads((RESULTS / "generative.json").read_text())
    lines = [
        "# Default generative decoder",
        "",
        f"A {meta['parameters']:,}-parameter decoder-only transformer that writes the text an all-mpnet-base-v2 "
        "(768-D) embedding encodes. It reads the embedding through a learned prefix of "
        f"{m['prefix_len']} vectors (an MLP maps the embedding to them) and was trained on this project's corpus on 2 CPU cores.",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | {m['n_layer']} layers, d_model {m['d_model']}, {m['n_head']} heads, SwiGLU {m['d_ff']}, RMSNorm, rotary positions, tied embeddings |",
        f"| conditioning | prefix of {m['prefix_len']} vectors from a {m['embedding_dim']} -> {m['prefix_hidden']} -> {m['prefix_len']}x{m['d_model']} MLP; "
        f"auxiliary bag-of-tokens loss (weight {m['bow_loss_weight']}) |",
        f"| tokenizer | byte-level BPE, {m['vocab_size']:,} tokens, cased, trained on the training sentences |",
        f"| max length | {m['max_len']} tokens |",
        f"| training | {t['steps']:,} steps, batch {t['train_config']['batch_size']}, AdamW lr {t['train_config']['lr']} "
        f"(warm-up {t['train_config']['warmup_steps']}, cosine decay), noise on inputs up to {t['train_config']['noise_std']}, "
        f"length curriculum over {t['train_config']['curriculum_steps']} steps; {t['tokens_seen']:,} target tokens seen |",
        f"| data | {t['train_texts']:,} sentences (the embedded part of the corpus) |",
        f"| wall time | {t['train_seconds'] / 60:.0f} minutes of training on 2 CPU cores (bf16 autocast) |",
        f"| on disk | {sum(p.stat().st_size for p in MODEL.iterdir() if p.is_file()) / 2**20:.1f} MB |",
        "",
        "## How it was built",
        "",
        "```bash",
        args.command,
        "```",
        "",
        "then `decoder/` of the training folder was copied here with its `train_log.jsonl`. The training folder "
        "also holds `checkpoint/` (model and optimizer state), so the same command with a larger `--steps` "
        "continues training where it stopped.",
        "",
        "## Measured",
        "",
        f"`python bench/generative.py` (greedy decoding, first {bench['quality'][0]['n']} sentences of each held-out dev file):",
        "",
        markdown_table(bench["quality"], ["file", "n", "bleu", "exact_match", "token_f1", "rouge_l", "cosine"]),
        "",
        markdown_table(bench["latency"], ["batch_size", "num_beams", "ms_per_sentence", "sentences_per_s"]),
        "",
        f"Peak RSS of the decoder alone: {bench['peak_rss_mb_decoder_only']} MB.",
        "",
        "Dev BLEU during training (`train_log.jsonl`, 200 sentences of wikipedia_dev.txt, greedy):",
        "",
        markdown_table([{k: r.get(k) for k in ("step", "lm", "bleu", "exact_match", "cosine")} for r in log],
                       ["step", "lm", "bleu", "exact_match", "cosine"]),
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
