"""Weights and training checkpoints without pickle: tensors as safetensors, progress as JSON.

:func:`read_weights` fills a built model from a safetensors file in place, one tensor at a time, so loading
never holds a second copy of the model: safetensors' ``load_model`` reads the whole file into a state dict
first, a second 33 MB for the shipped generator (``bench/generative.py`` reports the peaks).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from . import _atomic
from .errors import CorruptArtifact

__all__ = ["save_checkpoint", "load_checkpoint", "has_checkpoint", "read_weights"]


def has_checkpoint(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / "state.json").exists()


def save_checkpoint(folder: str | os.PathLike[str], model: Any, optimizer: Any, state: dict) -> None:
    """Write model.safetensors, optimizer.safetensors and state.json as one folder, atomically."""
    from safetensors.torch import save_file, save_model

    with _atomic.atomic_dir(folder) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        tensors = {f"{idx}.{key}": value.detach().contiguous() for idx, entry in optimizer.state_dict()["state"].items()
                   for key, value in entry.items()}
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        _atomic.write_json(tmp / "state.json", state)


def load_checkpoint(folder: str | os.PathLike[str], model: Any, optimizer: Any) -> dict:
    """Restore model and optimizer in place; return the saved progress state."""
    from safetensors.torch import load_file

    folder = Path(folder)
    read_weights(model, folder / "model.safetensors")
    flat = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for name, value in flat.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    return json.loads((folder / "state.json").read_text())


# safetensors dtype names -> torch dtype names (resolved lazily: importing this module must not import torch)
_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I64": "int64", "I32": "int32"}
_MAX_HEADER = 100 * 1024 * 1024


def read_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Fill ``model``'s parameters and persistent buffers from a safetensors file, in place.

    Strict like safetensors' ``load_model``: every state-dict entry must be in the file (directly or as a
    tied alias recorded by ``save_model``), with its shape, and the file may hold nothing else. Tensors are
    read straight into the model's memory when the dtypes match and through one tensor-sized buffer (then
    cast) when they differ, e.g. fp16 storage into an fp32 model.

    A missing, damaged or mismatched file raises CorruptArtifact naming the file and the problem.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CorruptArtifact(f"{path}: missing") from None
    try:
        _fill(model, path, size)
    except (OSError, ValueError) as exc:
        raise CorruptArtifact(f"{path}: cannot be loaded ({exc})") from None


def _fill(model: Any, path: Path, size: int) -> None:
    """:func:`read_weights`' reading; ValueError names what is wrong with the file."""
    import torch

    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise ValueError("file too short for a safetensors header")
        (header_len,) = struct.unpack("<Q", raw)
        if header_len > min(_MAX_HEADER, size - 8):
            raise ValueError(f"header length {header_len} does not fit the file ({size} bytes)")
        try:
            header = json.loads(fh.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"header is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        aliases = header.pop("__metadata__", None)  # save_model records tied names here: {dropped: kept}
        aliases = aliases if isinstance(aliases, dict) else {}
        targets = model.state_dict()  # detached views of the model's own storage
        expected = set(targets)
        stored = set(header)
        unexpected = sorted(stored - expected)
        missing = sorted(k for k in expected - stored if aliases.get(k) not in stored)
        if missing or unexpected:
            raise ValueError(f"weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        data_start = 8 + header_len
        with torch.no_grad():
            for name, info in header.items():
                target = targets[name]
                try:
                    dtype_name, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
                except (KeyError, TypeError, ValueError):
                    raise ValueError(f"{name}: malformed entry {info!r}") from None
                if dtype_name not in _DTYPES:
                    raise ValueError(f"{name}: unsupported dtype {dtype_name!r}")
                dtype = getattr(torch, _DTYPES[dtype_name])
                if shape != list(target.shape):
                    raise ValueError(f"{name}: shape {shape} in the file, {list(target.shape)} in the model")
                nbytes = target.numel() * dtype.itemsize
                if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin and end - begin == nbytes
                        and data_start + end <= size):
                    raise ValueError(f"{name}: data offsets {begin}..{end} do not fit its shape or the file")
                fh.seek(data_start + begin)
                same = dtype == target.dtype and target.is_contiguous()
                buffer = target if same else torch.empty(shape, dtype=dtype)
                if fh.readinto(memoryview(buffer.reshape(-1).view(torch.uint8).numpy()).cast("B")) != nbytes:
                    raise ValueError(f"{name}: file ends inside its data")
                if not same:
                    target.copy_(buffer)
