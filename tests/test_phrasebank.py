from __future__ import annotations

import json

import numpy as np
import pytest

from lightweight_decoder.config import PhraseBankConfig
from lightweight_decoder.errors import ConfigError, CorruptArtifact, EmptyBank, IncompatibleArtifact, InvalidEmbedding, InvalidInput
from lightweight_decoder.phrasebank import PhraseBank

from .conftest import BANK_TEXTS


def _unit(rng, n, d=32):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_search_finds_each_entry_first(small_bank, small_encoder):
    hits = small_bank.search(small_encoder.encode(BANK_TEXTS), k=3)
    assert [h[0].text for h in hits] == BANK_TEXTS
    assert all(h[0].score > 0.999 and h[0].score >= h[1].score >= h[2].score for h in hits)
    assert hits[0][0].id == 0


def test_search_single_vector_and_k_larger_than_bank(small_bank, small_encoder):
    hits = small_bank.search(small_encoder.encode("A kitten sat on a rug."), k=100)
    assert len(hits) == 1 and len(hits[0]) == len(BANK_TEXTS)
    assert hits[0][0].text in ("The cat sat on the mat.", "The cat slept on the sofa.")


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "IVF8,SQ8", "IVF8,PQ8"])
def test_index_types_agree_with_exact_search(factory, rng):
    vectors = _unit(rng, 2000)
    texts = [f"entry {i}" for i in range(2000)]
    bank = PhraseBank.from_vectors(texts, vectors, encoder_name="test", config=PhraseBankConfig(index_factory=factory, nprobe=8))
    hits = bank.search(vectors[:50], k=5)
    recall = np.mean([row[0].id == i for i, row in enumerate(hits)])
    assert recall >= 0.95, (factory, recall)
    np.testing.assert_allclose(hits[0][0].score, 1.0, atol=2e-3)  # exact re-scoring from stored vectors


def test_set_search_trades_recall_for_probes_and_is_saved(tmp_path, rng):
    vectors = _unit(rng, 2000)
    queries = vectors[:100] + 0.5 * _unit(rng, 100)  # off the stored points, so the nearest list is not always theirs
    texts = [f"entry {i}" for i in range(2000)]
    bank = PhraseBank.from_vectors(texts, vectors, encoder_name="test",
                                   config=PhraseBankConfig(index_factory="IVF16,Flat", vector_dtype="none", nprobe=1))
    exact = np.argmax(queries @ vectors.T, axis=1)

    def recall() -> float:
        return float(np.mean([row[0].id == i for i, row in zip(exact, bank.search(queries, k=1))]))

    one_list = recall()
    bank.set_search(nprobe=16)  # every list: IVF,Flat is then exhaustive, hence exact
    assert recall() == 1.0 > one_list
    bank.save(tmp_path / "bank")
    assert PhraseBank.load(tmp_path / "bank").config.nprobe == 16
    with pytest.raises(ConfigError, match="nprobe"):
        bank.set_search(nprobe=0)
    assert bank.config.nprobe == 16  # a rejected value changes nothing


def test_add_extends_the_bank(small_encoder):
    bank = PhraseBank.build(BANK_TEXTS[:4], small_encoder)
    bank.add(["A brand new sentence about volcanoes."], encoder=small_encoder)
    assert len(bank) == 5
    assert bank.search(small_encoder.encode("volcanoes"), k=1)[0][0].text.startswith("A brand new")
    with pytest.raises(InvalidInput, match="vectors or an encoder"):
        bank.add(["x"])


def test_save_load_round_trip(tmp_path, small_bank, small_encoder):
    small_bank.save(tmp_path / "bank")
    loaded = PhraseBank.load(tmp_path / "bank", encoder_name=small_encoder.name, dimension=384)
    assert loaded.texts == small_bank.texts and loaded.encoder_name == small_encoder.name
    meta = json.loads((tmp_path / "bank" / "config.json").read_text())
    assert meta["type"] == "phrase_bank" and meta["format_version"] == 1 and meta["dimension"] == 384
    q = small_encoder.encode("Heavy rain flooded the village.")
    assert loaded.search(q, 2) == small_bank.search(q, 2)
    assert not list(tmp_path.glob(".*tmp"))


def test_saving_over_a_bank_keeps_its_card_but_not_its_old_files(tmp_path, rng):
    folder = tmp_path / "bank"
    vectors = _unit(rng, 40)
    texts = [f"entry {i}" for i in range(40)]
    PhraseBank.from_vectors(texts, vectors, encoder_name="test").save(folder)  # keeps its vectors (vectors.npy)
    (folder / "CARD.md").write_text("# My bank\n")
    (folder / "notes").mkdir()
    (folder / "notes" / "how.txt").write_text("built by hand")
    # the same bank saved over it keeping no vectors, then grown as `bank add` does (load, add, save)
    PhraseBank.from_vectors(texts, vectors, encoder_name="test", config=PhraseBankConfig(vector_dtype="none")).save(folder)
    grown = PhraseBank.load(folder)
    grown.add(["entry 40"], _unit(rng, 1))
    grown.save(folder)
    assert (folder / "CARD.md").read_text() == "# My bank\n" and (folder / "notes" / "how.txt").read_text() == "built by hand"
    assert not (folder / "vectors.npy").exists()  # the bank's own file, which it no longer writes, does not come back
    assert PhraseBank.load(folder).texts == texts + ["entry 40"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank"]  # no temporary or old folder left beside it


def test_load_rejects_other_encoder(tmp_path, small_bank):
    small_bank.save(tmp_path / "bank")
    with pytest.raises(IncompatibleArtifact) as err:
        PhraseBank.load(tmp_path / "bank", encoder_name="all-mpnet-base-v2", dimension=768)
    assert "all-MiniLM-L6-v2 (384-D)" in str(err.value) and "all-mpnet-base-v2 (768-D)" in str(err.value)


def test_check_encoder_names_both_spaces(small_bank, small_encoder):
    class EncoderDouble:  # test double: same dimension, another model
        name, dimension = "my-own-encoder", 384

    small_bank.check_encoder(small_encoder)  # the bank's own encoder passes
    with pytest.raises(IncompatibleArtifact, match=r"all-MiniLM-L6-v2 \(384-D\); got my-own-encoder \(384-D\)"):
        small_bank.check_encoder(EncoderDouble())


@pytest.mark.parametrize("name", ["index.faiss", "vectors.npy", "phrases.jsonl.gz"])
def test_corrupt_files_are_named(tmp_path, small_bank, name):
    small_bank.save(tmp_path / "bank")
    target = tmp_path / "bank" / name
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifact, match=name):
        PhraseBank.load(tmp_path / "bank")
    target.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CorruptArtifact, match="truncated"):
        PhraseBank.load(tmp_path / "bank")


def test_bad_queries(small_bank):
    with pytest.raises(InvalidEmbedding, match="expected 384-D vectors, got 10-D"):
        small_bank.search(np.ones(10), 1)
    bad = np.ones((2, 384), np.float32)
    bad[1, 3] = np.nan
    with pytest.raises(InvalidEmbedding, match="vector 1 contains NaN"):
        small_bank.search(bad, 1)
    with pytest.raises(InvalidEmbedding, match="all zeros"):
        small_bank.search(np.zeros(384), 1)


def test_empty_bank_and_bad_factory(rng):
    empty = PhraseBank.from_vectors([], np.zeros((0, 32), np.float32), encoder_name="test")
    with pytest.raises(EmptyBank):
        empty.search(_unit(rng, 1), 1)
    with pytest.raises(ConfigError, match="faiss cannot build"):
        PhraseBank.from_vectors(["a"], _unit(rng, 1), encoder_name="test", config=PhraseBankConfig(index_factory="NoSuchIndex"))
    with pytest.raises(ConfigError, match="cannot be trained on 10 vectors"):
        PhraseBank.from_vectors(["a"] * 10, _unit(rng, 10), encoder_name="test", config=PhraseBankConfig(index_factory="PQ8"))
    with pytest.raises(ConfigError, match="needs at least 64 vectors"):
        PhraseBank.from_vectors(["a"] * 10, _unit(rng, 10), encoder_name="test", config=PhraseBankConfig(index_factory="IVF64,Flat"))


def test_bank_without_vectors_uses_index_scores(rng):
    vectors = _unit(rng, 500)
    bank = PhraseBank.from_vectors([f"e{i}" for i in range(500)], vectors, encoder_name="test",
                                   config=PhraseBankConfig(index_factory="Flat", vector_dtype="none"))
    assert bank.vectors is None
    assert bank.search(vectors[7], 1)[0][0].id == 7
    np.testing.assert_allclose(bank.vector([7])[0], vectors[7], atol=1e-6)


def test_compressed_index_returns_approximate_vectors_and_says_so(rng):
    vectors = _unit(rng, 600, 64)
    ivf_pq = PhraseBank.from_vectors([f"e{i}" for i in range(600)], vectors, encoder_name="test",
                                     config=PhraseBankConfig(index_factory="IVF16,PQ16", vector_dtype="none"))
    approx = ivf_pq.vector([3, 599, 3])  # an IVF index needs its direct map to find an id: built on first use
    assert approx.shape == (3, 64) and not ivf_pq.vectors_exact
    np.testing.assert_allclose(np.linalg.norm(approx, axis=1), 1.0, atol=1e-5)
    cos = np.sum(approx * vectors[[3, 599, 3]], axis=1)
    assert 0.3 < cos.min() and cos.max() < 0.999  # close to the originals, but not equal to them
    assert ivf_pq.vector([]).shape == (0, 64)
    for factory in ("Flat", "HNSW8", "IVF4,Flat"):
        whole = PhraseBank.from_vectors([f"e{i}" for i in range(600)], vectors, encoder_name="test",
                                        config=PhraseBankConfig(index_factory=factory, vector_dtype="none"))
        assert whole.vectors_exact, factory
        np.testing.assert_allclose(whole.vector([3, 599]), vectors[[3, 599]], atol=1e-6)


def test_saved_folder_has_ordinary_permissions(tmp_path, small_bank):
    import os
    import stat

    small_bank.save(tmp_path / "bank")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "bank").stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((tmp_path / "bank" / "config.json").stat().st_mode) == 0o666 & ~mask
