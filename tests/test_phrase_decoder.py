from __future__ import annotations

import threading

import numpy as np
import pytest

from lightweight_decoder.config import PhraseDecoderConfig
from lightweight_decoder.decoders import DecodeResult, PhraseBankDecoder
from lightweight_decoder.errors import ConfigError, EmptyBank, InvalidEmbedding, InvalidInput
from lightweight_decoder.phrasebank import PhraseBank
from lightweight_decoder.postprocess import clean_text, join_pieces

from .conftest import BANK_TEXTS


@pytest.fixture
def decoder(small_bank, small_encoder):
    return PhraseBankDecoder(small_bank, encoder=small_encoder)


def test_exact_match_for_bank_sentences(decoder, small_encoder):
    assert decoder.decode(small_encoder.encode(BANK_TEXTS)) == BANK_TEXTS
    assert decoder.decode(small_encoder.encode(BANK_TEXTS[2])) == BANK_TEXTS[2]


def test_generate_reports_details(decoder, small_encoder):
    result = decoder.generate(small_encoder.encode("A kitten sat on the rug."))
    assert isinstance(result, DecodeResult)
    assert result.method == "greedy" and not result.fallback_used
    assert result.candidates[0].text == result.text and 0 < result.score <= 1
    assert [c.score for c in result.candidates] == sorted((c.score for c in result.candidates), reverse=True)
    assert {"search_ms", "total_ms"} <= set(result.timings)


def test_weighted_prefers_the_consensus(small_encoder):
    texts = ["The cat sat on the mat.", "A cat is sitting on a mat.", "The cat sat on a rug.", "Quantum chromodynamics of quarks."]
    bank = PhraseBank.build(texts, small_encoder)
    target = small_encoder.encode("Quantum chromodynamics of quarks.") * 0.56 + small_encoder.encode("A cat is sitting on a mat.") * 0.44
    target /= np.linalg.norm(target)
    greedy = PhraseBankDecoder(bank).generate(target, method="greedy")
    weighted = PhraseBankDecoder(bank, PhraseDecoderConfig(consensus_weight=0.6)).generate(target, method="weighted")
    assert greedy.text == "Quantum chromodynamics of quarks."
    assert "cat" in weighted.text  # three agreeing candidates outvote the lone best hit


def test_beam_search_composes_when_it_beats_single_entries(small_encoder):
    texts = ["The river flooded the village.", "Heavy rain fell for three days.", "Stocks rose on Monday.", "A cat slept."]
    bank = PhraseBank.build(texts, small_encoder)
    decoder = PhraseBankDecoder(bank, PhraseDecoderConfig(method="beam_search", top_k=4), encoder=small_encoder)
    target = small_encoder.encode("The river flooded the village after heavy rain fell for three days.")
    result = decoder.generate(target)
    assert result.details["parts"] == 2 and "river" in result.text and "rain" in result.text
    assert result.score > max(h.score for h in bank.search(target, 4)[0])
    assert np.isclose(result.score, small_encoder.encode(result.text) @ target, atol=2e-3)  # re-encoded in bf16
    # a bank sentence is still returned verbatim: no composition beats it
    assert decoder.decode(small_encoder.encode(texts[2])) == texts[2]


def test_beam_search_needs_an_encoder(small_bank):
    with pytest.raises(ConfigError, match="encoder"):
        PhraseBankDecoder(small_bank, PhraseDecoderConfig(method="beam_search"))


def test_context_aware_avoids_repeating_itself(small_bank, small_encoder):
    decoder = PhraseBankDecoder(small_bank, PhraseDecoderConfig(method="context_aware", repeat_penalty=0.5))
    session = decoder.start_session()
    q = small_encoder.encode("A cat sat on a mat.")
    first = decoder.decode(q, session_id=session)
    second = decoder.decode(q, session_id=session)
    assert first == "The cat sat on the mat." and second != first
    assert decoder.session_history(session) == [first, second]
    decoder.reset_session(session)
    assert decoder.decode(q, session_id=session) == first
    decoder.end_session(session)
    with pytest.raises(InvalidInput, match="unknown or expired session"):
        decoder.decode(q, session_id=session)


def test_sessions_expire(small_bank):
    decoder = PhraseBankDecoder(small_bank, PhraseDecoderConfig(session_ttl=1e-9))
    session = decoder.start_session()
    with pytest.raises(InvalidInput, match="expired"):
        decoder.session_history(session)


def test_cache_hits_for_repeated_and_nearby_vectors(decoder, small_encoder):
    q = small_encoder.encode("The weather was sunny.")
    decoder.decode(q)
    decoder.decode(q + 1e-6)  # quantised key: a tiny perturbation still hits
    stats = decoder.health()
    assert stats["cache_hits"] == 1 and stats["cache_hit_rate"] == 0.5
    assert stats["status"] == "ok" and stats["bank_size"] == len(BANK_TEXTS) and stats["decodes"] == 2


def test_strict_errors_and_lenient_fallbacks(small_bank):
    strict = PhraseBankDecoder(small_bank)
    with pytest.raises(InvalidEmbedding, match="expected 384-D"):
        strict.decode(np.ones(768))
    with pytest.raises(InvalidEmbedding, match="NaN"):
        strict.decode(np.full(384, np.nan))
    lenient = PhraseBankDecoder(small_bank, PhraseDecoderConfig(strict=False))
    batch = np.ones((3, 384), np.float32)
    batch[1] = np.inf
    batch[2] = 0
    results = lenient.generate(batch)
    assert [r.fallback_used for r in results] == [False, True, True]
    assert "vector 1 contains inf" in results[1].error and "all zeros" in results[2].error
    wrong = lenient.generate(np.ones(10))
    assert wrong.fallback_used and "384-D" in wrong.error and wrong.text == ""


def test_empty_bank(small_encoder):
    empty = PhraseBank.from_vectors([], np.zeros((0, 384), np.float32), encoder_name=small_encoder.name)
    with pytest.raises(EmptyBank):
        PhraseBankDecoder(empty).decode(np.ones(384))
    result = PhraseBankDecoder(empty, PhraseDecoderConfig(strict=False)).generate(np.ones(384))
    assert result.fallback_used and result.error == "empty bank"


def test_thread_safe_decoding(decoder, small_encoder):
    queries = small_encoder.encode(BANK_TEXTS)
    errors, outputs = [], {}

    def work(i):
        try:
            session = decoder.start_session()
            outputs[i] = decoder.decode(queries, session_id=session, method="context_aware" if i % 2 else "greedy")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(out == BANK_TEXTS for i, out in outputs.items() if i % 2 == 0)


def test_postprocessor():
    assert clean_text("the cat  sat , on the the mat") == "The cat sat, on the mat."
    assert clean_text("iPhone sales rose") == "iPhone sales rose."
    assert join_pieces(["The river flooded.", "The rain lasted days."]) == "The river flooded, the rain lasted days."


class CountingEncoderDouble:
    """Test double: a real encoder that counts how many texts it was asked to encode."""

    def __init__(self, encoder):
        self.inner, self.name, self.dimension, self.texts = encoder, encoder.name, encoder.dimension, 0

    def encode(self, texts, **kwargs):
        self.texts += 1 if isinstance(texts, str) else len(texts)
        return self.inner.encode(texts, **kwargs)


def _index_only_bank(encoder, factory):
    from lightweight_decoder.config import PhraseBankConfig

    vectors = encoder.encode(BANK_TEXTS)
    return PhraseBank.from_vectors(BANK_TEXTS, vectors, encoder_name=encoder.name,
                                   config=PhraseBankConfig(index_factory=factory, vector_dtype="none")), vectors


def test_index_only_bank_reranks_close_hits_exactly(small_encoder):
    bank, vectors = _index_only_bank(small_encoder, "PQ16x4")
    counter = CountingEncoderDouble(small_encoder)
    decoder = PhraseBankDecoder(bank, PhraseDecoderConfig(rerank_margin=1.0), encoder=counter)
    assert decoder.decode(vectors) == BANK_TEXTS
    assert len(BANK_TEXTS) * 2 <= counter.texts <= len(BANK_TEXTS) * decoder.config.top_k  # a wide margin re-encodes many hits
    result = decoder.generate(small_encoder.encode("The cat sat on the mat!"))
    assert np.isclose(result.score, small_encoder.encode(result.text) @ small_encoder.encode("The cat sat on the mat!"), atol=2e-3)
    tight = CountingEncoderDouble(small_encoder)
    PhraseBankDecoder(bank, PhraseDecoderConfig(rerank_margin=0.0, cache_size=0), encoder=tight).decode(vectors[0])
    assert tight.texts <= 1  # a clear winner needs no re-encoding


def test_index_only_bank_with_exact_scores_is_not_reencoded(small_encoder):
    bank, vectors = _index_only_bank(small_encoder, "Flat")
    counter = CountingEncoderDouble(small_encoder)
    decoder = PhraseBankDecoder(bank, PhraseDecoderConfig(rerank_margin=1.0), encoder=counter)
    assert decoder.decode(vectors) == BANK_TEXTS and counter.texts == 0  # a flat index scores exactly already
