"""Reassembly of a model split into zip parts, as the default encoder ships."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import zipfile
from pathlib import Path

import pytest

from lightweight_decoder.encoder import assemble_parts
from lightweight_decoder.errors import CorruptArtifact

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB of "weights"


def _make_parts(folder: Path, n: int = 3) -> tuple[list[Path], str]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("tiny-model/config.json", '{"hidden": 4}')
        zf.writestr("tiny-model/model.safetensors", PAYLOAD)
        zf.writestr("tiny-model/desktop.ini", "junk")
    data = buf.getvalue()
    size = len(data) // n + 1
    parts = []
    for i in range(n):
        part = folder / f"tiny.zip.{i + 1:03d}"
        part.write_bytes(data[i * size:(i + 1) * size])
        parts.append(part)
    return parts, hashlib.sha256(PAYLOAD).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_assembles_verifies_and_reuses(tmp_path):
    parts, sha = _make_parts(tmp_path)
    dest = tmp_path / "cache" / "tiny-model"
    out = assemble_parts(parts, dest, member_prefix="tiny-model/", sha256=sha)
    assert out == dest
    assert (dest / "model.safetensors").read_bytes() == PAYLOAD
    assert (dest / "config.json").exists() and not (dest / "desktop.ini").exists()
    assert (dest / ".complete").exists()
    parts[0].unlink()  # a second call uses the folder and never touches the parts
    assert assemble_parts(parts, dest, member_prefix="tiny-model/", sha256=sha) == dest
    assert _leftovers(dest.parent) == []


def test_damaged_part_is_a_clear_error_and_leaves_nothing(tmp_path):
    parts, sha = _make_parts(tmp_path)
    damaged = bytearray(parts[1].read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    parts[1].write_bytes(bytes(damaged))
    dest = tmp_path / "cache" / "tiny-model"
    with pytest.raises(CorruptArtifact):
        assemble_parts(parts, dest, member_prefix="tiny-model/", sha256=sha)
    assert not dest.exists()
    assert _leftovers(dest.parent) == []


def test_truncated_part_is_a_clear_error(tmp_path):
    parts, sha = _make_parts(tmp_path)
    parts[2].write_bytes(parts[2].read_bytes()[:100])
    dest = tmp_path / "cache" / "tiny-model"
    with pytest.raises(CorruptArtifact, match="valid zip"):
        assemble_parts(parts, dest, member_prefix="tiny-model/", sha256=sha)
    assert not dest.exists()


def test_wrong_checksum_is_rejected(tmp_path):
    parts, _ = _make_parts(tmp_path)
    dest = tmp_path / "cache" / "tiny-model"
    with pytest.raises(CorruptArtifact, match="sha256"):
        assemble_parts(parts, dest, member_prefix="tiny-model/", sha256="0" * 64)
    assert not dest.exists()


def test_half_written_folder_without_marker_is_rebuilt(tmp_path):
    parts, sha = _make_parts(tmp_path)
    dest = tmp_path / "cache" / "tiny-model"
    dest.mkdir(parents=True)
    (dest / "model.safetensors").write_bytes(b"partial")
    assemble_parts(parts, dest, member_prefix="tiny-model/", sha256=sha)
    assert (dest / "model.safetensors").read_bytes() == PAYLOAD


def _assemble_in_child(args: tuple[list[Path], Path, str]) -> str:
    parts, dest, sha = args
    out = assemble_parts(parts, dest, member_prefix="tiny-model/", sha256=sha)
    return hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()


def test_concurrent_processes_do_not_corrupt(tmp_path):
    parts, sha = _make_parts(tmp_path)
    dest = tmp_path / "cache" / "tiny-model"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        digests = pool.map(_assemble_in_child, [(parts, dest, sha)] * 4)
    assert digests == [sha] * 4
    assert _leftovers(dest.parent) == []
