"""One process of bench/generative.py's speed measurement; not meant to be run by hand.

It imports lightweight_decoder from the source tree that PYTHONPATH names (not through bench/_common.py, which
would put this checkout's tree first), so that bench/generative.py can time the same weights under another
version of the code. It prints one JSON line.

    PYTHONPATH=SRC python bench/_generation_speed_child.py MODEL_DIR VECTORS.npy fp32|fp16|int8|numpy latency|rss

The variants: the saved fp32 weights, converted with ``--quantize fp16`` / ``--quantize int8``, and the fp32 weights
computed by the numpy runtime (``--runtime numpy``), which never imports torch.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

# how GenerativeDecoder.load builds each variant
LOAD_KWARGS = {"fp32": {}, "fp16": {"quantize": "fp16"}, "int8": {"quantize": "int8"}, "numpy": {"runtime": "numpy"}}


def _peak_rss_mb() -> float:
    """This process's peak resident set (MB). On Linux from VmHWM: ru_maxrss of a spawned child also counts
    the parent's resident set at fork time (the kernel keeps the pre-exec high-water mark)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ms_per_sentence(decoder, vectors: np.ndarray, batch: int, num_beams: int) -> float:
    start = time.perf_counter()
    if batch == 1:
        for v in vectors:
            decoder.generate(v, num_beams=num_beams)
    else:
        decoder.generate(vectors, batch_size=batch, num_beams=num_beams)
    return (time.perf_counter() - start) * 1000.0 / len(vectors)


def main() -> None:
    model, vectors_path, weights, what = sys.argv[1:5]
    vectors = np.load(vectors_path)
    import lightweight_decoder
    from lightweight_decoder.decoders.generative import GenerativeDecoder

    if weights != "numpy":
        import torch  # noqa: F401 - the torch runtime's first cost, counted with the imports

    after_imports = _peak_rss_mb()  # the package (and torch, for the torch runtime), before any model
    decoder = GenerativeDecoder.load(model, **LOAD_KWARGS[weights])
    if what == "rss":
        decoder.generate(vectors, batch_size=64)
        result: dict = {"imports_mb": round(after_imports, 1), "peak_mb": round(_peak_rss_mb(), 1)}
    else:
        decoder.generate(vectors[:2])  # first-call costs (allocations, lazy set-up) are not generation
        # the best of several repetitions (more for the short batch-64 runs): the machine's speed varies by the minute
        result = {"rows": [{"batch_size": b, "num_beams": nb,
                            "ms_per_sentence": min(_ms_per_sentence(decoder, vectors, b, nb) for _ in range(2 if b == 1 else 5))}
                           for b in (1, 64) for nb in ((1,) if weights == "numpy" else (1, 4))]}  # numpy: greedy only
    result["package"] = str(Path(lightweight_decoder.__file__).resolve().parent)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
