"""Why the numpy runtime's batch-1 step costs what it does: the weights it reads per token against the CPU's cache.

    python bench/working_set.py [--repeats 20]

Three measurements, each the best of ``--repeats`` timings in this process, with NumPy's default BLAS threads:

1. **matrix-vector products over a working set**: one row (1 x 256) times each of k distinct 256 x 1,024 fp32
   matrices (1 MiB each), for k from 2 to 48: the time, and so the bandwidth, as the set outgrows the cache;
2. **the shipped generator's step** (``NumpyPrefixLM.step``, one token at batch 1, position 9 of its cache, as
   in decoding) with its real weights, then with the same code on smaller working sets: every layer given the
   first layer's weights (one layer's 3.0 MiB instead of four's 12.1), and, besides, the output layer cut to
   its first 1,024 tokens (1 MiB instead of 8). The smaller variants compute nothing useful; they show how much
   of the step is reading weights from beyond the cache;
3. **half-precision weights in NumPy**: the output layer's product with the weights in fp32, in fp16 (NumPy has no
   fast half-precision product), and the cast of the fp16 weights to fp32 that a product in fp32 would need first.

Writes bench/results/working_set.json.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import REPO, best_time, command, machine, write_result


def products(repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    row = rng.standard_normal((1, 256), dtype=np.float32)
    out = []
    for mib in (2, 4, 8, 12, 16, 20, 24, 32, 48):
        matrices = [rng.standard_normal((256, 1024), dtype=np.float32) for _ in range(mib)]

        def run():
            for m in matrices:
                row @ m

        seconds = best_time(run, repeats, warm=True)
        out.append({"working_set_mib": mib, "us": round(seconds * 1e6), "gb_per_s": round(mib * 2**20 / seconds / 1e9, 1)})
        print(out[-1], flush=True)
    return out


def steps(model, repeats: int) -> list[dict]:
    cond = np.random.default_rng(0).standard_normal((1, model.config.embedding_dim), dtype=np.float32)
    cond /= np.linalg.norm(cond)
    state = model.conditioning(cond)
    _, cache = model.start(cond, state, 48)
    token = np.array([5])
    blocks, head = model.blocks, model.head
    tokens = 28  # a sentence's worth of tokens, each at the same position

    def run():
        for _ in range(tokens):
            cache.length = 9
            model.step(token, cache, state)

    out = []
    variants = [("the shipped weights", blocks, head), ("every layer with the first layer's weights", [blocks[0]] * len(blocks), head),
                ("the same, and the output layer cut to 1,024 tokens", [blocks[0]] * len(blocks), np.ascontiguousarray(head[:, :1024]))]
    for name, variant_blocks, variant_head in variants:
        model.blocks, model.head = variant_blocks, variant_head
        seconds = best_time(run, repeats, warm=True) / tokens
        weights = [w for block in model.blocks for w in block] + [model.head]
        distinct = {id(w): w.nbytes for w in weights}
        out.append({"weights": name, "read_per_step_mib": round(sum(w.nbytes for w in weights) / 2**20, 1),
                    "distinct_mib": round(sum(distinct.values()) / 2**20, 1), "us_per_step": round(seconds * 1e6)})
        print(out[-1], flush=True)
    model.blocks, model.head = blocks, head
    return out


def half_precision(model, repeats: int) -> list[dict]:
    head = model.head  # (256, 8192): the tied output layer, laid out for a row's product
    half = head.astype(np.float16)
    row = np.random.default_rng(0).standard_normal((1, head.shape[0]), dtype=np.float32)
    out = [{"operation": "row @ output layer, fp32 weights", "us": best_time(lambda: row @ head, repeats, warm=True)},
           {"operation": "row @ output layer, fp16 weights (fp16 product)", "us": best_time(lambda: row.astype(np.float16) @ half, max(2, repeats // 10), warm=True)},
           {"operation": "cast of the fp16 output layer to fp32", "us": best_time(lambda: half.astype(np.float32), repeats, warm=True)}]
    for item in out:
        item["us"] = round(item["us"] * 1e6)
        print(item, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    from lightweight_decoder.decoders.generative import GenerativeDecoder

    model = GenerativeDecoder.load(REPO / "models" / "default" / "generative", runtime="numpy").model
    write_result("working_set", {"command": command(), "machine": machine(), "products": products(args.repeats),
                                 "steps": steps(model, args.repeats), "half_precision": half_precision(model, args.repeats)})


if __name__ == "__main__":
    main()
