"""The ``lightweight-decoder`` command line. Every data command has ``--json``; ``-`` reads stdin."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import click
import numpy as np

from . import __version__
from .config import QUANTIZATION_SCHEMES, RUNTIMES, WEIGHT_FORMATS, ScreenTrainConfig
from .errors import DecoderError
from .loading import load_decoder, load_screen, read_vectors
from .train import TrainConfig  # a light module (torch is imported when training starts): its defaults are the CLI's

EXAMPLES = [
    "The cat sat on the mat.",
    "The river flooded the village after three days of heavy rain.",
    "Can you book a table for two at an Italian restaurant tonight?",
    "She was elected to the city council in 1998.",
]


class _FriendlyGroup(click.Group):
    """Turns library errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DecoderError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None


def _emit_json(obj: Any) -> None:
    """One line of strict JSON: a NaN or infinite number (a score nothing computed) is written as null."""
    click.echo(json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def _read_texts(texts: Sequence[str], input_file: str | None, limit: int | None = None) -> list[str]:
    """Texts from arguments, or one per line from a file or '-' (stdin)."""
    out = list(texts)
    if input_file is not None:
        with click.open_file(input_file, encoding="utf-8") as fh:  # '-' is stdin, left open
            out.extend(line.rstrip("\n") for line in fh if line.strip())
    if not out:
        raise click.UsageError("give texts as arguments, or --input FILE (use - for stdin)")
    return out[:limit] if limit is not None else out


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@click.group(cls=_FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lightweight-decoder")
@click.option("-v", "--verbose", is_flag=True, help="Log progress and details to stderr.")
@click.option("--threads", type=click.IntRange(min=1), envvar="LIGHTWEIGHT_DECODER_THREADS", show_envvar=True,
              help="CPU threads for torch and for NumPy's BLAS (default: one per core). 1 is faster when other programs keep "
                   "the cores busy (generation 1.1-2.5x faster in bench/threads.py); alone, one per core is faster at batch 64.")
def main(verbose: bool, threads: int | None) -> None:
    """Turn sentence embeddings back into text, on a CPU.

    \b
    Example:
      lightweight-decoder encode "The cat sat on the mat." --json
      lightweight-decoder --threads 1 decode vectors.npy   # on a machine other programs keep busy
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _setup_logging(verbose)
    if threads is not None:
        from .threads import set_threads

        set_threads(threads)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(as_json: bool) -> None:
    """Versions, model and cache paths, CPU features.

    \b
    Example:
      lightweight-decoder info --json
    """
    import importlib.metadata as md

    from .encoder import cache_home, cpu_supports_bf16, known_models, resolve_precision
    from .paths import default_paths
    from .threads import thread_counts

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    home = cache_home()
    default_model = home / "models" / "all-mpnet-base-v2"
    report = {
        "lightweight_decoder": __version__,
        "python": sys.version.split()[0],
        "versions": {p: version(p) for p in ("torch", "sentence-transformers", "transformers", "faiss-cpu", "numpy", "tokenizers")},
        "cache_home": str(home),
        "default_encoder": {"name": "all-mpnet-base-v2", "path": str(default_model), "unpacked": (default_model / ".complete").exists()},
        "known_encoders": known_models(),
        "cpu_bf16": cpu_supports_bf16(),
        "auto_precision": resolve_precision("auto"),
        "cpu_count": os.cpu_count(),
        **{f"{pool}_threads": count for pool, count in thread_counts().items()},
        "shipped": {k: {"path": str(v), "present": v.exists()} for k, v in default_paths().items()},
    }
    report.update(_shipped_details())
    if as_json:
        _emit_json(report)
        return
    click.echo(f"lightweight-decoder {report['lightweight_decoder']} (Python {report['python']})")
    for pkg, ver in report["versions"].items():
        click.echo(f"  {pkg:<22} {ver}")
    click.echo(f"cache home             {report['cache_home']}")
    enc = report["default_encoder"]
    click.echo(f"default encoder        {enc['name']} at {enc['path']} ({'unpacked' if enc['unpacked'] else 'unpacked on first use'})")
    click.echo(f"known encoders         {', '.join(f'{k} ({v}-D)' for k, v in report['known_encoders'].items())}")
    click.echo(f"CPU bf16 instructions  {'yes' if report['cpu_bf16'] else 'no'} ({report['cpu_count']} cores; "
               f"precision auto -> {report['auto_precision']})")
    click.echo(f"threads                torch {report['torch_threads']}, NumPy BLAS {report['blas_threads']} "
               "(--threads or LIGHTWEIGHT_DECODER_THREADS)")
    for name, item in report["shipped"].items():
        click.echo(f"shipped {name:<14} {item['path']} ({'present' if item['present'] else 'missing'})")
    if "bank_entries" in report:
        click.echo(f"{'bank entries':<22} {report['bank_entries']:,}")
    if "generative_parameters" in report:
        click.echo(f"{'generative parameters':<22} {report['generative_parameters']:,} ({report['generative_weights']} weights on disk)")
    if "screen_dev_cosine" in report:
        click.echo(f"{'screen cosine':<22} {report['screen_dev_cosine']:.3f} to the encoder on held-out sentences")


def _shipped_details() -> dict[str, Any]:
    """Sizes of the shipped artifacts, and the generator's stored weight format, read from their config.json
    files (no model is loaded)."""
    from .paths import default_paths

    details: dict[str, Any] = {}
    readers = (("bank", "bank_entries", lambda m: int(m["size"])), ("generative", "generative_parameters", lambda m: int(m["parameters"])),
               ("screen", "screen_dev_cosine", lambda m: float(m["metrics"]["dev_cosine"])))
    for name, key, read in readers:
        config = default_paths()[name] / "config.json"
        try:
            meta = json.loads(config.read_text())
            details[key] = read(meta)
        except (ValueError, KeyError, TypeError, OSError):
            continue
        if name == "generative":
            details["generative_weights"] = meta.get("weights", "fp32")  # folders saved before the field hold fp32
    return details


@main.command()
@click.argument("texts", nargs=-1)
@click.option("-i", "--input", "input_file", type=click.Path(allow_dash=True, dir_okay=False), help="A file with one text per line; - for stdin.")
@click.option("-m", "--model", default="all-mpnet-base-v2", show_default=True, help="Encoder name or folder.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="fp32", show_default=True, help="auto: bf16 only on CPUs with bf16 instructions.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"text": ..., "embedding": [...]} per text as JSON lines.')
@click.option("--out", type=click.Path(dir_okay=False), help="Write an [N, D] float32 array to this .npy file.")
def encode(texts: tuple[str, ...], input_file: str | None, model: str, precision: str, batch_size: int, as_json: bool, out: str | None) -> None:
    """Encode texts into embeddings (Module 1).

    \b
    Examples:
      lightweight-decoder encode "The cat sat on the mat." --json
      lightweight-decoder encode --input sentences.txt --out vectors.npy
    """
    from . import _atomic
    from .encoder import TextEncoder

    items = _read_texts(texts, input_file)
    encoder = TextEncoder(model)
    vectors = encoder.encode(items, batch_size=batch_size, precision=precision)
    if out:
        with _atomic.atomic_path(out) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, vectors, allow_pickle=False)
    if as_json:
        for text, vec in zip(items, vectors):
            _emit_json({"text": text, "embedding": [round(float(x), 7) for x in vec]})
    elif out:
        click.echo(f"wrote {vectors.shape[0]} x {vectors.shape[1]} float32 embeddings ({encoder.name}) to {out}")
    else:
        for text, vec in zip(items, vectors):
            head = ", ".join(f"{x:+.4f}" for x in vec[:4])
            click.echo(f"{encoder.name} {vec.shape[0]}-D |v|={np.linalg.norm(vec):.3f} [{head}, ...]  {text}")



# ---- phrase banks --------------------------------------------------------------------------------
@main.group()
def bank() -> None:
    """Build and inspect phrase banks.

    \b
    Example:
      lightweight-decoder bank build --corpus sentences.txt --out my-bank --limit 100000
    """


def _embedded_corpus(corpus: Sequence[str], encoder: Any, options: dict[str, Any], *, limit: int | None, offset: int = 0,
                     cache_dir: str | None, precision: str, batch_size: int = 64) -> tuple[list[str], np.ndarray]:
    """The cleaned, shuffled texts of ``corpus`` (``offset`` and ``limit`` applied) and their vectors,
    embedded through the resumable cache (with a progress bar)."""
    from .data import EmbeddingCache, default_cache_dir, prepare_corpus

    texts = prepare_corpus(list(corpus), **options, limit=limit, offset=offset)
    click.echo(f"{len(texts):,} texts after cleaning and deduplication" + (f" (from text {offset:,} of the shuffle)" if offset else ""), err=True)
    # a cache holds one text list: an offset gives another list, hence another folder (offset 0 keeps the old keys)
    key = {**options, "offset": offset} if offset else options
    cache_path = cache_dir or default_cache_dir(list(corpus), encoder.name, precision, **key)
    cache = EmbeddingCache(cache_path, encoder_name=encoder.name, dimension=encoder.dimension, precision=precision)
    click.echo(f"embedding cache: {cache_path} ({cache.count():,} done)", err=True)
    cache.build(texts, encoder, batch_size=batch_size)
    return cache.load(limit=len(texts))


@bank.command("build")
@click.option("--corpus", "corpus", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False), help="Text file(s): .txt, .txt.gz, .jsonl; repeatable.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write the bank to (replaced atomically).")
@click.option("--limit", type=click.IntRange(min=1), help="Keep the first N texts of the seeded shuffle.")
@click.option("--index", "index_factory", default="Flat", show_default=True, help='faiss factory string: "Flat", "HNSW32", "IVF1024,PQ96", ...')
@click.option("--vector-dtype", type=click.Choice(["float16", "float32", "none"]), default="float16", show_default=True, help="Keep vectors for exact re-scoring, or only the index.")
@click.option("-m", "--model", default="all-mpnet-base-v2", show_default=True, help="Encoder name or folder.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True, help="Encoding precision for the corpus (auto: bf16 only on CPUs with bf16 instructions).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), help="Embedding cache folder (default: under the cache home, keyed by corpus and options).")
@click.option("--split-sentences", is_flag=True, help="Split each line into sentences first.")
@click.option("--min-words", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max-words", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffle seed (the cache is reused across --limit values).")
@click.option("--nprobe", type=click.IntRange(min=1), default=16, show_default=True, help="IVF lists probed per query.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
def bank_build(corpus: tuple[str, ...], out: str, limit: int | None, index_factory: str, vector_dtype: str, model: str, precision: str,
               cache_dir: str | None, split_sentences: bool, min_words: int, max_words: int, seed: int, nprobe: int, batch_size: int) -> None:
    """Embed a corpus (resumable, with progress) and index it as a bank folder.

    \b
    Example:
      lightweight-decoder bank build --corpus a.txt.gz --corpus b.txt --out bank --limit 200000 --index "IVF1024,PQ96"
    """
    from .config import PhraseBankConfig
    from .encoder import TextEncoder, resolve_precision
    from .phrasebank import PhraseBank

    precision = resolve_precision(precision)  # recorded in the bank's metadata as the precision used
    config = PhraseBankConfig(index_factory=index_factory, vector_dtype=vector_dtype, nprobe=nprobe)
    options = {"split": split_sentences, "min_words": min_words, "max_words": max_words, "dedupe": True, "seed": seed}
    encoder = TextEncoder(model)
    texts, vectors = _embedded_corpus(corpus, encoder, options, limit=limit, cache_dir=cache_dir, precision=precision,
                                      batch_size=batch_size)
    built = PhraseBank.from_vectors(
        texts, vectors, encoder_name=encoder.name, config=config,
        metadata={"corpus": [Path(c).name for c in corpus], "limit": limit, "precision": precision, **options},
    )
    built.save(out)
    click.echo(f"wrote {len(built):,} entries ({encoder.name}, {encoder.dimension}-D, {index_factory}) to {out}", err=True)


@bank.command("add")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--corpus", "corpus", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False), help="Text file(s): .txt, .txt.gz, .jsonl; repeatable.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Skip the first N texts of the seeded shuffle (e.g. those the bank was built from).")
@click.option("--limit", type=click.IntRange(min=1), help="Add at most N texts (counted from --offset).")
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffle seed.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True, help="Encoding precision for the corpus.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), help="Embedding cache folder (default: under the cache home, keyed by corpus and options).")
@click.option("-m", "--model", help="Encoder name or folder (default: the one the bank was built with).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
def bank_add(path: str, corpus: tuple[str, ...], offset: int, limit: int | None, seed: int, precision: str, cache_dir: str | None,
             model: str | None, batch_size: int) -> None:
    """Embed more texts (resumable, with progress) and add them to a bank; the folder is replaced atomically.

    The corpus is cleaned as the bank's was (sentence splitting and word limits from its metadata) and
    shuffled with --seed. Texts the bank already holds are skipped. A trained index (IVF, PQ) is not
    retrained: new entries are encoded with the codebooks it has. The bank's metadata records each addition.

    \b
    Example (continue the shipped bank's own corpus order where it stopped):
      lightweight-decoder bank add models/default/bank --corpus a.txt.gz --offset 167936 --limit 50000
    """
    from .encoder import TextEncoder, resolve_precision
    from .phrasebank import PhraseBank

    target = PhraseBank.load(path)
    encoder = TextEncoder(model or target.encoder_name)
    target.check_encoder(encoder)  # its vectors must live in the bank's space
    precision = resolve_precision(precision)
    # cleaned as the bank's own corpus was (its metadata records how), so --offset continues the same order
    built_with = {"split": False, "min_words": 1, "max_words": 64, **target.metadata}
    options = {"split": built_with["split"], "min_words": built_with["min_words"], "max_words": built_with["max_words"],
               "dedupe": True, "seed": seed}
    texts, vectors = _embedded_corpus(corpus, encoder, options, limit=limit, offset=offset, cache_dir=cache_dir,
                                      precision=precision, batch_size=batch_size)
    held = set(target.texts)
    new = [i for i, t in enumerate(texts) if t not in held]
    if new:
        target.add([texts[i] for i in new], vectors[new])
    additions = target.metadata.setdefault("additions", [])
    additions.append({"corpus": [Path(c).name for c in corpus], "seed": seed, "offset": offset, "limit": limit,
                      "added": len(new), "skipped_duplicates": len(texts) - len(new), "precision": precision})
    target.save(path)
    click.echo(f"added {len(new):,} entries ({len(texts) - len(new):,} already there); {path} now holds {len(target):,}", err=True)


@bank.command("info")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
def bank_info(path: str) -> None:
    """Print a bank's config.json summary as JSON.

    \b
    Example:
      lightweight-decoder bank info models/default/bank
    """
    meta = json.loads((Path(path) / "config.json").read_text())
    meta["disk_bytes"] = sum(f["bytes"] for f in meta.get("files", {}).values())
    _emit_json(meta)


# ---- training ------------------------------------------------------------------------------------
@main.command("train")
@click.option("--corpus", "corpus", multiple=True, type=click.Path(exists=True, dir_okay=False), help="Text file(s): .txt, .txt.gz, .jsonl; repeatable.")
@click.option("--bank", "banks", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Also train on a phrase bank's texts and the vectors it holds (no re-encoding); repeatable.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Training folder (decoder/, checkpoint/, train_log.jsonl); resumes if present.")
@click.option("--preset", type=click.Choice(["tiny", "small", "base"]), default="small", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps (the schedule length).")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), help="Stop after this many minutes; without --steps, the learning-rate schedule is fitted to end then (refitted at every step from the recent step time).")
@click.option("--encoder", "model", default="all-mpnet-base-v2", show_default=True, help="Encoder name or folder; the decoder learns its embeddings.")
@click.option("--limit", type=click.IntRange(min=1), help="Train on the first N texts of the seeded shuffle.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Skip the first N texts of the seeded shuffle (--limit counts from there).")
@click.option("--dev", "dev_file", type=click.Path(exists=True, dir_okay=False), help="Dev sentences for periodic BLEU / exact match / cosine.")
@click.option("--batch-size", type=click.IntRange(min=1), default=TrainConfig.batch_size, show_default=True)
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True)
@click.option("--eval-every", type=click.IntRange(min=1), default=TrainConfig.eval_every, show_default=True)
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), help="Embedding cache folder (default: under the cache home).")
@click.option("--init", "init_from", type=click.Path(exists=True, file_okay=False),
              help="Start from this decoder's weights, tokenizer and decoding defaults (e.g. models/default/generative) instead of a new --preset model.")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=TrainConfig.warmup_steps, show_default=True)
@click.option("--schedule", type=click.Choice(["wsd", "cosine"]), default=TrainConfig.schedule, show_default=True,
              help="Learning rate after warm-up. wsd: constant, then a cosine decay over the last --decay-fraction of the run; cosine: a cosine decay over the whole run.")
@click.option("--decay-fraction", type=click.FloatRange(0, 1), default=TrainConfig.decay_fraction, show_default=True,
              help="With --schedule wsd: the share of the run, at its end, over which the rate decays to a tenth of --lr.")
@click.option("--curriculum-steps", type=click.IntRange(min=0), default=TrainConfig.curriculum_steps, show_default=True, help="Steps over which the allowed length grows (0: none).")
@click.option("--corpus-seed", type=int, default=0, show_default=True,
              help="Shuffle seed of the corpus (--limit takes the first N; another seed gives other sentences and its own cache).")
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True, help="Training seed (initialisation, batches, noise).")
@click.option("--adaln/--no-adaln", "adaln", default=None,
              help="Per-layer scale/shift conditioning from the embedding (adaptive norm). With --init it is added "
                   "zero-initialised, so training continues from the same function. Default: as the preset or --init decoder.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True),
              help="Dropout on attention weights and MLP outputs while training (against memorising a small corpus). "
                   "Default: as the preset or --init decoder (0).")
@click.option("--layers", type=click.IntRange(min=1),
              help="Transformer layers. With --init it may only grow: the new layers are inserted between the old ones "
                   "as copies with zeroed output projections, so training continues from the same function with more "
                   "capacity. Default: as the preset or --init decoder.")
@click.option("--memory-len", type=click.IntRange(min=0),
              help="Token slots for candidate words retrieved from a phrase bank (the word pieces of its nearest texts), "
                   "read before the prefix. With --init they are added to the decoder. 0: none. Default: as the preset or --init decoder.")
@click.option("--memory-bank", type=click.Path(exists=True, file_okay=False),
              help="The phrase bank the memory is retrieved from, when training and when decoding (the decoder names it). "
                   "Default: the --init decoder's, else the shipped bank.")
@click.option("--memory-neighbours", type=click.IntRange(min=1), help="How many of the bank's nearest texts fill the memory (default 8).")
@click.option("--memory-dropout", type=click.FloatRange(0, 1), default=TrainConfig.memory_dropout, show_default=True,
              help="Share of training sentences whose memory is left empty, so that the decoder also writes without a bank.")
@click.option("--noise-std", type=click.FloatRange(0, 1), default=TrainConfig.noise_std, show_default=True,
              help="Gaussian noise on the input embeddings, relative size drawn up to this per sentence (0: none).")
@click.option("--weights", type=click.Choice(WEIGHT_FORMATS), default="fp32", show_default=True,
              help="How the trained decoder stores its weights: fp16 is half the size on disk (loaded as fp32; checkpoints stay fp32).")
def train_cmd(corpus: tuple[str, ...], banks: tuple[str, ...], out: str, preset: str, steps: int | None, minutes: float | None, model: str,
              limit: int | None, offset: int, dev_file: str | None, batch_size: int, lr: float, eval_every: int, cache_dir: str | None,
              init_from: str | None, warmup_steps: int, schedule: str, decay_fraction: float, curriculum_steps: int, corpus_seed: int, seed: int, adaln: bool | None,
              dropout: float | None, layers: int | None, memory_len: int | None, memory_bank: str | None, memory_neighbours: int | None,
              memory_dropout: float, noise_std: float, weights: str) -> None:
    """Train a generative decoder for an encoder from text files (embeds them first, resumably) or banks.

    A bank that keeps no vectors gives the ones its index decodes (approximate for PQ); their cosine to
    fresh encodings is measured on a sample and printed.

    \b
    Example:
      lightweight-decoder train --corpus sentences.txt --out my-decoder --preset small --minutes 30 --dev dev.txt
      lightweight-decoder train --corpus mine.txt --out tuned --init models/default/generative --steps 2000
      lightweight-decoder train --corpus mine.txt --out deeper --init models/default/generative --layers 8 --steps 2000
      lightweight-decoder train --corpus mine.txt --out reader --init models/default/generative --memory-len 64 --steps 2000
      lightweight-decoder train --bank my-bank --out from-bank --minutes 60
    """
    from .encoder import TextEncoder
    from .model import ModelConfig
    from .train import train

    if steps is None and minutes is None:
        raise click.UsageError("give --steps or --minutes")
    if not corpus and not banks:
        raise click.UsageError("give --corpus FILE or --bank DIR (or both)")
    encoder = TextEncoder(model)
    texts: list[str] = []
    parts: list[np.ndarray] = []
    sources: list[dict[str, Any]] = []
    if corpus:
        options = {"split": False, "min_words": 1, "max_words": 64, "dedupe": True, "seed": corpus_seed}
        corpus_texts, corpus_vectors = _embedded_corpus(corpus, encoder, options, limit=limit, offset=offset, cache_dir=cache_dir,
                                                        precision="auto")
        texts, parts = list(corpus_texts), [corpus_vectors]
        sources.append({"corpus": [Path(c).name for c in corpus], "seed": corpus_seed, "offset": offset, "texts": len(corpus_texts)})
    for bank_dir in banks:
        bank_texts, bank_vectors, source = _bank_training_pairs(bank_dir, encoder, skip=set(texts))
        texts.extend(bank_texts)
        parts.append(bank_vectors)
        sources.append(source)
    vectors = np.concatenate(parts) if len(parts) > 1 else parts[0]
    dev_texts = dev_vectors = None
    if dev_file:
        dev_texts = _read_texts((), dev_file)[:200]
        dev_vectors = encoder.encode(dev_texts, precision="auto")
    config = TrainConfig(steps=steps, minutes=minutes, batch_size=batch_size, lr=lr, eval_every=eval_every,
                         checkpoint_every=eval_every, warmup_steps=warmup_steps, schedule=schedule,
                         decay_fraction=decay_fraction, curriculum_steps=curriculum_steps, seed=seed,
                         noise_std=noise_std, memory_dropout=memory_dropout)
    # an --init decoder trained before injection existed gains it (zero-initialised) with the current loss weights
    overrides: dict[str, Any] = {"cond_inject": True, "bow_loss_weight": ModelConfig().bow_loss_weight} if init_from else {}
    if adaln is not None:
        overrides["cond_adaln"] = adaln
    if dropout is not None:
        overrides["dropout"] = dropout
    if layers is not None:
        overrides["n_layer"] = layers
    if memory_len is not None:
        overrides["memory_len"] = memory_len
    memory = None
    if memory_bank is not None or memory_neighbours is not None:
        from .memory import MemoryConfig

        memory = MemoryConfig(bank=MemoryConfig.bank_name(memory_bank), **({"neighbours": memory_neighbours} if memory_neighbours else {}))
    decoder = train(out, texts, vectors, encoder_name=encoder.name, preset=preset, train_config=config, model_overrides=overrides or None,
                    dev_texts=dev_texts, dev_vectors=dev_vectors, encoder=encoder, init_from=init_from, data_sources=sources,
                    weights=weights, memory=memory)
    click.echo(f"trained {decoder.num_parameters:,}-parameter decoder; saved to {Path(out) / 'decoder'}", err=True)
    log_path = Path(out) / "train_log.jsonl"
    last = json.loads(log_path.read_text(encoding="utf-8").splitlines()[-1]) if log_path.exists() else {}
    if "bleu" in last:  # the run's final dev evaluation
        scores = ", ".join(f"{name} {last[key]:.{digits}f}" for key, name, digits in
                           (("bleu", "BLEU", 2), ("exact_match", "exact match", 3), ("cosine", "cosine", 3), ("nll", "nll", 3)) if key in last)
        click.echo(f"step {last['step']}, {last['elapsed_s'] / 60:.1f} min of training; on {len(dev_texts or ())} lines of "
                   f"{dev_file}: {scores} (greedy; nll in nats/token; every evaluation: {log_path})", err=True)


def _bank_training_pairs(path: str, encoder: Any, *, skip: set[str], sample: int = 64) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """A bank's texts (minus ``skip``) with its vectors as float16, and a record of where they came from.

    Vectors decoded from a compressed index are approximate: their mean cosine to fresh encodings of
    ``sample`` entries is measured, so a run's metadata says how close its training inputs were."""
    from .phrasebank import PhraseBank

    bank = PhraseBank.load(path, encoder_name=encoder.name, dimension=encoder.dimension)
    keep = [i for i, t in enumerate(bank.texts) if t not in skip]
    vectors = np.empty((len(keep), bank.dimension), np.float16)
    step = 8192
    for start in range(0, len(keep), step):  # in slices: a float32 copy of a large bank need not exist at once
        vectors[start:start + step] = bank.vector(keep[start:start + step])
    exact = bank.vectors_exact
    source: dict[str, Any] = {"bank": Path(path).name, "index": bank.config.index_factory, "texts": len(keep),
                              "vectors": "exact" if exact else "reconstructed"}
    if not exact and keep:
        pick = np.random.default_rng(0).choice(len(keep), min(sample, len(keep)), replace=False)
        fresh = encoder.encode([bank.texts[keep[i]] for i in pick], precision="auto")
        source["cosine_to_fresh"] = round(float(np.mean(np.sum(fresh * vectors[pick].astype(np.float32), axis=1))), 4)
        click.echo(f"{path}: {len(keep):,} texts with vectors decoded from its {bank.config.index_factory} index "
                   f"(mean cosine {source['cosine_to_fresh']:.3f} to fresh encodings of {len(pick)} of them)", err=True)
    return [bank.texts[i] for i in keep], vectors, source


@main.group()
def screen() -> None:
    """Train the embedding screen: a bag-of-tokens stand-in for an encoder that ranks the hybrid's edits.

    \b
    Example:
      lightweight-decoder screen train --corpus sentences.txt --out my-screen --limit 100000
    """


@screen.command("train")
@click.option("--corpus", "corpus", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False), help="Text file(s): .txt, .txt.gz, .jsonl; repeatable.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the screen (written atomically).")
@click.option("-m", "--model", default="all-mpnet-base-v2", show_default=True, help="Encoder name or folder; the screen learns its embeddings.")
@click.option("--limit", type=click.IntRange(min=1), help="Train on the first N texts of the seeded shuffle.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Skip the first N texts of the seeded shuffle.")
@click.option("--corpus-seed", type=int, default=0, show_default=True, help="Shuffle seed of the corpus (shares the embedding cache of `train` with the same seed).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), help="Embedding cache folder (default: under the cache home).")
@click.option("--rank", type=click.IntRange(min=1), default=ScreenTrainConfig.rank, show_default=True, help="Size of a token vector.")
@click.option("--epochs", type=click.IntRange(min=1), default=ScreenTrainConfig.epochs, show_default=True)
@click.option("--seed", type=int, default=ScreenTrainConfig.seed, show_default=True)
def screen_train(corpus: tuple[str, ...], out: str, model: str, limit: int | None, offset: int, corpus_seed: int, cache_dir: str | None,
                 rank: int, epochs: int, seed: int) -> None:
    """Embed a corpus (resumable, shared with `train`) and fit a screen to the encoder; print its held-out cosine.

    \b
    Example:
      lightweight-decoder screen train --corpus sentences.txt --out my-screen --limit 100000
      lightweight-decoder decode --text "A cat sat." --decoder hybrid --screen my-screen
    """
    from .encoder import TextEncoder
    from .screen import encoder_tokenizer, train_screen

    encoder = TextEncoder(model)
    options = {"split": False, "min_words": 1, "max_words": 64, "dedupe": True, "seed": corpus_seed}
    texts, vectors = _embedded_corpus(corpus, encoder, options, limit=limit, offset=offset, cache_dir=cache_dir, precision="auto")
    config = ScreenTrainConfig(rank=rank, epochs=epochs, seed=seed)
    trained = train_screen(texts, vectors, encoder_tokenizer(encoder), encoder_name=encoder.name, config=config)
    trained.metrics["data"] = {"corpus": [Path(c).name for c in corpus], "seed": corpus_seed, "offset": offset, "texts": len(texts)}
    trained.save(out)
    click.echo(f"screen: cosine {trained.metrics['dev_cosine']:.4f} to {encoder.name} on {trained.metrics['dev_texts']:,} held-out texts; "
               f"saved to {out}", err=True)


# ---- Module 2 ------------------------------------------------------------------------------------
@main.group()
def core() -> None:
    """Train and inspect Module 2, the cubic lattice core.

    \b
    Example:
      lightweight-decoder core train --pairs pairs.tsv --out my-core --epochs 20
    """


@core.command("train")
@click.option("--pairs", required=True, type=click.Path(exists=True, dir_okay=False), help="TSV: source<TAB>target per line.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the trained core (written atomically).")
@click.option("--mode", type=click.Choice(["transform", "autoencoder"]), default="transform", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--steps", "lattice_steps", type=click.IntRange(min=0), default=4, show_default=True, help="Lattice update steps T.")
@click.option("--channels", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--encoder", "model", default="all-mpnet-base-v2", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the held-out metrics as JSON.")
def core_train(pairs: str, out: str, mode: str, epochs: int, lattice_steps: int, channels: int, model: str, seed: int, as_json: bool) -> None:
    """Train a core on text pairs; report held-out cosine against the untrained baseline.

    \b
    Example:
      lightweight-decoder core train --pairs questions_answers.tsv --out qa-core
    """
    from .cubic_core import CubicCoreConfig, read_pairs, train_core
    from .encoder import TextEncoder

    sources, targets = read_pairs(pairs)
    encoder = TextEncoder(model)
    src = encoder.encode(sources, precision="auto")
    tgt = encoder.encode(targets, precision="auto") if mode == "transform" else None
    config = CubicCoreConfig(dimension=encoder.dimension, channels=channels, steps=lattice_steps, mode=mode)
    trained = train_core(src, tgt, config, epochs=epochs, seed=seed, checkpoint=Path(out).with_name(Path(out).name + ".checkpoint"))
    trained.save(out, encoder_name=encoder.name)
    if as_json:
        _emit_json(trained.metrics)
    else:
        m = trained.metrics
        click.echo(f"held-out cosine to target: untrained (identity) {m['heldout_baseline_cosine']:.4f} -> trained {m['heldout_trained_cosine']:.4f} "
                   f"({m['heldout_pairs']} pairs); saved to {out}")


# ---- decoding ------------------------------------------------------------------------------------
_NPROBE_HELP = "IVF lists a bank search visits (default from the bank; more: higher recall, slower)."
_QUANTIZE_HELP = ("Generative and hybrid: the generator's weights in fp16 (faster, the fp32 text for ~99% of sentences) or int8 "
                  "(a little faster again; the text differs, the same quality on average). bench/generative.py measures them.")

_RUNTIME_HELP = ("Generative: compute with torch (every decoding strategy) or NumPy alone (greedy only; faster at batch 1, "
                 "and without torch's memory). bench/generative.py measures both.")


def _decoder_options(func: Any) -> Any:
    options = [
        click.option("--decoder", "kind", type=click.Choice(["phrase", "generative", "hybrid"]), default="phrase", show_default=True),
        click.option("--bank", "bank_path", type=click.Path(file_okay=False), help="Phrase bank folder (default: the shipped bank)."),
        click.option("--generative", "generative_path", type=click.Path(file_okay=False), help="Generative decoder (or training) folder (default: the shipped model)."),
        click.option("--method", type=click.Choice(["greedy", "weighted", "beam_search", "context_aware"]), help="Phrase assembly method (default from the config)."),
        click.option("--top-k", type=click.IntRange(min=1), help="Bank candidates considered."),
        click.option("--nprobe", type=click.IntRange(min=1), help=_NPROBE_HELP),
        click.option("--num-beams", type=click.IntRange(min=1), help="Generative: beam width (1 = greedy)."),
        click.option("--quantize", type=click.Choice(QUANTIZATION_SCHEMES), help=_QUANTIZE_HELP),
        click.option("--runtime", type=click.Choice(RUNTIMES), default="torch", show_default=True, help=_RUNTIME_HELP),
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                     help="Decoder config JSON: PhraseDecoderConfig (phrase), GenerationConfig (generative) or HybridConfig (hybrid) fields."),
        click.option("-m", "--model", help="Encoder name or folder (default: the one the bank or model was built with)."),
        click.option("--screen", "screen_path", type=click.Path(file_okay=False),
                     help="Hybrid: the embedding screen that ranks its edits (default: the shipped one, when it fits the encoder)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@click.argument("vectors", required=False, type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--text", "texts", multiple=True, help="Encode this text first, then decode its vector; repeatable.")
@_decoder_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per vector (text, score, candidates, timings; "
              "the hybrid's details: route, steps, encoder calls, cosine per step, ...).")
@click.option("--no-rescore", is_flag=True, help="Generative, vectors in: do not re-encode the outputs to score them, so no "
              "encoder is loaded (and with --runtime numpy, no torch); scores are then null.")
def decode(vectors: str | None, texts: tuple[str, ...], as_json: bool, no_rescore: bool, **decoder_args: Any) -> None:
    """Decode embeddings (.npy, JSON lines, or - for stdin) into text.

    \b
    Examples:
      lightweight-decoder decode vectors.npy
      lightweight-decoder encode "A cat sat." --json | lightweight-decoder decode - --json
      lightweight-decoder decode --text "The cat sat on the mat." --method weighted
      lightweight-decoder decode vectors.npy --decoder generative --runtime numpy --no-rescore   # light: no torch
    """
    if (vectors is None) == (not texts):
        raise click.UsageError("give a vectors file (.npy or JSON lines; - for stdin) or --text, not both")
    if no_rescore and (decoder_args["kind"] != "generative" or texts or decoder_args["model"]):
        raise click.UsageError("--no-rescore loads no encoder: it takes --decoder generative and a vectors file, "
                               "without --text or --model")
    decoder, encoder = load_decoder(**decoder_args, with_encoder=not no_rescore)
    matrix = encoder.encode(list(texts)) if texts else read_vectors(vectors)  # type: ignore[arg-type]
    results = decoder.generate(matrix)
    for result in results if isinstance(results, list) else [results]:
        if as_json:
            _emit_json({"text": result.text, "score": round(result.score, 6), "method": result.method,
                        "fallback_used": result.fallback_used, "error": result.error,
                        "candidates": [c.to_dict() for c in result.candidates[:5]], "timings": result.timings,
                        **({"details": result.details} if result.details else {})})
        else:
            click.echo(result.text)


def _roundtrip_inputs(input_file: str, limit: int | None, decoder_args: dict[str, Any],
                      core_dir: str | None = None) -> tuple[Any, Any, list[str], Any]:
    """The decoder, encoder, texts, and the vectors to decode: the texts' embeddings, through the core if one is given."""
    decoder, encoder = load_decoder(**decoder_args)
    texts = _read_texts((), input_file, limit)
    vectors = encoder.encode(texts)
    if core_dir is not None:
        from .cubic_core import CubicCore

        vectors = CubicCore.load(core_dir, encoder_name=encoder.name, dimension=encoder.dimension).transform(vectors)
    return decoder, encoder, texts, vectors


@main.command("roundtrip")
@click.option("-i", "--input", "input_file", required=True, type=click.Path(allow_dash=True, dir_okay=False), help="One sentence per line; - for stdin.")
@click.option("--limit", type=click.IntRange(min=1), help="Use the first N lines.")
@_decoder_options
@click.option("--core", "core_dir", type=click.Path(exists=True, file_okay=False), help="Pass the vectors through this cubic core (Module 2) first.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help='One {"input", "output", "cosine", "ms"} object per line.')
def roundtrip_cmd(input_file: str, limit: int | None, core_dir: str | None, as_jsonl: bool, **decoder_args: Any) -> None:
    """Encode each line, decode it back, and report the cosine of input and re-encoded output.

    \b
    Example:
      lightweight-decoder roundtrip --decoder phrase --input dev.txt --limit 20 --jsonl
    """
    from .quality import roundtrip

    decoder, encoder, texts, vectors = _roundtrip_inputs(input_file, limit, decoder_args, core_dir)
    for row in roundtrip(texts, encoder, decoder.decode, vectors=vectors):
        if as_jsonl:
            _emit_json(row.to_dict())
        else:
            click.echo(f"{row.cosine:6.3f} {row.ms:8.1f} ms  {row.input}\n{'':17}-> {row.output}")


@main.command("eval")
@click.option("-i", "--input", "input_file", required=True, type=click.Path(allow_dash=True, dir_okay=False), help="One sentence per line; - for stdin.")
@click.option("--limit", type=click.IntRange(min=1), help="Use the first N lines.")
@_decoder_options
@click.option("--core", "core_dir", type=click.Path(exists=True, file_okay=False), help="Pass the vectors through this cubic core (Module 2) first.")
@click.option("--jsonl", "--json", "as_json", is_flag=True, help="Print one JSON object (the default).")
@click.option("--table", is_flag=True, help="Print a markdown table instead of JSON.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON result (with the per-sentence rows) to this file.")
def eval_cmd(input_file: str, limit: int | None, core_dir: str | None, as_json: bool, table: bool, out: str | None, **decoder_args: Any) -> None:
    """Round-trip a file and print BLEU, exact match, token F1, ROUGE-L, cosine and ms per sentence, and the share
    of the lines' names and numbers that the outputs spell exactly (names_recovered, numbers_recovered: what the
    embeddings leak).

    With --decoder generative also how well the model predicts each line from its embedding: nll (nats per
    token), perplexity, and nll_mismatched (each line read under another line's embedding; the gap shows
    how much the predictions rest on the right embedding); nll_output, the same for the decoder's own outputs,
    and search_errors, the share of lines the model finds more likely than what it wrote (errors a better
    search could fix; the rest are the model's). These need the torch runtime: --runtime numpy leaves them out.

    \b
    Example:
      lightweight-decoder eval --decoder phrase --input dev.txt --limit 200
    """
    from . import _atomic
    from .quality import likelihood, markdown_table, roundtrip, summarize

    kind = decoder_args["kind"]
    decoder, encoder, texts, vectors = _roundtrip_inputs(input_file, limit, decoder_args, core_dir)
    rows = list(roundtrip(texts, encoder, decoder.decode, vectors=vectors))
    summary = summarize(rows)
    if kind == "generative" and decoder.runtime == "torch":  # scoring texts needs the torch model
        summary.update(likelihood(decoder, texts, vectors, outputs=[r.output for r in rows]))
    if out:
        _atomic.write_json(out, {**summary, "decoder": kind, "input": input_file, "rows": [r.to_dict() for r in rows]})
    if table:
        click.echo(markdown_table([{"decoder": kind, **summary}], ["decoder", *summary]))
    else:
        _emit_json(summary)


@main.command("pipeline")
@click.argument("texts", nargs=-1)
@click.option("-i", "--input", "input_file", type=click.Path(allow_dash=True, dir_okay=False), help="One text per line; - for stdin.")
@click.option("--core", "core_dir", type=click.Path(exists=True, file_okay=False), help="Cubic core folder (Module 2); none = identity.")
@_decoder_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per text.")
def pipeline_cmd(texts: tuple[str, ...], input_file: str | None, core_dir: str | None, as_json: bool, **decoder_args: Any) -> None:
    """Run Modules 1 -> 2 -> 3 on texts: encode, transform with the core, decode.

    \b
    Example:
      lightweight-decoder pipeline "Where can I eat near the station?" --core qa-core
    """
    from .pipeline import Pipeline

    items = _read_texts(texts, input_file)
    decoder, encoder = load_decoder(**decoder_args)
    module2 = None
    if core_dir:
        from .cubic_core import CubicCore

        module2 = CubicCore.load(core_dir, encoder_name=encoder.name, dimension=encoder.dimension)
    results = Pipeline(encoder, decoder, module2)(items)
    for text, result in zip(items, results):
        if as_json:
            _emit_json({"input": text, "output": result.text, "score": round(result.score, 6), "core": result.details.get("core")})
        else:
            click.echo(result.text)


@main.command("generation-defaults")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="GenerationConfig JSON (e.g. from tune --decoder generative) to make the folder's defaults.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="One GenerationConfig field, the value as JSON (repetition_penalty=1.2); repeatable, applied after --config.")
def generation_defaults(folder: str, config_file: str | None, settings: tuple[str, ...]) -> None:
    """Show or change the generation settings a generative decoder folder uses when a call names none.

    Only the folder's config.json changes; the weights stay as they are. Prints the settings as JSON.

    \b
    Examples:
      lightweight-decoder generation-defaults models/default/generative
      lightweight-decoder generation-defaults my-decoder --set repetition_penalty=1.2 --set num_beams=4
    """
    from .decoders.generative import set_generation_defaults

    try:
        fields: dict[str, Any] = json.loads(Path(config_file).read_text(encoding="utf-8")) if config_file else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.BadParameter(f"{config_file} is not JSON ({exc})", param_hint="--config") from None
    if not isinstance(fields, dict):
        raise click.BadParameter(f"{config_file} must hold a JSON object of GenerationConfig fields", param_hint="--config")
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        try:
            fields[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            raise click.BadParameter(f"{item!r}: the value must be JSON (a number, true/false, null or a quoted string)",
                                     param_hint="--set") from None
    _emit_json(set_generation_defaults(folder, **fields).to_dict())


@main.command("average")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Decoder folder to write (replaced atomically).")
@click.option("--weight", "weights", multiple=True, type=float,
              help="One per FOLDER, in order (normalised to sum to 1); default: equal.")
@click.option("--weights-format", type=click.Choice(list(WEIGHT_FORMATS)), default="fp32", show_default=True,
              help="How model.safetensors stores the averaged weights (as train's --weights).")
def average(folders: tuple[str, ...], out: str, weights: tuple[float, ...], weights_format: str) -> None:
    """Average generative decoders' weights into one decoder (a "model soup").

    The decoders must share encoder, shapes and tokenizer, and a training history: e.g. a model and its
    continuation by `train --init`. The result decodes with the first folder's generation defaults; its
    config.json records each source and weight. Compare it with its sources (`eval`) before using it.

    \b
    Example:
      lightweight-decoder average run-10/decoder run-11/decoder --out soup
      lightweight-decoder average old new --weight 1 --weight 3 --out soup
    """
    from .decoders.generative import average_decoders

    decoder = average_decoders(list(folders), list(weights) if weights else None)
    decoder.save(out, weights=weights_format)
    _emit_json({"out": out, "parameters": decoder.num_parameters,
                "sources": [{"path": s.get("path"), "weight": s["weight"]} for s in decoder.metadata["averaged_from"]]})


@main.command("tune")
@click.option("-i", "--input", "input_file", required=True, type=click.Path(exists=True, dir_okay=False), help="Dev sentences, one per line.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Dev sentences per evaluation.")
@_decoder_options
@click.option("--population", type=click.IntRange(min=2), default=8, show_default=True)
@click.option("--generations", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--latency-weight", type=click.FloatRange(min=0), default=0.01, show_default=True, help="BLEU points lost per ms per sentence.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to save the best config (JSON, for --config).")
def tune(input_file: str, limit: int, population: int, generations: int, latency_weight: float, seed: int, out: str, **decoder_args: Any) -> None:
    """Evolutionary search of decoding parameters: maximise dev BLEU minus a latency penalty.

    \b
    Example:
      lightweight-decoder tune --decoder hybrid --input dev.txt --limit 50 --out hybrid.json
      lightweight-decoder eval --decoder hybrid --input dev.txt --config hybrid.json
    """
    from .quality import roundtrip, summarize
    from .tuning import SEARCH_SPACES, GenerationParameterOptimizer, apply_config, current_config

    kind = decoder_args["kind"]
    decoder, encoder = load_decoder(**decoder_args)
    texts = _read_texts((), input_file, limit)
    targets = encoder.encode(texts)
    base = current_config(decoder, kind)
    space = SEARCH_SPACES[kind]

    def objective(params: dict[str, Any]) -> float:
        apply_config(decoder, kind, base.replace(**params))
        summary = summarize(list(roundtrip(texts, encoder, decoder.decode, vectors=targets)))
        return summary["bleu"] - latency_weight * summary["ms_per_sentence"]

    start = {k: getattr(base, k) for k in space}
    result = GenerationParameterOptimizer(space, objective, population=population, generations=generations, seed=seed,
                                          initial=[start]).run(show_progress_bar=True)
    best = base.replace(**result.params)
    best.save(out)
    _emit_json({"decoder": kind, "objective": round(result.score, 4), "start_objective": round(objective(start), 4),
                "best": result.params, "evaluations": result.evaluations, "history": result.history, "saved": out})


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True)
@click.option("--bank", "bank_path", type=click.Path(file_okay=False), help="Phrase bank folder (default: the shipped bank).")
@click.option("--generative", "generative_path", type=click.Path(file_okay=False), help="Generative decoder folder (default: the shipped model, if any).")
@click.option("--nprobe", type=click.IntRange(min=1), help=_NPROBE_HELP)
@click.option("--quantize", type=click.Choice(QUANTIZATION_SCHEMES), help=_QUANTIZE_HELP)
@click.option("--runtime", type=click.Choice(RUNTIMES), default="torch", show_default=True, help=_RUNTIME_HELP)
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True, help="Largest batch accepted (larger -> 413).")
@click.option("--max-text-chars", type=click.IntRange(min=1), default=2000, show_default=True)
def serve(host: str, port: int, bank_path: str | None, generative_path: str | None, nprobe: int | None, quantize: str | None,
          runtime: str, max_batch: int, max_text_chars: int) -> None:
    """Serve /encode, /decode, /roundtrip, /health, /info and /metrics over HTTP.

    \b
    Example:
      lightweight-decoder serve --port 8000
      curl -s localhost:8000/roundtrip -d '{"texts": ["The cat sat on the mat."]}' -H 'content-type: application/json'
    """
    import uvicorn

    from .server import ServerConfig, create_app

    app = create_app(ServerConfig(bank=bank_path, generative=generative_path, nprobe=nprobe, quantize=quantize,
                                  runtime=runtime, max_batch=max_batch, max_text_chars=max_text_chars))
    uvicorn.run(app, host=host, port=port, log_level="info")


@main.command()
@click.option("--bank", "bank_path", type=click.Path(file_okay=False), help="Phrase bank folder (default: the shipped bank).")
@click.option("--generative", "generative_path", type=click.Path(file_okay=False), help="Generative decoder folder (default: the shipped model).")
def demo(bank_path: str | None, generative_path: str | None) -> None:
    """Round-trip example sentences through every shipped decoder: input, output, cosine, time.

    \b
    Example:
      lightweight-decoder demo
    """
    from .decoders.hybrid import HybridDecoder
    from .errors import ModelNotFound
    from .quality import roundtrip

    phrase, encoder = load_decoder("phrase", bank_path=bank_path)
    decoders: dict[str, Any] = {"phrase": phrase}
    try:
        decoders["generative"], _ = load_decoder("generative", generative_path=generative_path, encoder=encoder)
    except ModelNotFound as exc:
        click.echo(f"[generative] skipped: {exc}")
    decoders["hybrid"] = HybridDecoder(phrase, decoders.get("generative"), encoder, screen=load_screen(None, encoder))
    click.echo(f"Module 1: {encoder.name}, {encoder.dimension}-D embeddings, from {encoder.path}")
    for kind, decoder in decoders.items():
        click.echo(f"\n[{kind}] {decoder!r}")
        click.echo(f"{'cosine':>6} {'ms':>7}  input -> output")
        for row in roundtrip(EXAMPLES, encoder, decoder.decode):
            click.echo(f"{row.cosine:6.3f} {row.ms:7.1f}  {row.input}\n{'':16}-> {row.output}")


def run() -> None:  # pragma: no cover - console entry for `python -m`
    main()
