"""The ``lightweight-decoder`` command line. Every data command has ``--json``; ``-`` reads stdin."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import click
import numpy as np

from . import __version__
from .errors import DecoderError

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
    click.echo(json.dumps(obj, ensure_ascii=False))


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
def main(verbose: bool) -> None:
    """Turn sentence embeddings back into text, on a CPU.

    \b
    Example:
      lightweight-decoder encode "The cat sat on the mat." --json
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _setup_logging(verbose)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(as_json: bool) -> None:
    """Versions, model and cache paths, CPU features.

    \b
    Example:
      lightweight-decoder info --json
    """
    import importlib.metadata as md

    from .encoder import cache_home, cpu_supports_bf16, known_models
    from .paths import default_paths

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
        "cpu_count": os.cpu_count(),
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
    click.echo(f"CPU bf16 instructions  {'yes' if report['cpu_bf16'] else 'no'} ({report['cpu_count']} cores)")
    for name, item in report["shipped"].items():
        click.echo(f"shipped {name:<14} {item['path']} ({'present' if item['present'] else 'missing'})")
    for key in ("bank_entries", "generative_parameters"):
        if key in report:
            click.echo(f"{key.replace('_', ' '):<22} {report[key]:,}")


def _shipped_details() -> dict[str, Any]:
    from .paths import default_paths

    details: dict[str, Any] = {}
    bank_cfg = default_paths()["bank"] / "config.json"
    if bank_cfg.exists():
        try:
            details["bank_entries"] = int(json.loads(bank_cfg.read_text())["size"])
        except (ValueError, KeyError, OSError):
            pass
    return details


@main.command()
@click.argument("texts", nargs=-1)
@click.option("-i", "--input", "input_file", type=click.Path(allow_dash=True, dir_okay=False), help="A file with one text per line; - for stdin.")
@click.option("-m", "--model", default="all-mpnet-base-v2", show_default=True, help="Encoder name or folder.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True)
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


@main.command()
def demo() -> None:
    """Encode example sentences and round-trip them through the shipped decoders.

    \b
    Example:
      lightweight-decoder demo
    """
    from .encoder import TextEncoder

    encoder = TextEncoder()
    vectors = encoder.encode(EXAMPLES)
    click.echo(f"Module 1: {encoder.name}, {encoder.dimension}-D, {len(EXAMPLES)} example sentences")
    sims = vectors @ vectors.T
    for text, vec, row in zip(EXAMPLES, vectors, sims):
        others = np.delete(row, list(row).index(max(row)))
        click.echo(f"  |v|={np.linalg.norm(vec):.3f}  max cos to another example {others.max():.3f}  {text}")


def run() -> None:  # pragma: no cover - console entry for `python -m`
    main()
