from __future__ import annotations

import numpy as np
import pytest

from lightweight_decoder.decoders import PhraseBankDecoder
from lightweight_decoder.decoders.hybrid import _APPROXIMATE_MARGIN, HybridConfig, HybridDecoder, propose_edits
from lightweight_decoder.errors import ConfigError, IncompatibleArtifact
from lightweight_decoder.phrasebank import PhraseBank

from .conftest import BANK_TEXTS


@pytest.fixture(scope="module")
def generator(small_encoder):
    from lightweight_decoder.decoders.generative import create_generative_decoder

    # untrained: its candidates are noise, which the encoder-as-judge must not be fooled by
    return create_generative_decoder("tiny", 384, encoder_name=small_encoder.name, texts=BANK_TEXTS * 10, vocab_size=300, max_len=12)


@pytest.fixture(scope="module")
def bank(small_encoder):
    return PhraseBank.build(BANK_TEXTS + ["A quiet town.", "The village was small."], small_encoder)


def test_fast_path_returns_bank_sentences(bank, generator, small_encoder):
    hybrid = HybridDecoder(PhraseBankDecoder(bank), generator, small_encoder)
    result = hybrid.generate(small_encoder.encode(BANK_TEXTS[3]))
    assert result.text == BANK_TEXTS[3]
    assert result.details["route"] == "fast_path" and result.details["encoder_calls"] == 0


def test_correction_improves_monotonically_and_reports_exact_cosine(bank, generator, small_encoder):
    target_text = "The river flooded the town after three days of heavy rain."
    target = small_encoder.encode(target_text)
    # judged by cosine alone, the cosine can only rise (with a fluency term, the merit rises and the cosine may trade);
    # no time limit, so the encoder-call budget alone bounds the work and the result does not depend on the machine
    hybrid = HybridDecoder(PhraseBankDecoder(bank), generator, small_encoder,
                           HybridConfig(num_steps=20, edits_per_step=300, max_encoder_calls=30, max_seconds=None, fluency_weight=0.0))
    result = hybrid.generate(target)
    trace = result.details["cosine_per_step"]
    bank_best = bank.search(target, 1)[0][0].score
    assert result.details["bank_score"] == pytest.approx(bank_best, abs=1e-5)
    assert trace[0] >= bank_best - 2e-3  # the ranked pool contains the bank's best (judged in bf16)
    assert all(b >= a - 1e-6 for a, b in zip(trace, trace[1:]))
    assert result.details["route"] == "corrected" and result.details["steps"] >= 1
    assert result.score > bank_best + 0.01
    assert result.score == pytest.approx(float(small_encoder.encode(result.text) @ target), abs=2e-3)  # judged in bf16
    assert "town" in result.text


def test_budget_limits_encoder_calls(bank, generator, small_encoder):
    hybrid = HybridDecoder(PhraseBankDecoder(bank), generator, small_encoder, HybridConfig(max_encoder_calls=1, num_steps=20))
    result = hybrid.generate(small_encoder.encode("Completely unrelated words about astronomy and telescopes."))
    assert result.details["encoder_calls"] == 1 and result.details["steps"] == 0 and result.details["route"] == "rerank"
    batch = hybrid.generate(small_encoder.encode(["A dog barked loudly.", BANK_TEXTS[0]]), num_steps=0)
    assert [r.details["route"] for r in batch] == ["rerank", "fast_path"]


class _SlowEncoderDouble:
    """Test double: the small encoder, on a fake clock that advances ``seconds`` (10 ms) per 7 tokens of a batch
    padded to its longest text, plus as much again as 25 such tokens per call, as a real encoder costs (one text of
    6 tokens: 44 ms; 5 texts of up to 15 tokens: 143 ms)."""

    def __init__(self, encoder, seconds=0.01):
        self.inner, self.now, self.texts, self.seconds = encoder, 0.0, 0, seconds
        self.name, self.dimension = encoder.name, encoder.dimension

    def clock(self) -> float:
        return self.now

    def encode(self, texts, **kwargs):
        batch = [texts] if isinstance(texts, str) else list(texts)
        self.now += self.seconds * (25 + len(batch) * max(self.inner.token_lengths(batch))) / 7
        self.texts += len(batch)
        return self.inner.encode(texts, **kwargs)

    def token_lengths(self, texts):
        return self.inner.token_lengths(texts)


def test_max_seconds_cuts_a_round_to_what_the_time_left_pays_for(bank, generator, small_encoder, monkeypatch):
    from lightweight_decoder.decoders import hybrid as hybrid_module

    slow = _SlowEncoderDouble(small_encoder)
    monkeypatch.setattr(hybrid_module, "_clock", slow.clock)
    hybrid = HybridDecoder(PhraseBankDecoder(bank), generator, slow,
                           HybridConfig(num_steps=20, edits_per_step=48, max_encoder_calls=100, max_seconds=0.5))
    target = small_encoder.encode("The river flooded the town after three days of heavy rain.")
    slow.texts = 0
    result = hybrid.generate(target)
    # the bank's exact scores cost nothing; a full round of 48 edits of ~60 characters would cost ~1 s on its own
    assert slow.texts <= 50 and result.timings["total_ms"] <= 500 + 1e-6
    assert result.details["stopped_by"] in ("max_seconds", "converged") and result.details["encoder_calls"] >= 2
    assert hybrid.generate(target, max_seconds=0.01).details["stopped_by"] == "max_seconds"  # the pool alone spends it


class _GeneratorDouble:
    """Test double of GenerativeDecoder: greedy decoding of the query itself gives ``first``, of any other vector
    ``other``; beams and samples give numbered filler; it finds every text equally likely. Records each request
    (kind and vector) and advances ``clock_owner``'s fake clock by ``seconds`` per text it returns."""

    def __init__(self, dimension, first, other, clock_owner=None, seconds=0.0):
        self.embedding_dim, self.first, self.other = dimension, first, other
        self.clock_owner, self.seconds, self.requests, self.query = clock_owner, seconds, [], None

    def generate(self, vector, rescore=True, num_beams=1, do_sample=False, num_return_sequences=1, **kwargs):
        from lightweight_decoder.decoders.base import Candidate, DecodeResult

        assert rescore is False  # the hybrid judges candidates itself; re-encoding them here would be paid twice
        kind = "sample" if do_sample else "beam" if num_beams > 1 else "greedy"
        self.requests.append((kind, np.array(vector)))
        if self.clock_owner is not None:
            self.clock_owner.now += self.seconds * num_return_sequences
        if kind != "greedy":
            texts = [f"Filler number {i} from {kind}." for i in range(num_return_sequences)]
        else:
            texts = [self.first if self.query is not None and np.allclose(vector, self.query) else self.other]
        return DecodeResult(texts[0], float("nan"), "generative", [Candidate(t, float("nan"), "generator") for t in texts])

    def log_likelihood(self, texts, vector):
        return np.zeros(len(texts), dtype=np.float32)


def test_regenerates_from_the_residual_between_target_and_best(bank, small_encoder):
    target_text = "The river flooded the town after three days of heavy rain."
    target = small_encoder.encode(target_text)
    double = _GeneratorDouble(small_encoder.dimension, first="A dog barked loudly.", other=target_text)
    double.query = target
    hybrid = HybridDecoder(PhraseBankDecoder(bank), double, small_encoder,
                           HybridConfig(num_steps=3, num_beams=0, num_samples=0, residual_alpha=0.5, max_seconds=60))
    result = hybrid.generate(target)
    pool = [hit.text for hit in bank.search(target, 10)[0]] + ["A dog barked loudly."]
    best_vector = small_encoder.encode(pool)[int(np.argmax(small_encoder.encode(pool) @ target))]
    shifted = target + 0.5 * (target - best_vector)
    kind, vector = double.requests[1]  # the first correction round's regeneration
    assert kind == "greedy" and np.allclose(vector, shifted / np.linalg.norm(shifted), atol=1e-4)
    assert result.text == target_text and result.details["residual_steps"] == 1
    assert result.details["pool"] == ["bank", "greedy", "bank_rest"] and result.details["skipped"] == []
    hybrid.config = hybrid.config.replace(residual_alpha=0.0)
    assert hybrid.generate(target).details["residual_steps"] == 0 and len(double.requests) == 4  # greedy only


def test_the_pool_leaves_out_what_the_time_left_cannot_pay_for(bank, small_encoder, monkeypatch):
    from lightweight_decoder.decoders import hybrid as hybrid_module

    slow = _SlowEncoderDouble(small_encoder)
    monkeypatch.setattr(hybrid_module, "_clock", slow.clock)
    double = _GeneratorDouble(small_encoder.dimension, first="A dog barked loudly.", other="A cat sat.",
                              clock_owner=slow, seconds=0.2)
    hybrid = HybridDecoder(PhraseBankDecoder(bank), double, slow,
                           HybridConfig(num_steps=5, num_beams=4, num_samples=4, max_encoder_calls=100, max_seconds=0.4))
    target = small_encoder.encode("The river flooded the town after three days of heavy rain.")
    result = hybrid.generate(target)
    # the bank's exact scores cost nothing; greedy 0.2 s + judging it ~0.04 s; 4 beams (~0.44 s before measured) do not fit
    assert result.details["pool"] == ["bank", "greedy", "bank_rest"] and result.details["skipped"] == ["beam", "sample"]
    assert [kind for kind, _ in double.requests] == ["greedy"]  # too little time left for a regeneration (0.16 s < 0.2 s)
    assert result.timings["total_ms"] <= 400 + 1e-6
    assert hybrid.judge_cost.known and hybrid.judge_cost(1, 50) > 0  # measured: the next call prices judging before it judges
    health = hybrid.health()["judge_cost"]  # what an operator sees of it
    assert health["calls"] == hybrid.judge_cost.calls > 0 and health["fixed_ms"] >= 0 and health["margin"] == 1.0
    roomy = hybrid.generate(target, max_seconds=10, num_steps=0)
    assert roomy.details["pool"] == ["bank", "greedy", "beam", "sample", "bank_rest"] and roomy.details["skipped"] == []


def test_without_a_time_limit_the_text_does_not_depend_on_the_speed_of_the_machine(bank, small_encoder, monkeypatch):
    from lightweight_decoder.decoders import hybrid as hybrid_module

    target = small_encoder.encode("The river flooded the town after three days of heavy rain.")

    def run(seconds_per_text, max_seconds):
        slow = _SlowEncoderDouble(small_encoder, seconds=seconds_per_text)
        monkeypatch.setattr(hybrid_module, "_clock", slow.clock)
        double = _GeneratorDouble(small_encoder.dimension, first="A dog barked loudly.", other="A cat sat.",
                                  clock_owner=slow, seconds=seconds_per_text)
        double.query = target
        cfg = HybridConfig(num_steps=4, num_beams=2, num_samples=2, max_encoder_calls=100, max_seconds=max_seconds)
        return HybridDecoder(PhraseBankDecoder(bank), double, slow, cfg).generate(target)

    fast, slow = run(0.001, None), run(5.0, None)
    assert slow.details["pool"] == ["bank", "greedy", "beam", "sample", "bank_rest"] and slow.details["skipped"] == []
    assert slow.details["stopped_by"] != "max_seconds" and slow.details["steps"] >= 1
    assert (slow.text, slow.details["cosine_per_step"]) == (fast.text, fast.details["cosine_per_step"])
    limited = run(5.0, 1.0)  # the same machine speed under a time limit: the budget decides what is judged
    assert limited.details["skipped"] and limited.details["stopped_by"] == "max_seconds"
    assert HybridConfig.from_dict({"max_seconds": None}).max_seconds is None  # what a --config JSON's null gives


def test_works_without_a_generator(bank, small_encoder):
    hybrid = HybridDecoder(PhraseBankDecoder(bank), None, small_encoder, HybridConfig(num_steps=3))
    assert isinstance(hybrid.decode(small_encoder.encode("A small village by a river.")), str)


def test_propose_edits_are_seeded_and_distinct():
    pool = ["The river flooded the village.", "A quiet town, near the hills."]
    a = propose_edits("The river flooded the village.", pool, np.random.default_rng(0), 30)
    b = propose_edits("The river flooded the village.", pool, np.random.default_rng(0), 30)
    assert a == b and len(a) == len(set(a)) == 30 and "The river flooded the village." not in a


def test_suggested_words_are_placed_by_a_share_of_the_edits():
    pool = ["The river flooded the village.", "A quiet town, near the hills."]
    text = "The river flooded the village."
    plain = propose_edits(text, pool, np.random.default_rng(0), 200)
    assert propose_edits(text, pool, np.random.default_rng(0), 200, []) == plain  # no suggestions: the same edits
    edits = propose_edits(text, pool, np.random.default_rng(0), 200, ["Rain", "storm"])
    placed = [e for e in edits if {"Rain", "rain", "storm", "Storm"} & set(e.strip(".").split())]
    assert not any("storm" in e.lower() or "rain" in e.lower() for e in plain)
    # substitutions and insertions (2 of the 5 kinds) take a suggested word half the time: ~1 edit in 5
    assert 0.1 * len(edits) < len(placed) < 0.35 * len(edits)
    assert all(e.endswith(".") and e[0].isupper() for e in placed)  # cased and punctuated like any placed word


def test_edits_fit_case_and_do_not_repeat_words():
    """The default encoder lowercases, so the judge cannot reject "flooded The village" or prefer it to the
    cased text: edits case the words they move, and do not put a word twice in a row."""
    from lightweight_decoder.postprocess import fit_case, repeated_neighbours

    assert fit_case("The river flooded The village".split(), {3}) == "The river flooded the village".split()
    assert fit_case("river in Paris".split(), {0, 2}) == "River in Paris".split()  # names keep their capital
    assert fit_case("river in Paris".split(), {0}, capitalise_first=False) == "river in Paris".split()
    assert fit_case("It rained. the end".split(), {2}) == "It rained. The end".split()
    assert fit_case("flooded A.".split(), {1}) == "flooded a.".split()
    assert repeated_neighbours("the The village, village!".split()) == 2 and repeated_neighbours("a b a".split()) == 0

    pool = ["The river flooded the village.", "The town stood near the hills.", "A quiet town."]
    text = "The river flooded the village."
    edits = propose_edits(text, pool, np.random.default_rng(0), 200)
    assert len(edits) > 50
    for edit in edits:
        words = edit.split()
        assert repeated_neighbours(words) == 0, edit
        assert words[0][0].isupper(), edit
        assert not {"The", "A"} & set(words[1:]), edit
        assert edit.endswith(".") and "." not in edit[:-1], edit  # placed words bring no sentence end inside
    lower = propose_edits("the river flooded the village", pool, np.random.default_rng(0), 100)
    assert all(e[0].islower() and not e.endswith(".") for e in lower)  # a lower-case, unclosed text keeps its convention
    repeated = "The the river flooded the village."  # a repeat already there does not stop edits elsewhere
    assert any(e.startswith("The the") for e in propose_edits(repeated, pool, np.random.default_rng(0), 30))


def test_config_and_dimension_checks(bank, generator, small_encoder):
    with pytest.raises(ConfigError, match="tau"):
        HybridConfig(tau=2.0)
    with pytest.raises(ConfigError, match="max_seconds"):
        HybridConfig(max_seconds=0)

    class EncoderDouble:  # test double: claims another dimension
        name, dimension = "double", 768

    with pytest.raises(IncompatibleArtifact):
        HybridDecoder(PhraseBankDecoder(bank), generator, EncoderDouble())


class _RecordingEncoderDouble:
    """Test double: the small encoder, recording every text it is asked to encode and the size of each call."""

    def __init__(self, encoder):
        self.inner, self.name, self.dimension, self.seen, self.batches = encoder, encoder.name, encoder.dimension, [], []

    def encode(self, texts, **kwargs):
        batch = [texts] if isinstance(texts, str) else list(texts)
        self.seen += batch
        self.batches.append(len(batch))
        return self.inner.encode(texts, **kwargs)

    def token_lengths(self, texts):
        return self.inner.token_lengths(texts)


def _pq_bank(encoder):
    """The bank texts (and two more), their vectors, and a bank of them that keeps only PQ16x4 codes (approximate scores)."""
    from lightweight_decoder.config import PhraseBankConfig

    texts = BANK_TEXTS + ["A quiet town.", "The village was small."]
    vectors = encoder.encode(texts)
    return texts, vectors, PhraseBank.from_vectors(texts, vectors, encoder_name=encoder.name,
                                                   config=PhraseBankConfig(index_factory="PQ16x4", vector_dtype="none"))


def test_an_exact_bank_costs_no_encoding_and_an_approximate_one_is_judged_once(small_encoder):
    from lightweight_decoder.config import PhraseBankConfig

    texts, vectors, approximate = _pq_bank(small_encoder)
    target = small_encoder.encode("The river flooded the town after three days of heavy rain.")
    double = _GeneratorDouble(small_encoder.dimension, first="A dog barked loudly.", other="A cat sat.")
    cfg = HybridConfig(num_steps=3, num_beams=2, num_samples=0, max_seconds=60)
    exact = PhraseBank.from_vectors(texts, vectors, encoder_name=small_encoder.name,
                                    config=PhraseBankConfig(index_factory="Flat", vector_dtype="none"))
    recorder = _RecordingEncoderDouble(small_encoder)
    result = HybridDecoder(PhraseBankDecoder(exact), double, recorder, cfg).generate(target)
    assert not set(recorder.seen) & set(texts) and result.details["bank_score"] == pytest.approx(exact.search(target, 1)[0][0].score)
    assert len(recorder.seen) == len(set(recorder.seen))  # nothing judged twice

    recorder = _RecordingEncoderDouble(small_encoder)
    hybrid = HybridDecoder(PhraseBankDecoder(approximate), double, recorder, cfg)
    result = hybrid.generate(target)
    hits = {hit.text for hit in approximate.search(target, cfg.bank_k)[0]}
    assert len(recorder.seen) == len(set(recorder.seen)) and hits <= set(recorder.seen)  # each bank hit judged once
    assert result.score == pytest.approx(float(small_encoder.encode(result.text) @ target), abs=2e-3)
    recorder.seen.clear()
    fast = hybrid.generate(vectors[3])  # a bank sentence's own vector: the judged best few confirm it exactly
    assert fast.details["route"] == "fast_path" and fast.text == texts[3] and fast.details["encoder_calls"] == 1
    assert fast.score == pytest.approx(1.0, abs=2e-3) and len(recorder.seen) == hybrid.config.judge_k


def test_a_bank_sentence_that_its_compressed_index_scores_low_still_takes_the_fast_path(small_encoder):
    """PQ codes can score a sentence the bank holds far below its exact cosine of 1 (the shipped bank: as low as 0.68,
    bench/approximate_scores.py); the margin keeps such a hit judged first, so it comes back by the fast path."""
    texts, vectors, approximate = _pq_bank(small_encoder)
    cfg = HybridConfig(num_steps=0, num_beams=2, num_samples=0, max_seconds=None)
    scores = [approximate.search(v, 1)[0][0].score for v in vectors]
    low = [i for i, score in enumerate(scores) if score < cfg.tau - 0.15]  # judged after the generator at the old margin
    assert low  # the case this test is about (PQ16x4 scores some of these 20 sentences below 0.82 against themselves)
    double = _GeneratorDouble(small_encoder.dimension, first="A dog barked loudly.", other="A cat sat.")
    hybrid = HybridDecoder(PhraseBankDecoder(approximate), double, _RecordingEncoderDouble(small_encoder), cfg)
    for i in low:
        result = hybrid.generate(vectors[i])
        assert (result.details["route"], result.text) == ("fast_path", texts[i]), (scores[i], result.details["route"])


def test_the_generator_is_judged_before_a_compressed_bank_that_cannot_reach_tau(small_encoder):
    """A compressed bank's approximate best far below tau is not re-encoded first: the generator's greedy output and
    beams are, in one call, and the bank's hits follow in the last batch. A bank whose best could reach tau is judged
    first, for the fast path."""
    _, _, approximate = _pq_bank(small_encoder)
    target = small_encoder.encode("Completely unrelated words about astronomy and telescopes.")
    double = _GeneratorDouble(small_encoder.dimension, first="Telescopes watch the stars.", other="A cat sat.")
    double.query = target
    cfg = HybridConfig(num_steps=0, num_beams=2, num_samples=0, max_seconds=60)
    hits = [hit.text for hit in approximate.search(target, cfg.bank_k)[0]]
    assert approximate.search(target, 1)[0][0].score < cfg.tau - _APPROXIMATE_MARGIN  # the case this test is about
    recorder = _RecordingEncoderDouble(small_encoder)
    hybrid = HybridDecoder(PhraseBankDecoder(approximate), double, recorder, cfg)
    hybrid.generate(target)
    assert recorder.batches == [1, 2, len(hits)]  # the decoder's first call prices judging on the greedy text alone
    recorder.seen.clear()
    recorder.batches.clear()
    result = hybrid.generate(target)
    assert recorder.seen == ["Telescopes watch the stars.", "Filler number 0 from beam.", "Filler number 1 from beam."] + hits
    assert recorder.batches == [3, len(hits)] and result.details["encoder_calls"] == 2
    assert result.details["pool"] == ["bank", "greedy", "beam", "bank_rest"] and result.details["skipped"] == []
    # the best judged hit, as the judge encoded it (bf16 on a CPU with bf16 instructions: ~3e-5 off fp32 here)
    judged = small_encoder.encode(hits, precision=cfg.judge_precision)
    assert result.details["bank_score"] == pytest.approx(max(judged @ target), abs=1e-5)

    first = small_encoder.encode(hits[:cfg.judge_k], precision=cfg.judge_precision)  # as the judge encodes them
    tau = float(max(first @ target)) - 1e-4  # the judged best reaches it
    assert approximate.search(target, 1)[0][0].score >= tau - _APPROXIMATE_MARGIN
    recorder = _RecordingEncoderDouble(small_encoder)
    near = HybridDecoder(PhraseBankDecoder(approximate), double, recorder, cfg.replace(tau=tau))
    assert near.generate(target).details["route"] == "fast_path" and recorder.seen == hits[:cfg.judge_k]


def test_the_judge_prices_a_token_of_a_padded_batch_and_a_fixed_cost_per_call(small_encoder, monkeypatch):
    from lightweight_decoder.decoders import hybrid as hybrid_module

    class PaddedEncoderDouble(_SlowEncoderDouble):
        """Test double: a fixed 50 ms per call on top of 1 ms per token of the batch padded to its longest text, as a
        real encoder has."""

        def encode(self, texts, **kwargs):
            self.now += 0.05 + 0.001 * len(texts) * max(self.inner.token_lengths(texts))
            return self.inner.encode(texts, **kwargs)

    slow = PaddedEncoderDouble(small_encoder)
    monkeypatch.setattr(hybrid_module, "_clock", slow.clock)
    judge = hybrid_module._Judge(slow, small_encoder.encode("A cat."), HybridConfig(), start=0.0)
    assert not judge.cost.known and judge.cost(5, 40) == 0 and judge.affordable(40) == HybridConfig().edits_per_step
    short, long = "One.", "A sentence much longer than those, and longer still, with words on words."
    s, n = small_encoder.token_lengths([short, long])  # the encoder's tokens, not characters, are what it pads
    assert judge.sizes([long, short]) == [n, s] and s < n < len(long) and judge.sizes([""]) == [0]
    judge([short, "Two.", "Six."])  # 3 x s tokens
    call = hybrid_module._CALL_UNITS  # one size known: a call's fixed cost is taken as this many units
    assert judge.cost.per_unit == pytest.approx((0.05 + 0.003 * s) / (call + 3 * s))
    assert judge.cost.fixed == pytest.approx(call * judge.cost.per_unit)
    judge([long])  # 1 x n: two sizes give the fixed cost and the token's price
    assert judge.cost.fixed == pytest.approx(0.05) and judge.cost.per_unit == pytest.approx(0.001)
    assert judge.cost(10, 40) == pytest.approx(0.45) and judge.seconds == pytest.approx(0.1 + 0.003 * s + 0.001 * n)
    assert judge.affordable(40) == int((1.0 - judge.seconds - 0.05) / 0.04) < judge.affordable(10)
    fresh = hybrid_module._Judge(slow, small_encoder.encode("A cat."), HybridConfig(), start=slow.now, cost=judge.cost)
    assert fresh.affordable(40) == int((1.0 - 0.05) / 0.04)  # the decoder's earlier calls price this one's first
    # what fits is priced at the texts' real sizes, with the texts already in the batch
    tiny, huge = "Hi.", " ".join(["word"] * 150)  # 152 tokens
    fit = int(0.95 / (0.001 * small_encoder.token_lengths([huge])[0]))  # as many huge ones as 0.95 s pays for
    assert fresh.fitting([huge] * 10) == [huge] * fit and fresh.fitting([tiny] * fit + [huge]) == [tiny] * fit
    assert fresh.fitting([tiny], judged_with=[huge] * fit) == [] and fresh.fitting([]) == []
    unlimited = hybrid_module._Judge(slow, small_encoder.encode("A cat."), HybridConfig(max_seconds=None), start=slow.now, cost=judge.cost)
    assert unlimited.fitting([huge] * 50) == [huge] * 50


def test_the_judging_price_follows_the_machine_and_stays_physical():
    from lightweight_decoder.decoders.hybrid import _CALL_UNITS, JudgeCost

    cost = JudgeCost()
    for units in (100, 400, 900, 200):  # 40 ms a call + 0.5 ms a unit, then the machine slows to twice that
        cost.record(units // 10, 10, 0.04 + 0.0005 * units)
    assert cost.fixed == pytest.approx(0.04) and cost.per_unit == pytest.approx(0.0005)
    for i in range(60):
        cost.record(10 + 30 * (i % 3), 10, 2 * (0.04 + 0.05 * (1 + 3 * (i % 3))))
    assert cost.fixed == pytest.approx(0.08, rel=0.05) and cost.per_unit == pytest.approx(0.001, rel=0.05)
    same = JudgeCost()
    for seconds in (0.10, 0.12, 0.11):  # one size only: the fixed cost cannot be told from the unit's, it is a share
        same.record(4, 50, seconds)
    assert same.fixed == pytest.approx(_CALL_UNITS * same.per_unit) and same(4, 50) == pytest.approx(0.11, rel=0.05)
    noisy = JudgeCost()
    noisy.record(1, 10, 0.2)
    noisy.record(10, 100, 0.1)  # the bigger call was faster: no positive price fits, the share stands in
    assert noisy.per_unit > 0 and noisy.fixed == pytest.approx(_CALL_UNITS * noisy.per_unit)
    steep = JudgeCost()
    steep.record(1, 100, 0.05)
    steep.record(10, 100, 0.95)  # the line would cost less than nothing for a tiny call: no fixed cost
    assert steep.fixed == 0 and steep.per_unit > 0 and steep(1, 1) > 0


def test_the_judge_plans_with_a_margin_for_how_far_recent_calls_missed_their_price():
    from lightweight_decoder.decoders.hybrid import _MISSES_NEEDED, JudgeCost

    cost = JudgeCost()
    for i in range(_MISSES_NEEDED + 5):  # exactly on a line: the plan is the estimate
        cost.record(1 + i, 50, 0.04 + 0.0005 * 50 * (1 + i))
    assert len(cost._misses) > _MISSES_NEEDED and cost.margin == pytest.approx(1.0)
    assert cost(8, 50) == pytest.approx(cost.estimate(8, 50))
    for i in range(40):  # calls now run 20% over or under the line by turns: plan for the slow ones
        cost.record(1 + i % 8, 50, (0.04 + 0.0005 * 50 * (1 + i % 8)) * (1.2 if i % 2 else 0.8))
    assert 1.1 < cost.margin < 1.4 and cost(8, 50) == pytest.approx(cost.estimate(8, 50) * cost.margin)
    few = JudgeCost()
    for i in range(_MISSES_NEEDED):  # one miss short of enough: no margin yet
        few.record(1 + i % 3, 50, 0.1 * (1.5 if i % 2 else 0.7))
    assert few.margin == 1.0


def test_log_likelihood_matches_token_by_token_decoding(generator, small_encoder):
    """The generator's mean token log-probability of a text, in one padded batch, against a reference that feeds the
    text one token at a time through the KV-cached decoding path."""
    import torch

    vector = small_encoder.encode("A small village by a river.")
    texts = ["The cat sat.", "A dog barked at the mailman all morning."]
    mc = generator.model.config
    reference = []
    for text in texts:
        ids = generator.tokenizer.encode(text).ids[: mc.max_len - 1] + [mc.eos_id]
        cond = torch.from_numpy(vector)[None]
        logits, cache = generator.model.start(cond, torch.tensor([mc.bos_id]))
        state, total = generator.model.conditioning(cond), 0.0
        for t, token in enumerate(ids):
            total += float(torch.log_softmax(logits[0].float(), -1)[token])
            if t + 1 < len(ids):
                logits, cache = generator.model.step(torch.tensor([token]), cache, mc.prefix_len + 1 + t, state)
        reference.append(total / len(ids))
    batched = generator.log_likelihood(texts, vector)
    np.testing.assert_allclose(batched, reference, atol=1e-4)
    np.testing.assert_allclose([generator.log_likelihood([t], vector)[0] for t in texts], batched, atol=1e-5)  # padding changes nothing
    with pytest.raises(ValueError, match="non-empty texts"):
        generator.log_likelihood(["fine", " "], vector)


class _FluencyDouble(_GeneratorDouble):
    """Test double: a generator that finds ``fluent`` likely (0 nats per token) and every other text unlikely (-5)."""

    def __init__(self, dimension, fluent):
        super().__init__(dimension, first=fluent, other=fluent)
        self.fluent = fluent

    def log_likelihood(self, texts, vector):
        return np.array([0.0 if t == self.fluent else -5.0 for t in texts], dtype=np.float32)


def test_the_judge_weighs_fluency_against_cosine(small_encoder):
    """Of two candidates about as close to the target, the one the generator finds likelier wins; with fluency_weight 0
    the closer one does. The result reports the winner's cosine either way."""
    target = small_encoder.encode("The river flooded the village after heavy rain.")
    closer, fluent = "Heavy rain flooded the village by the river.", "The river flooded the valley after heavy rain."
    cosines = small_encoder.encode([closer, fluent]) @ target
    assert 0 < cosines[0] - cosines[1] < 0.2  # the test's premise: the closer one is closer, but not by much
    bank = PhraseBank.build([closer, fluent, "Stocks fell sharply on Monday."], small_encoder)
    double = _FluencyDouble(small_encoder.dimension, fluent)
    cfg = HybridConfig(tau=1.01, num_steps=0, num_beams=0, num_samples=0, max_seconds=None)
    judged = HybridDecoder(PhraseBankDecoder(bank), double, small_encoder, cfg).generate(target)
    assert judged.text == fluent and judged.score == pytest.approx(cosines[1], abs=1e-3)
    assert [c.text for c in judged.candidates][:1] == [fluent]  # candidates in the judge's order
    by_cosine = HybridDecoder(PhraseBankDecoder(bank), double, small_encoder, cfg.replace(fluency_weight=0.0)).generate(target)
    assert by_cosine.text == closer and by_cosine.score == pytest.approx(cosines[0], abs=1e-3)
    with pytest.raises(ConfigError, match="fluency_weight"):
        HybridConfig(fluency_weight=-1)
