"""Where the shipped artifacts live (``models/default`` in a source checkout)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_paths", "models_root"]


def models_root() -> Path:
    """``$LIGHTWEIGHT_DECODER_MODELS`` or the repository's ``models/default``."""
    env = os.environ.get("LIGHTWEIGHT_DECODER_MODELS")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "models" / "default"


def default_paths() -> dict[str, Path]:
    """The shipped artifact folders by name."""
    root = models_root()
    return {"bank": root / "bank", "generative": root / "generative", "screen": root / "screen"}
