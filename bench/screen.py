"""The embedding screen as the hybrid uses it: does it pick the edits the encoder would?

    python bench/screen.py [--limit 16] [--offset 500] [--proposals 150] [--files wikipedia_dev dialogue_dev]

For each sentence (lines offset.. of each dev file, not the ones bench/hybrid.py reports), the generator's greedy
output is the text to correct; ``propose_edits`` makes ``--proposals`` edits of it from a pool of its beams and the
bank's top 10, exactly as a correction round does; the encoder re-encodes every edit (the ground truth). Then,
per budget k (edits the judge may re-encode in a round):

- screened: the best true gain in cosine among the k edits the screen ranks highest;
- random: among k edits drawn at random (what a round without a screen judges);
- oracle: the best gain among all the edits (the most any choice of k can give).

Also the screen's held-out cosine to the encoder, the rank correlation of its scores with the encoder's over each
sentence's edits, and what screening a round costs.

Word suggestions: of the reference's words that the generator's output lacks, the share that the screen's top
``--words`` suggestions (:meth:`EmbeddingScreen.suggest_words`, the words a correction round may place) hold,
against the share the pool's words hold (all the words of the beams and the bank's top 10, where edits drew
every word from before), and both together. Writes bench/results/screen.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import command, dev_sentences, machine, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=16, help="sentences per dev file")
    parser.add_argument("--offset", type=int, default=500, help="first line of each dev file used")
    parser.add_argument("--proposals", type=int, default=150, help="edits proposed per sentence")
    parser.add_argument("--budgets", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--files", nargs="+", default=["wikipedia_dev", "dialogue_dev"])
    parser.add_argument("--words", type=int, default=32, help="words the screen suggests per sentence")
    parser.add_argument("--screen", help="screen folder (default: the shipped one)")
    args = parser.parse_args()

    from scipy.stats import spearmanr

    from lightweight_decoder.decoders.hybrid import propose_edits
    from lightweight_decoder.loading import load_decoder, load_screen
    from lightweight_decoder.screen import WORD_PATTERN

    phrase, encoder = load_decoder("phrase")
    generator, _ = load_decoder("generative", encoder=encoder)
    screen = load_screen(args.screen, encoder)
    if screen is None:
        raise SystemExit("no screen fits the encoder: train one with `lightweight-decoder screen train`")
    rng = np.random.default_rng(0)
    rows, word_rows, screen_seconds, screened_texts = [], [], 0.0, 0
    for name in args.files:
        texts = dev_sentences(name + ".txt", n=args.offset + args.limit)[args.offset:]
        targets = encoder.encode(texts)
        gains = {kind: {k: [] for k in args.budgets} for kind in ("screened", "random", "oracle")}
        correlations, missing, found = [], 0, {"suggested": 0, "pool": 0, "either": 0}
        suggested_sizes, pool_sizes = [], []

        def words(text: str) -> set[str]:
            return set(WORD_PATTERN.findall(text))  # a word as the screen counts one

        for reference, query in zip(texts, targets):
            greedy = generator.generate(query, rescore=False).text
            beams = [c.text for c in generator.generate(query, rescore=False, num_beams=4, num_return_sequences=4).candidates]
            pool = [greedy, *beams, *(h.text for h in phrase.bank.search(query, k=10)[0])]
            edits = propose_edits(greedy, pool, np.random.default_rng(0), args.proposals)
            lacking = words(reference) - words(greedy)  # case counts: BLEU counts it
            suggested, pooled = set(screen.suggest_words(greedy, query, args.words)), set().union(*map(words, pool))
            missing += len(lacking)
            for kind, offered in (("suggested", suggested), ("pool", pooled), ("either", suggested | pooled)):
                found[kind] += len(lacking & offered)
            suggested_sizes.append(len(suggested))
            pool_sizes.append(len(pooled))
            true = encoder.encode([greedy, *edits]) @ query
            base, truth = true[0], true[1:]
            t = time.perf_counter()
            predicted = screen.scores(edits, query)
            screen_seconds, screened_texts = screen_seconds + time.perf_counter() - t, screened_texts + len(edits)
            correlations.append(spearmanr(predicted, truth)[0])
            order = np.argsort(-predicted, kind="stable")
            for k in args.budgets:
                gains["screened"][k].append(max(truth[order[:k]].max() - base, 0.0))
                gains["random"][k].append(max(truth[rng.choice(len(truth), min(k, len(truth)), replace=False)].max() - base, 0.0))
                gains["oracle"][k].append(max(truth.max() - base, 0.0))
        for k in args.budgets:
            row = {"file": f"{name}.txt", "n": len(texts), "judged_per_round": k,
                   **{f"gain_{kind}": round(float(np.mean(gains[kind][k])), 4) for kind in gains}}
            row["screened_share_of_oracle"] = round(row["gain_screened"] / row["gain_oracle"], 3) if row["gain_oracle"] else None
            row["spearman"] = round(float(np.nanmean(correlations)), 3)
            rows.append(row)
            print(row, flush=True)
        word_rows.append({"file": f"{name}.txt", "n": len(texts), "missing_words": missing,
                          "words_suggested": round(float(np.mean(suggested_sizes)), 1), "words_in_pool": round(float(np.mean(pool_sizes)), 1),
                          **{f"found_{kind}": round(n / max(missing, 1), 3) for kind, n in found.items()}})
        print(word_rows[-1], flush=True)
    path = write_result("screen", {"command": command(), "machine": machine(), "limit": args.limit, "offset": args.offset,
                                   "proposals": args.proposals, "words": args.words, "screen": screen.metrics,
                                   "screen_ms_per_text": round(1000 * screen_seconds / screened_texts, 4), "results": rows,
                                   "word_suggestions": word_rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
