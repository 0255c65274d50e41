"""read_weights: safetensors files read into a built model in place, strictly; a bad file is a CorruptArtifact that
names the file and the problem."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import load_model, save_file, save_model

from lightweight_decoder.checkpoint import read_weights
from lightweight_decoder.errors import CorruptArtifact
from lightweight_decoder.model import ModelConfig, PrefixLM


def _model(seed: int) -> PrefixLM:
    torch.manual_seed(seed)
    return PrefixLM(ModelConfig.preset("tiny", embedding_dim=16, cond_adaln=True))


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_reads_what_load_model_reads_and_keeps_ties(tmp_path):
    source = _model(0)
    save_model(source, str(tmp_path / "m.safetensors"))  # stores the tied embedding once, with an alias
    ours, reference = _model(1), _model(1)
    assert not _same(ours, source)
    read_weights(ours, tmp_path / "m.safetensors")
    load_model(reference, str(tmp_path / "m.safetensors"))
    assert _same(ours, source) and _same(ours, reference)
    assert ours.lm_head.weight.data_ptr() == ours.tok_emb.weight.data_ptr()


def test_half_precision_file_is_cast_into_the_float_model(tmp_path):
    source = _model(0)
    save_model(_model(0).half(), str(tmp_path / "m.safetensors"))
    target = _model(1)
    read_weights(target, tmp_path / "m.safetensors")
    assert all(p.dtype == torch.float32 for p in target.parameters())
    for (name, x), y in zip(target.state_dict().items(), source.state_dict().values()):
        assert torch.equal(x, y.half().float()), name


def _edit_header(path, name: str, **changes) -> None:
    """Rewrite one tensor's header entry of a safetensors file, keeping its data."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header[name].update(changes)
    new = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:4000]), "do not fit its shape or the file"),
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), "header length"),
    (lambda p: p.write_bytes(b"\x05\x00"), "too short"),
    (lambda p: p.write_bytes(struct.pack("<Q", 10**12) + b"{}"), "header length"),
    (lambda p: p.write_bytes(struct.pack("<Q", 4) + b"{{{{"), "not JSON"),
])
def test_damaged_files_are_named(tmp_path, damage, message):
    path = tmp_path / "m.safetensors"
    save_model(_model(0), str(path))
    damage(path)
    with pytest.raises(CorruptArtifact, match=f"m.safetensors: cannot be loaded .*({message})"):
        read_weights(_model(1), path)


def test_mismatched_files_are_named(tmp_path):
    model = _model(0)
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    save_file({**tensors, "extra.weight": torch.zeros(2)}, str(tmp_path / "extra.safetensors"))
    with pytest.raises(CorruptArtifact, match="unexpected \\['extra.weight'\\]"):
        read_weights(model, tmp_path / "extra.safetensors")
    save_file({k: v for k, v in tensors.items() if k != "norm.weight"}, str(tmp_path / "missing.safetensors"))
    with pytest.raises(CorruptArtifact, match="missing \\[.*'norm.weight'"):
        read_weights(model, tmp_path / "missing.safetensors")
    save_file({**tensors, "norm.weight": torch.zeros(3)}, str(tmp_path / "shape.safetensors"))
    with pytest.raises(CorruptArtifact, match="norm.weight: shape \\[3\\]"):
        read_weights(model, tmp_path / "shape.safetensors")
    save_model(model, str(tmp_path / "dtype.safetensors"))
    _edit_header(tmp_path / "dtype.safetensors", "norm.weight", dtype="BOOL")
    with pytest.raises(CorruptArtifact, match="norm.weight: unsupported dtype 'BOOL'"):
        read_weights(model, tmp_path / "dtype.safetensors")
    save_model(model, str(tmp_path / "offsets.safetensors"))
    _edit_header(tmp_path / "offsets.safetensors", "norm.weight", data_offsets=[0, 4])
    with pytest.raises(CorruptArtifact, match="norm.weight: data offsets 0..4"):
        read_weights(model, tmp_path / "offsets.safetensors")
    with pytest.raises(CorruptArtifact, match="absent.safetensors: missing"):
        read_weights(model, tmp_path / "absent.safetensors")
