from __future__ import annotations

import numpy as np
import pytest

from lightweight_decoder.encoder import TextEncoder, resolve_model_path
from lightweight_decoder.errors import ConfigError, InvalidText, ModelNotFound

from .conftest import SENTENCES


def test_shapes_single_list_and_empty(small_encoder):
    assert small_encoder.dimension == 384
    one = small_encoder.encode("The cat sat on the mat.")
    assert one.shape == (384,) and one.dtype == np.float32
    many = small_encoder.encode(SENTENCES[:3])
    assert many.shape == (3, 384) and many.dtype == np.float32
    assert small_encoder.encode([]).shape == (0, 384)


def test_deterministic_and_unit_norm(small_encoder):
    a = small_encoder.encode(SENTENCES)
    b = small_encoder.encode(list(reversed(SENTENCES)))[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer(small_encoder):
    a, b, c = small_encoder.encode(["A cat sits on a mat.", "The cat sat on the mat.", "Stock markets fell sharply."])
    assert a @ b > a @ c + 0.3


@pytest.mark.parametrize("bad, needle", [([""], "item 0"), (["ok", "   "], "item 1"), (["ok", 3], "item 1 is int")])
def test_bad_texts_name_the_item(small_encoder, bad, needle):
    with pytest.raises(InvalidText, match=needle):
        small_encoder.encode(bad)


def test_bad_arguments(small_encoder):
    with pytest.raises(InvalidText):
        small_encoder.encode(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="precision"):
        small_encoder.encode("x", precision="fp8")
    with pytest.raises(ValueError):  # the error family users already catch
        small_encoder.encode("")


def test_token_lengths_count_what_the_model_reads(small_encoder):
    short, longer = small_encoder.token_lengths(["A cat.", "A cat sat on the mat by the door."])
    assert short == 5 and longer == 12  # [CLS] a cat . [SEP]: special tokens count, as padding does
    garbled = small_encoder.token_lengths(['AHisHekeephere is a "cithe"(2") skipel.'])[0]
    assert garbled > small_encoder.token_lengths(["Here is a house where a man lives."])[0]  # same characters, more tokens
    limit = small_encoder._model.max_seq_length
    assert small_encoder.token_lengths([" ".join(["word"] * 2000)]) == [limit] and small_encoder.token_lengths([]) == []
    with pytest.raises(InvalidText, match="list"):
        small_encoder.token_lengths("A cat.")
    with pytest.raises(InvalidText):
        small_encoder.token_lengths(["fine", "  "])


def test_unknown_model_fails_fast():
    with pytest.raises(ModelNotFound, match="unknown encoder model 'no-such-model'"):
        TextEncoder("no-such-model")


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotFound, match="not a sentence-transformers model"):
        resolve_model_path(tmp_path)


def test_model_folder_by_path(small_encoder):
    by_path = TextEncoder(small_encoder.path)
    assert by_path.dimension == 384
    np.testing.assert_allclose(by_path.encode("hello there"), small_encoder.encode("hello there"), atol=1e-6)


@pytest.mark.real_encoder
def test_default_encoder_is_768d_mpnet(mpnet):
    assert mpnet.name == "all-mpnet-base-v2" and mpnet.dimension == 768
    assert (mpnet.path / ".complete").exists()
    assert mpnet.encode("The cat sat on the mat.").shape == (768,)


@pytest.mark.real_encoder
def test_bf16_matches_fp32(mpnet, shared_data):
    lines = (shared_data / "eval" / "wikipedia_dev.txt").read_text().splitlines()[:48]
    full = mpnet.encode(lines, precision="fp32")
    half = mpnet.encode(lines, precision="bf16")
    cos = np.sum(full * half, axis=1)
    assert cos.min() >= 0.999, cos.min()


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_uses_bf16_only_with_native_instructions(monkeypatch, tmp_path, native, expected):
    from lightweight_decoder import encoder as encoder_module
    from lightweight_decoder.data import EmbeddingCache, default_cache_dir

    monkeypatch.setattr(encoder_module, "cpu_supports_bf16", lambda: native)
    assert encoder_module.resolve_precision("auto") == expected
    assert encoder_module.resolve_precision("fp32") == "fp32" and encoder_module.resolve_precision("bf16") == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        encoder_module.resolve_precision("fp16")
    # a cache records the precision its vectors were made in, never "auto"
    cache = EmbeddingCache(tmp_path / "cache", encoder_name="m", dimension=4, precision="auto")
    assert cache.config["precision"] == expected
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b\n")
    assert f"-{expected}-" in default_cache_dir([corpus], "m", "auto").name
