"""Training checkpoints without pickle: model and optimizer state as safetensors, progress as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import _atomic

__all__ = ["save_checkpoint", "load_checkpoint", "has_checkpoint"]


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
    from safetensors.torch import load_file, load_model

    folder = Path(folder)
    load_model(model, str(folder / "model.safetensors"))
    flat = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for name, value in flat.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    return json.loads((folder / "state.json").read_text())
