from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from lightweight_decoder.data import EmbeddingCache, prepare_corpus, read_lines, split_sentences
from lightweight_decoder.errors import CorruptArtifact, IncompatibleArtifact, InvalidInput

from .conftest import SENTENCES


@pytest.mark.parametrize(
    "paragraph, expected",
    [
        ("One. Two!  Three?", ["One.", "Two!", "Three?"]),
        ("Dr. Smith met Mr. Jones. They talked.", ["Dr. Smith met Mr. Jones.", "They talked."]),
        ("J. R. R. Tolkien wrote it. It sold well.", ["J. R. R. Tolkien wrote it.", "It sold well."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("It cost 3.5 million dollars in 1999. Prices rose.", ["It cost 3.5 million dollars in 1999.", "Prices rose."]),
        ("   ", []),
    ],
)
def test_split_sentences(paragraph, expected):
    assert split_sentences(paragraph) == expected


def test_read_lines_formats(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\nsecond line\n")
    with gzip.open(tmp_path / "b.txt.gz", "wt") as fh:
        fh.write("gz line\n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "json line"}) + "\n" + json.dumps("bare string") + "\n")
    got = [t.strip() for t in read_lines([tmp_path / "a.txt", tmp_path / "b.txt.gz", tmp_path / "c.jsonl"])]
    assert got == ["first line", "second line", "gz line", "json line", "bare string"]


def test_read_lines_errors(tmp_path):
    with pytest.raises(InvalidInput, match="not found"):
        list(read_lines([tmp_path / "missing.txt"]))
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(CorruptArtifact, match="bad.jsonl:2"):
        list(read_lines([tmp_path / "bad.jsonl"]))
    (tmp_path / "bad.txt.gz").write_bytes(b"not gzip at all")
    with pytest.raises(CorruptArtifact, match="bad.txt.gz"):
        list(read_lines([tmp_path / "bad.txt.gz"]))


def test_prepare_corpus_cleans_and_limits_by_prefix(tmp_path):
    lines = ["  The   cat sat. ", "The cat sat.", "Hi", "a " * 80, *[f"Sentence number {i} here." for i in range(50)]]
    (tmp_path / "c.txt").write_text("\n".join(lines))
    full = prepare_corpus([tmp_path / "c.txt"], min_words=2, max_words=20)
    assert "The cat sat." in full and full.count("The cat sat.") == 1
    assert "Hi" not in full and all(len(t.split()) <= 20 for t in full)
    assert len(full) == 51
    assert prepare_corpus([tmp_path / "c.txt"], min_words=2, max_words=20, limit=10) == full[:10]
    assert prepare_corpus([tmp_path / "c.txt"], min_words=2, max_words=20, offset=10, limit=5) == full[10:15]
    assert prepare_corpus([tmp_path / "c.txt"], min_words=2, max_words=20, offset=10) == full[10:]
    with pytest.raises(InvalidInput, match="offset"):
        prepare_corpus([tmp_path / "c.txt"], offset=-1)
    split = prepare_corpus([tmp_path / "c.txt"], split=True, seed=None, min_words=1)
    assert split[0] == "The cat sat."


class FailingEncoderDouble:
    """Test double: delegates to a real encoder, counts calls, and fails on call number ``fail_on``."""

    def __init__(self, encoder, fail_on: int | None = None):
        self.inner, self.fail_on, self.calls = encoder, fail_on, 0
        self.name, self.dimension = encoder.name, encoder.dimension

    def encode(self, texts, **kwargs):
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise KeyboardInterrupt("simulated interruption")
        return self.inner.encode(texts, **kwargs)


def test_embedding_cache_resumes_after_interruption(tmp_path, small_encoder):
    texts = [f"{s} (variant {i})" for i in range(5) for s in SENTENCES]  # 40 texts, 10 shards of 4
    cache = EmbeddingCache(tmp_path / "emb", encoder_name=small_encoder.name, dimension=384, precision="fp32", shard_size=4)
    flaky = FailingEncoderDouble(small_encoder, fail_on=4)
    with pytest.raises(KeyboardInterrupt):
        cache.build(texts, flaky, show_progress_bar=False)
    assert cache.count() == 12  # three complete shards survived
    assert not list((tmp_path / "emb").glob("*.tmp"))
    resumed = FailingEncoderDouble(small_encoder)
    cache.build(texts, resumed, show_progress_bar=False)
    assert resumed.calls == 7  # only the missing shards were embedded
    got_texts, vectors = cache.load()
    assert got_texts == texts and vectors.dtype == np.float16 and vectors.shape == (40, 384)
    expected = small_encoder.encode(texts)
    assert np.min(np.sum(expected * vectors.astype(np.float32), axis=1)) > 0.999
    assert cache.load(limit=6)[0] == texts[:6]


def test_embedding_cache_grows_with_a_longer_text_list(tmp_path, small_encoder):
    cache = EmbeddingCache(tmp_path / "emb", encoder_name=small_encoder.name, dimension=384, precision="fp32", shard_size=4)
    cache.build(SENTENCES[:6], small_encoder, show_progress_bar=False)  # one full shard, one partial
    counter = FailingEncoderDouble(small_encoder)
    cache.build(SENTENCES, counter, show_progress_bar=False)
    assert counter.calls == 1 and cache.load()[0] == SENTENCES
    shorter = FailingEncoderDouble(small_encoder)
    cache.build(SENTENCES[:5], shorter, show_progress_bar=False)  # a prefix of what is stored: nothing to do
    assert shorter.calls == 0 and cache.load(limit=5)[0] == SENTENCES[:5]


def test_embedding_cache_refuses_to_mix(tmp_path, small_encoder):
    path = tmp_path / "emb"
    EmbeddingCache(path, encoder_name=small_encoder.name, dimension=384, precision="fp32")
    with pytest.raises(IncompatibleArtifact, match="precision"):
        EmbeddingCache(path, encoder_name=small_encoder.name, dimension=384, precision="bf16")
    with pytest.raises(IncompatibleArtifact, match="all-mpnet-base-v2"):
        EmbeddingCache(path, encoder_name="all-mpnet-base-v2", dimension=768, precision="fp32")
    cache = EmbeddingCache.open(path)
    cache.build(SENTENCES[:2], small_encoder, show_progress_bar=False)
    with pytest.raises(IncompatibleArtifact, match="other texts"):
        cache.build(["Completely different.", "Texts here."], small_encoder, show_progress_bar=False)


def test_embedding_cache_damaged_shard_names_the_file(tmp_path, small_encoder):
    cache = EmbeddingCache(tmp_path / "emb", encoder_name=small_encoder.name, dimension=384, precision="fp32")
    cache.build(SENTENCES, small_encoder, show_progress_bar=False)
    shard = tmp_path / "emb" / "shard-00000.npy"
    shard.write_bytes(shard.read_bytes()[:200])
    with pytest.raises(CorruptArtifact, match="shard-00000.npy"):
        cache.load()
