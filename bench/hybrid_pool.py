"""Which candidates the hybrid's judge picks, and what each pool would give if it were all the budget judged.

    python bench/hybrid_pool.py [--limit 40] [--offset 500] [--files dialogue_dev wikipedia_dev simple_wikipedia_dev]

For each sentence (lines offset.. of each dev file, not the ones bench/hybrid.py reports) every candidate of every
source the hybrid draws on is made and judged as the hybrid judges it: the shipped bank's top ``bank_k`` hits (in the
order of its approximate scores), the generator's greedy output, its ``num_beams`` beams and ``num_samples``
samples (HybridConfig's defaults), each re-encoded for its exact cosine to the target and scored by cosine +
``fluency_weight`` x the generator's mean token log-probability given the target. Then, per pool (a subset of those
candidates), the judge's pick is scored against the true sentence; and the share of sentences whose pick over all
candidates came from each source (a text two sources wrote counts for the first of greedy, beam, sample, bank).
The last pool row is no judge: it picks, from all the candidates, the one closest to the true sentence by sentence
BLEU, so it shows how far any choice among these candidates could go (a better judge, reranking, MBR).
No time limit enters: the texts do not depend on the machine's speed. Writes bench/results/hybrid_pool.json.
"""

from __future__ import annotations

import argparse

import numpy as np
import sacrebleu

from _common import command, dev_sentences, machine, write_result

ORDER = ("greedy", "beam", "sample", "bank")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40, help="sentences per dev file")
    parser.add_argument("--offset", type=int, default=500, help="first line of each dev file used")
    parser.add_argument("--files", nargs="+", default=["dialogue_dev", "wikipedia_dev", "simple_wikipedia_dev"])
    args = parser.parse_args()

    from lightweight_decoder.decoders.hybrid import HybridConfig, HybridDecoder
    from lightweight_decoder.loading import load_decoder
    from lightweight_decoder.quality import RoundTrip, summarize

    phrase, encoder = load_decoder("phrase")
    generator, _ = load_decoder("generative", encoder=encoder)
    cfg = HybridConfig()
    hybrid = HybridDecoder(phrase, generator, encoder, cfg)  # its candidates(): the generator's texts as the pool asks
    k = cfg.judge_k
    pools = {  # name -> which candidates of a sentence it holds, given them by source in their order
        "greedy": lambda c: c["greedy"],
        f"{cfg.num_beams} beams": lambda c: c["beam"],
        f"bank top {k} + greedy": lambda c: c["bank"][:k] + c["greedy"],
        f"greedy + {cfg.num_beams} beams": lambda c: c["greedy"] + c["beam"],
        f"greedy + {cfg.num_beams} beams + bank top {k}": lambda c: c["greedy"] + c["beam"] + c["bank"][:k],
        f"all: bank top {cfg.bank_k}, greedy, {cfg.num_beams} beams, {cfg.num_samples} samples": lambda c: [t for s in ORDER for t in c[s]],
    }
    oracle = "all, the closest to the truth by sentence BLEU (no judge: what choosing could reach)"
    rows, picks = [], []
    for name in args.files:
        texts = dev_sentences(name + ".txt", n=args.offset + args.limit)[args.offset:]
        targets = encoder.encode(texts)
        chosen: dict[str, list[RoundTrip]] = {pool: [] for pool in [*pools, oracle]}
        won = dict.fromkeys(ORDER, 0)
        for reference, query in zip(texts, targets):
            cands = {
                "bank": [hit.text for hit in phrase.bank.search(query, k=cfg.bank_k)[0]],
                "greedy": hybrid.candidates(query, "greedy", 1),
                "beam": hybrid.candidates(query, "beam", cfg.num_beams),
                "sample": hybrid.candidates(query, "sample", cfg.num_samples),
            }
            unique = [t for t in dict.fromkeys(t for s in ORDER for t in cands[s]) if t.strip()]
            cosines = encoder.encode(unique, precision=cfg.judge_precision) @ query
            merits = cosines + cfg.fluency_weight * generator.log_likelihood(unique, query)
            score = {t: (float(m), float(c)) for t, m, c in zip(unique, merits, cosines)}
            for pool, members in pools.items():
                judged = [t for t in members(cands) if t in score]
                best = max(judged, key=lambda t: score[t][0]) if judged else ""
                chosen[pool].append(RoundTrip(reference, best, score[best][1] if judged else 0.0, 0.0))
            closest = max(unique, key=lambda t: sacrebleu.sentence_bleu(t, [reference]).score)
            chosen[oracle].append(RoundTrip(reference, closest, score[closest][1], 0.0))
            best = max(unique, key=lambda t: score[t][0])
            won[next(s for s in ORDER if best in cands[s])] += 1
        for pool, trips in chosen.items():
            summary = summarize(trips)
            rows.append({"file": f"{name}.txt", "pool": pool, **{m: summary[m] for m in ("n", "bleu", "exact_match", "token_f1", "cosine")}})
            print(rows[-1], flush=True)
        picks.append({"file": f"{name}.txt", "n": len(texts), **{f"picked_{s}": round(won[s] / len(texts), 3) for s in ORDER}})
        print(picks[-1], flush=True)
    path = write_result("hybrid_pool", {"command": command(), "machine": machine(), "limit": args.limit, "offset": args.offset,
                                        "fluency_weight": cfg.fluency_weight, "results": rows, "picks": picks})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
