"""Helpers shared by the benchmark scripts: machine info, dev sentences, result files."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "src"))

FALLBACK_SENTENCES = [
    "The cat sat on the mat.",
    "The river flooded the village after three days of heavy rain.",
    "Can you book a table for two at an Italian restaurant tonight?",
    "She was elected to the city council in 1998.",
]


def machine() -> dict:
    import torch

    from lightweight_decoder.encoder import cpu_supports_bf16

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16": cpu_supports_bf16(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def rss_text(peak: float | dict) -> str:
    """``{"fp32": 336.1, "int8": 361.8}`` -> "336.1 MB (fp32), 361.8 MB (int8)"; older results hold one number."""
    return ", ".join(f"{mb} MB ({w})" for w, mb in peak.items()) if isinstance(peak, dict) else f"{peak} MB"


def latency_columns(rows: list[dict]) -> list[str]:
    """The generative latency table's columns; ``weights`` is there only in results written since ``--quantize``."""
    return [c for c in ("weights", "batch_size", "num_beams", "ms_per_sentence", "sentences_per_s") if c in rows[0]]


def speed_rows(speed: dict) -> tuple[list[dict], list[str]]:
    """bench/results/generative_speed.json's latency as table rows and columns: with one version of the code, ms and
    sentences/s per setting; with several (``--code``), one ms column per version and each one's speed-up over the last."""
    labels = [c["label"] for c in speed["code"]]
    if len(labels) == 1:
        return speed["latency"], latency_columns(speed["latency"])
    table: dict[tuple, dict] = {}
    for r in speed["latency"]:
        row = table.setdefault((r["weights"], r["batch_size"], r["num_beams"]),
                               {"weights": r["weights"], "batch_size": r["batch_size"], "num_beams": r["num_beams"]})
        row[f"ms {r['code']}"] = r["ms_per_sentence"]
    for row in table.values():
        for label in labels[:-1]:
            if f"ms {label}" in row and f"ms {labels[-1]}" in row:  # a variant older code cannot run has no speed-up
                row[f"speed-up {label}"] = f"{row[f'ms {labels[-1]}'] / row[f'ms {label}']:.2f}x"
    columns = ["weights", "batch_size", "num_beams", *(f"ms {label}" for label in labels), *(f"speed-up {label}" for label in labels[:-1])]
    return list(table.values()), columns


def numpy_variant_note(speed: dict) -> str:
    """What the ``numpy`` rows of a speed table are, when it has any ("" otherwise)."""
    if not any(r.get("weights") == "numpy" for r in speed["latency"]):
        return ""
    return "`numpy`: the fp32 weights computed by the numpy runtime (`--runtime numpy`: greedy only, torch never imported)."


def speed_rss_text(speed: dict) -> str:
    """The peak RSS of each version of the code, in words."""
    return "; ".join(f"{rss_text(peak)}; {speed['rss_mb_imports_only'][label]} MB of each torch one is importing torch and the package"
                     + (" (the numpy runtime never imports torch)" if isinstance(peak, dict) and "numpy" in peak else "")
                     + (f" (code {label})" if len(speed["code"]) > 1 else "")
                     for label, peak in speed["peak_rss_mb_decoder_only"].items())


def changed_generation(generation: dict) -> dict:
    """The generation settings that differ from GenerationConfig's defaults."""
    from lightweight_decoder.generation import GenerationConfig

    default = GenerationConfig().to_dict()
    return {k: v for k, v in generation.items() if v != default.get(k)}


def decoding_name(generation: dict) -> str:
    """Generation settings in words, e.g. "greedy, repetition_penalty 1.2": the strategy, then every field
    that differs from GenerationConfig's defaults."""
    changed = changed_generation(generation)
    beams, sampling = changed.pop("num_beams", 1), changed.pop("do_sample", False)
    name = f"beam {beams}" if beams > 1 else ("sampling" if sampling else "greedy")
    return ", ".join([name, *(f"{k} {v}" for k, v in changed.items())])


def mean_of(sources: list[dict]) -> str:
    """"A (0.5) + B (0.5)": the folders a mean was taken of (``averaged_from``), each with its weight."""
    return " + ".join(f"{s.get('path', 'a decoder in memory')} ({s['weight']:.2g})" for s in sources)


def best_time(fn, rounds: int, *, warm: bool = False) -> float:
    """The shortest of ``rounds`` timings of ``fn()``, in seconds; ``warm`` calls it once untimed first."""
    if warm:
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def command() -> str:
    """How this benchmark was run, as the results record it: ``python bench/<script>.py`` and its arguments."""
    return " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def dev_sentences(name: str = "wikipedia_dev.txt", n: int | None = None) -> list[str]:
    path = SHARED / "eval" / name
    if not path.exists():
        return FALLBACK_SENTENCES[: n or None]
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[:n] if n else lines


def dev_files(names: list[str] | None = None) -> list[Path]:
    """The dev files named (``wikipedia_dev`` or ``wikipedia_dev.txt``), or every ``*_dev.txt``."""
    if names:
        return [SHARED / "eval" / (name if name.endswith(".txt") else name + ".txt") for name in names]
    return sorted((SHARED / "eval").glob("*_dev.txt"))


def write_result(name: str, payload: dict) -> Path:
    from lightweight_decoder import _atomic

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    _atomic.write_json(path, payload)
    return path
