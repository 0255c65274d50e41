"""Phrase bank: latency, recall@1 against exact search, memory at 10k / 100k / 1M entries, and quality
(BLEU, exact match, cosine) of PhraseBankDecoder on every shared/data/eval/*_dev.txt.

    python bench/phrasebank.py [--sizes 10000 100000 1000000] [--quality-limit 300] [--rerank-margins 0.02 0]

Greedy decoding is also measured at other ``rerank_margin`` values: how many near-tied hits of a compressed
bank are re-encoded to order them exactly trades latency for cosine.

Scale runs use real all-mpnet-base-v2 vectors from the corpus embedding cache; where the cache holds
fewer vectors than a size needs, the rest are perturbed copies of real vectors (each at cosine ~0.8 to
its source), which keeps the clustered structure real embeddings have. Queries are held-out dev
sentences. Exact search (Flat) is the baseline measured in the same run. Writes
bench/results/phrasebank.json; a part skipped (--skip-scale, --skip-quality) keeps the results it had there,
with the command and machine that measured them.
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import time

import numpy as np

from _common import REPO, RESULTS, command, dev_files, dev_sentences, machine, write_result


def default_cache() -> str:
    """The first all-mpnet-base-v2 embedding cache under the cache home (`bank build` and `train` write them)."""
    from lightweight_decoder.encoder import cache_home

    found = sorted(glob.glob(str(cache_home() / "embeddings" / "all-mpnet-base-v2-*")))
    if not found:
        raise SystemExit("no all-mpnet-base-v2 embedding cache: run `lightweight-decoder bank build` first or pass --cache")
    return found[0]


def scale_vectors(cache_dir: str | None, needed: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray, int]:
    """``needed`` texts and unit vectors: the cache's real ones first, then perturbed copies; and how many are real."""
    from lightweight_decoder.data import EmbeddingCache

    texts, vectors = EmbeddingCache.open(cache_dir or default_cache()).load(limit=needed)
    real = len(texts)
    vectors = vectors.astype(np.float32)
    if real < needed:  # perturbed copies of real vectors, cosine ~0.8 to their source
        extra = needed - real
        src = rng.integers(0, real, extra)
        noise = rng.standard_normal((extra, vectors.shape[1]), dtype=np.float32) * np.float32(0.027)
        synthetic = vectors[src] + noise
        synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
        vectors = np.concatenate([vectors, synthetic])
        texts = texts + [texts[i] for i in src]
    return texts, vectors, real


def measure_search(bank, queries: np.ndarray, truth: np.ndarray) -> dict:
    """Single-query ``PhraseBankDecoder.generate`` on each query (greedy, top-10, no cache, no re-encoding):
    p50 / p95 latency and recall@1, the share of queries whose top hit is ``truth`` (exact search's)."""
    from lightweight_decoder.config import PhraseDecoderConfig
    from lightweight_decoder.decoders import PhraseBankDecoder

    decoder = PhraseBankDecoder(bank, PhraseDecoderConfig(cache_size=0, top_k=10))
    ms, top1 = [], []
    for q in queries:
        t = time.perf_counter()
        result = decoder.generate(q)
        ms.append((time.perf_counter() - t) * 1000.0)
        top1.append(result.details["id"])
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "recall_at_1": round(float(np.mean(np.array(top1) == truth)), 4)}


def exact_top1(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Each query's nearest vector by inner product (exact search, the recall baseline)."""
    import faiss

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    return exact.search(queries, 1)[1][:, 0]


def scale(args: argparse.Namespace, encoder) -> list[dict]:
    from lightweight_decoder.config import PhraseBankConfig
    from lightweight_decoder.phrasebank import PhraseBank

    rng = np.random.default_rng(0)
    queries = encoder.encode(dev_sentences(n=args.queries), precision="auto")
    all_texts, all_vectors, real = scale_vectors(args.cache, max(args.sizes), rng)
    rows = []
    for size in args.sizes:
        texts, vectors = all_texts[:size], all_vectors[:size]
        truth = exact_top1(vectors, queries)
        nlist = {10_000: 128, 100_000: 512}.get(size, 1024)
        factories = ["Flat", "HNSW32", f"IVF{nlist},SQ8", f"IVF{nlist},PQ96"]
        if size > 200_000:
            factories.remove("HNSW32")  # building it takes longer than this benchmark's budget on 2 cores
        for factory in factories:
            start = time.perf_counter()
            bank = PhraseBank.from_vectors(texts, vectors, encoder_name=encoder.name,
                                           config=PhraseBankConfig(index_factory=factory, vector_dtype="none", nprobe=16, ef_search=128))
            build_s = time.perf_counter() - start
            row = {"size": size, "real_vectors": min(real, size), "index": factory, "build_s": round(build_s, 1),
                   **measure_search(bank, queries, truth), "memory_mb": round(bank.memory_bytes() / 2**20, 1)}
            rows.append(row)
            print(row, flush=True)
            del bank
            gc.collect()
    return rows


def quality(args: argparse.Namespace, encoder) -> list[dict]:
    from lightweight_decoder.config import PhraseDecoderConfig
    from lightweight_decoder.decoders import PhraseBankDecoder
    from lightweight_decoder.phrasebank import PhraseBank
    from lightweight_decoder.quality import roundtrip, summarize

    bank = PhraseBank.load(args.bank, encoder_name=encoder.name, dimension=encoder.dimension)
    rows = []
    files = [p.name for p in dev_files()]
    # (file, method, sentences, rerank_margin or None for the config's)
    plans = [(name, "greedy", args.quality_limit, None) for name in files]
    plans += [(name, "greedy", args.quality_limit, margin) for margin in args.rerank_margins for name in files]
    plans += [(name, "weighted", args.quality_limit, None) for name in files]
    plans.append(("wikipedia_dev.txt", "beam_search", args.beam_limit, None))
    for name, method, limit, margin in plans:
        config = PhraseDecoderConfig(method=method, **({} if margin is None else {"rerank_margin": margin}))
        decoder = PhraseBankDecoder(bank, config, encoder=encoder)
        texts = dev_sentences(name, n=limit)
        summary = summarize(list(roundtrip(texts, encoder, decoder.decode)))
        rows.append({"file": name, "method": method if margin is None else f"{method}, rerank_margin {margin}", **summary})
        print(rows[-1], flush=True)
    in_bank = [bank.texts[i] for i in np.random.default_rng(1).choice(len(bank), args.quality_limit, replace=False)]
    decoder = PhraseBankDecoder(bank, encoder=encoder)
    summary = summarize(list(roundtrip(in_bank, encoder, decoder.decode)))
    rows.append({"file": "sentences in the bank", "method": "greedy", **summary})
    print(rows[-1], flush=True)
    return rows


def _previous() -> dict:
    """The results this benchmark last wrote, or {}."""
    path = RESULTS / "phrasebank.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200, help="dev sentences used as latency/recall queries")
    parser.add_argument("--cache", help="embedding cache folder (default: the all-mpnet-base-v2 corpus cache)")
    parser.add_argument("--bank", default=str(REPO / "models" / "default" / "bank"))
    parser.add_argument("--quality-limit", type=int, default=300, help="sentences per dev file")
    parser.add_argument("--beam-limit", type=int, default=50, help="sentences for the slow beam_search method")
    parser.add_argument("--rerank-margins", type=float, nargs="*", default=[0.02, 0.0],
                        help="greedy again with these rerank_margin values (the default config's is measured anyway)")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()

    from lightweight_decoder.encoder import TextEncoder

    encoder = TextEncoder()
    stamp = {"command": command(), "machine": machine()}
    payload: dict = {**stamp, "measured": {}}
    previous = _previous()
    for part, skipped, run in (("quality", args.skip_quality, quality), ("scale", args.skip_scale, scale)):
        if not skipped:
            payload[part], payload["measured"][part] = run(args, encoder), stamp
        elif part in previous:  # a part not rerun keeps its last results, stamped with the run that measured them
            payload[part] = previous[part]
            payload["measured"][part] = previous.get("measured", {}).get(part) or {k: previous[k] for k in ("command", "machine")}
    path = write_result("phrasebank", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
