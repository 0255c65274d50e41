"""How far a compressed bank's approximate scores fall from the exact cosines: the margin the hybrid's fast path needs.

    python bench/approximate_scores.py [--limit 300] [--in-bank 300] [--k 10] [--seed 0] [--hybrid 100]
                                       [--margins 0.15 0.2 0.25 0.3]

The shipped bank keeps PQ codes, not vectors, so its search scores are approximations. The hybrid re-encodes the
bank's best hits before anything else only when the best approximate score comes within ``_APPROXIMATE_MARGIN`` of
``tau`` (a hit that may take the fast path, exact cosine >= tau); a hit whose approximate score falls further below
its exact cosine than the margin would miss the fast path. For the first ``--limit`` sentences of each held-out dev
file and for ``--in-bank`` sentences drawn from the bank itself (seeded; the queries a fast path is for), the bank's
top ``--k`` hits are re-encoded and their exact cosine to the query compared with the approximate score. Per query
set: the gap exact - approximate (mean, sd, 99th percentile, max), and for the in-bank queries the lowest approximate
score of a best hit whose exact cosine reaches ``tau``; and per margin (``--margins``), how many of those fall outside
it (``outside_<m>``: they miss the fast path's early judging) and the share of queries whose best hits are judged
first (``judged_first_<m>``: an encoder call before the generator's candidates; the hits it judges stay in the pool). Then the
hybrid, with its defaults, decodes the first ``--hybrid`` in-bank queries: how many come back exactly, how many by
the fast path, and the mean time. Writes bench/results/approximate_scores.json.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import REPO, command, dev_files, dev_sentences, machine, write_result


def _gaps(bank, encoder, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query vector's top-``k`` hits: approximate scores and exact cosines, both ``[n_queries, k]``."""
    hits = bank.search(vectors, k=k)
    texts = [h.text for row in hits for h in row]
    exact_vectors = encoder.encode(texts, precision="auto").reshape(len(vectors), k, -1)
    approx = np.array([[h.score for h in row] for row in hits], dtype=np.float32)
    exact = np.einsum("qkd,qd->qk", exact_vectors, vectors)
    return approx, exact


def _summary(name: str, approx: np.ndarray, exact: np.ndarray, tau: float, margins: list[float]) -> dict:
    gap = (exact - approx).ravel()
    best_reaching_tau = approx[:, 0][exact[:, 0] >= tau]
    return {"queries": name, "n": int(len(approx)), "hits": int(gap.size), "gap_mean": round(float(gap.mean()), 4),
            "gap_sd": round(float(gap.std()), 4), "gap_p99": round(float(np.percentile(gap, 99)), 4),
            "gap_max": round(float(gap.max()), 4),
            "best_hits_reaching_tau": int(len(best_reaching_tau)),
            "lowest_approx_of_those": round(float(best_reaching_tau.min()), 4) if len(best_reaching_tau) else None,
            **{f"outside_{m:g}": int((best_reaching_tau < tau - m).sum()) for m in margins},
            **{f"judged_first_{m:g}": round(float((approx[:, 0] >= tau - m).mean()), 4) for m in margins}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bank", default=str(REPO / "models" / "default" / "bank"))
    parser.add_argument("--limit", type=int, default=300, help="sentences per dev file")
    parser.add_argument("--in-bank", type=int, default=300, help="queries drawn from the bank's own texts")
    parser.add_argument("--k", type=int, default=10, help="hits per query (the hybrid's bank_k)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hybrid", type=int, default=100, help="in-bank queries the hybrid then decodes with its defaults")
    parser.add_argument("--margins", type=float, nargs="+", help="margins to report (default: the hybrid's, and 0.15 0.2 0.25 0.3)")
    args = parser.parse_args()

    from lightweight_decoder.decoders.hybrid import _APPROXIMATE_MARGIN, HybridConfig
    from lightweight_decoder.encoder import TextEncoder
    from lightweight_decoder.phrasebank import PhraseBank

    bank = PhraseBank.load(args.bank)
    encoder = TextEncoder(bank.encoder_name)
    tau = HybridConfig().tau
    margins = args.margins or sorted({_APPROXIMATE_MARGIN, 0.15, 0.2, 0.25, 0.3})
    rng = np.random.default_rng(args.seed)
    in_bank = [bank.texts[i] for i in rng.choice(len(bank.texts), size=args.in_bank, replace=False)]
    in_bank_vectors = encoder.encode(in_bank, precision="auto")
    sets = [(path.name, encoder.encode(dev_sentences(path.name, n=args.limit), precision="auto")) for path in dev_files()]
    sets.append(("in the bank", in_bank_vectors))
    rows = []
    for name, vectors in sets:
        approx, exact = _gaps(bank, encoder, vectors, args.k)
        rows.append(_summary(name, approx, exact, tau, margins))
        print(rows[-1], flush=True)
    # end to end: the hybrid with its defaults (its margin, a 1 s budget) on the first in-bank queries
    from lightweight_decoder.loading import load_decoder
    from lightweight_decoder.quality import exact_match

    hybrid, _ = load_decoder("hybrid", encoder=encoder)
    texts = in_bank[: args.hybrid]
    results = [hybrid.generate(v) for v in in_bank_vectors[: args.hybrid]]
    end_to_end = {"n": len(texts), "exact_match": round(sum(exact_match(r.text, t) for r, t in zip(results, texts)) / max(1, len(texts)), 4),
                  "fast_path": round(sum(r.details["route"] == "fast_path" for r in results) / max(1, len(texts)), 4),
                  "ms_per_sentence": round(float(np.mean([r.timings["total_ms"] for r in results])), 1)}
    print(end_to_end, flush=True)
    path = write_result("approximate_scores", {"command": command(), "machine": machine(), "bank": args.bank, "k": args.k,
                                               "tau": tau, "margin": _APPROXIMATE_MARGIN, "margins": margins, "results": rows,
                                               "hybrid_in_bank": end_to_end})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
