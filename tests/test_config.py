from __future__ import annotations

import pytest

from lightweight_decoder.config import EncoderConfig, PhraseBankConfig, PhraseDecoderConfig
from lightweight_decoder.errors import ConfigError, CorruptArtifact


@pytest.mark.parametrize("cls", [EncoderConfig, PhraseBankConfig, PhraseDecoderConfig])
def test_round_trip(cls, tmp_path):
    cfg = cls()
    assert cls.from_dict(cfg.to_dict()) == cfg
    cfg.save(tmp_path / "c.json")
    assert cls.load(tmp_path / "c.json") == cfg


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        PhraseDecoderConfig.from_dict({"methd": "greedy"})
    assert "methd" in str(err.value) and "method" in str(err.value) and "top_k" in str(err.value)


@pytest.mark.parametrize(
    "cls, kwargs, needle",
    [
        (EncoderConfig, {"precision": "fp8"}, "precision"),
        (EncoderConfig, {"batch_size": 0}, "batch_size"),
        (EncoderConfig, {"batch_size": True}, "batch_size"),
        (PhraseBankConfig, {"vector_dtype": "int4"}, "vector_dtype"),
        (PhraseBankConfig, {"nprobe": 0}, "nprobe"),
        (PhraseDecoderConfig, {"method": "magic"}, "method"),
        (PhraseDecoderConfig, {"top_k": -1}, "top_k"),
        (PhraseDecoderConfig, {"consensus_weight": 1.5}, "consensus_weight"),
        (PhraseDecoderConfig, {"strict": "yes"}, "strict"),
    ],
)
def test_bad_values_are_rejected(cls, kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        cls(**kwargs)


def test_replace_validates():
    cfg = PhraseDecoderConfig()
    assert cfg.replace(top_k=3).top_k == 3
    with pytest.raises(ConfigError):
        cfg.replace(top_k=0)
    with pytest.raises(ConfigError, match="valid keys"):
        cfg.replace(nope=1)


def test_corrupt_config_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(CorruptArtifact, match="c.json"):
        EncoderConfig.load(path)
