"""Reading an artifact folder's config.json: present, readable, of the expected type and format version."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import CorruptArtifact, IncompatibleArtifact, InvalidInput

__all__ = ["read_artifact_config"]


def read_artifact_config(folder: str | os.PathLike[str], kind: str, format_version: int, what: str) -> dict[str, Any]:
    """The parsed ``config.json`` of ``folder``; errors name the folder or file and what is wrong.

    ``kind`` is the expected ``type`` field; ``what`` names the artifact in messages ("phrase bank").
    """
    path = Path(folder) / "config.json"
    if not path.exists():
        raise InvalidInput(f"{folder} is not a {what} folder (no config.json)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptArtifact(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("type") != kind:
        found = meta.get("type") if isinstance(meta, dict) else type(meta).__name__
        raise IncompatibleArtifact(f"{path}: type is {found!r}, not {kind!r}")
    if meta.get("format_version") != format_version:
        raise IncompatibleArtifact(f"{path}: format_version {meta.get('format_version')!r}; this library reads {format_version}")
    return meta
