"""Training on a tiny corpus: the loop learns, resumes exactly, and saves a loadable decoder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lightweight_decoder.decoders.generative import GenerativeDecoder, create_generative_decoder
from lightweight_decoder.errors import ConfigError, CorruptArtifact, IncompatibleArtifact, InvalidEmbedding
from lightweight_decoder.train import TrainConfig, _Batches, learning_rate, train

from .conftest import BANK_TEXTS

TINY = {"vocab_size": 300, "max_len": 64}


@pytest.fixture(scope="module")
def corpus(small_encoder):
    texts = BANK_TEXTS * 4  # 16 distinct sentences; the decoder should memorise them
    return texts, small_encoder.encode(texts)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus, small_encoder):
    out = tmp_path_factory.mktemp("gen")
    texts, vectors = corpus
    cfg = TrainConfig(steps=400, batch_size=32, lr=3e-3, warmup_steps=20, eval_every=200, checkpoint_every=200,
                      curriculum_steps=100, noise_std=0.0, precision="fp32")
    decoder = train(out, texts, vectors, encoder_name=small_encoder.name, preset="tiny", train_config=cfg, model_overrides=TINY,
                    dev_texts=BANK_TEXTS, dev_vectors=small_encoder.encode(BANK_TEXTS), encoder=small_encoder, show_progress_bar=False)
    return out, decoder


def test_learns_to_reproduce_training_sentences(trained, small_encoder):
    out, decoder = trained
    outputs = decoder.decode(small_encoder.encode(BANK_TEXTS))
    exact = np.mean([o == t for o, t in zip(outputs, BANK_TEXTS)])
    assert exact >= 0.75, list(zip(outputs, BANK_TEXTS))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [200, 400]
    assert log[-1]["lm"] < log[0]["lm"] and log[-1]["exact_match"] >= 0.75 and log[-1]["cosine"] > 0.9
    assert log[-1]["nll"] < log[0]["nll"]  # the dev texts' likelihood, logged at every evaluation


def test_likelihood_measures_what_the_embedding_tells_the_decoder(trained, small_encoder):
    """A decoder that memorised its sentences predicts each from its own embedding far better than from another's."""
    from lightweight_decoder.quality import likelihood

    _, decoder = trained
    vectors = small_encoder.encode(BANK_TEXTS)
    scores = likelihood(decoder, BANK_TEXTS, vectors)
    assert scores["nll"] + 1.0 < scores["nll_mismatched"]
    assert scores["perplexity"] == pytest.approx(math.exp(scores["nll"]), rel=1e-3)
    assert likelihood(decoder, BANK_TEXTS, vectors) == scores  # the derangement is seeded
    assert likelihood(decoder, BANK_TEXTS[:1], vectors[:1])["nll_mismatched"] is None  # one text has no other to read


def test_sequence_log_probs_pair_each_text_with_its_vector(trained, small_encoder):
    _, decoder = trained
    vectors = small_encoder.encode(BANK_TEXTS)
    sums, counts = decoder.sequence_log_probs(BANK_TEXTS, vectors, batch_size=3)  # batches of 3 with a remainder
    for i, text in enumerate(BANK_TEXTS):
        one_sum, one_count = decoder.sequence_log_probs([text], vectors[i])  # one vector shared by the texts given
        assert sums[i] == pytest.approx(one_sum[0], abs=1e-4) and counts[i] == one_count[0]
        assert counts[i] == len(decoder.tokenizer.encode(text).ids) + 1  # its tokens and the end of text
    np.testing.assert_allclose(decoder.log_likelihood(BANK_TEXTS, vectors), sums / counts, atol=1e-5)
    with pytest.raises(ValueError, match=f"{len(BANK_TEXTS)} texts but 2 vectors"):
        decoder.sequence_log_probs(BANK_TEXTS, vectors[:2])
    with pytest.raises(InvalidEmbedding, match="384-D"):
        decoder.sequence_log_probs(BANK_TEXTS, vectors[:, :10])


def test_saved_decoder_loads_and_generates(trained, small_encoder):
    out, decoder = trained
    loaded = GenerativeDecoder.load(out, encoder=small_encoder)  # the training folder's decoder/
    q = small_encoder.encode(BANK_TEXTS[:3])
    assert loaded.decode(q) == decoder.decode(q)
    result = loaded.generate(q[0], num_beams=3, num_return_sequences=2)
    assert result.method == "generative" and len(result.candidates) == 2 and result.token_ids
    assert result.score == pytest.approx(float(small_encoder.encode(result.text) @ q[0]), abs=1e-4)
    unscored = loaded.generate(q[0], num_beams=3, num_return_sequences=2, rescore=False)  # the caller judges
    assert math.isnan(unscored.score) and sorted(c.text for c in unscored.candidates) == sorted(c.text for c in result.candidates)
    meta = json.loads((out / "decoder" / "config.json").read_text())
    assert meta["type"] == "generative_decoder" and meta["metadata"]["steps"] == 400 and meta["parameters"] < 1_000_000


@pytest.mark.parametrize("scheme, min_cosine", [("fp16", 0.9999), ("int8", 0.95)])
def test_converted_decoder_decodes_like_the_float_one(trained, small_encoder, tmp_path, scheme, min_cosine):
    out, decoder = trained
    q = small_encoder.encode(BANK_TEXTS)
    small = GenerativeDecoder.load(out, encoder=small_encoder, quantize=scheme)
    assert not any(type(m) is torch.nn.Linear for m in small.model.modules())  # every linear layer was converted
    assert small.num_parameters == decoder.num_parameters and scheme in repr(small) and small.health()["quantization"] == scheme
    with torch.no_grad():  # the model's numbers changed, a little
        bos = torch.full((len(q),), decoder.model.config.bos_id)
        exact, approx = decoder.model.start(torch.from_numpy(q), bos)[0], small.model.start(torch.from_numpy(q), bos)[0]
    assert not torch.equal(exact, approx)
    assert torch.nn.functional.cosine_similarity(exact, approx).min() > min_cosine
    assert small.decode(q) == decoder.decode(q)  # and the memorised sentences come out the same
    with pytest.raises(ConfigError, match="cannot be saved"):
        small.save(tmp_path / scheme)
    assert not (tmp_path / scheme).exists()
    with pytest.raises(ConfigError, match="already quantized"):
        small.quantize("int8")


def test_fp16_text_does_not_depend_on_the_batch(trained, small_encoder):
    """fp16 weights leave the activations in fp32: a sentence decodes the same alone and among others
    (int8's per-call input scale does not promise this)."""
    out, _ = trained
    fp16 = GenerativeDecoder.load(out, quantize="fp16")
    rng = np.random.default_rng(0)  # off the memorised sentences, where small differences change the text
    q = small_encoder.encode(BANK_TEXTS) + rng.normal(scale=0.05, size=(len(BANK_TEXTS), small_encoder.dimension)).astype(np.float32)
    assert fp16.decode(q) == [fp16.decode(row) for row in q]


def test_fp16_weights_halve_the_file_and_load_as_fp32(trained, small_encoder, tmp_path):
    out, decoder = trained
    decoder.save(tmp_path / "fp32")
    decoder.save(tmp_path / "fp16", weights="fp16")
    size = {w: (tmp_path / w / "model.safetensors").stat().st_size for w in ("fp32", "fp16")}
    assert size["fp16"] < 0.52 * size["fp32"]
    assert json.loads((tmp_path / "fp16" / "config.json").read_text())["weights"] == "fp16"
    assert all(p.dtype == torch.float32 for p in decoder.model.parameters())  # saving did not change the decoder
    loaded = GenerativeDecoder.load(tmp_path / "fp16", encoder=small_encoder)
    state, saved = loaded.model.state_dict(), decoder.model.state_dict()
    for name, value in saved.items():  # fp32 again, each weight the fp16 value nearest the trained one
        assert state[name].dtype == value.dtype
        assert torch.equal(state[name], value.half().to(value.dtype) if value.is_floating_point() else value), name
    q = small_encoder.encode(BANK_TEXTS)
    assert loaded.decode(q) == decoder.decode(q)
    quantized = GenerativeDecoder.load(tmp_path / "fp16", quantize="fp16")  # fp16 -> fp32 -> fp16 loses nothing more
    assert quantized.decode(q) == loaded.decode(q)


def test_weight_format_is_checked(trained, small_encoder, tmp_path):
    out, decoder = trained
    with pytest.raises(ConfigError, match="unknown weight format 'bf16'"):
        decoder.save(tmp_path / "x", weights="bf16")
    assert not (tmp_path / "x").exists()
    decoder.save(tmp_path / "dec")
    meta = json.loads((tmp_path / "dec" / "config.json").read_text())
    (tmp_path / "dec" / "config.json").write_text(json.dumps({**meta, "weights": "int4"}))
    with pytest.raises(IncompatibleArtifact, match="unknown weight format 'int4'"):
        GenerativeDecoder.load(tmp_path / "dec")
    del meta["weights"]  # a folder saved before the field existed holds fp32
    (tmp_path / "dec" / "config.json").write_text(json.dumps(meta))
    q = small_encoder.encode(BANK_TEXTS[:4])
    assert GenerativeDecoder.load(tmp_path / "dec").decode(q) == decoder.decode(q)


def test_unknown_quantization_is_named(trained):
    with pytest.raises(ConfigError, match="unknown quantization 'int4'"):
        GenerativeDecoder.load(trained[0], quantize="int4")


def test_saved_decoder_files_have_ordinary_permissions(trained, tmp_path):
    import os
    import stat

    trained[1].save(tmp_path / "dec")
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):  # safetensors alone would leave 0600
        assert stat.S_IMODE((tmp_path / "dec" / name).stat().st_mode) == 0o666 & ~mask, name


def test_decoder_input_checks(trained, small_encoder):
    out, _ = trained
    loaded = GenerativeDecoder.load(out)
    with pytest.raises(InvalidEmbedding, match="expected 384-D"):
        loaded.decode(np.ones(768))
    assert np.isnan(loaded.generate(small_encoder.encode("x")).score)  # no encoder attached: no cosine
    with pytest.raises(IncompatibleArtifact, match="all-MiniLM-L6-v2"):
        GenerativeDecoder(loaded.model, loaded.tokenizer, encoder_name="other-encoder", encoder=small_encoder)


def test_damaged_weights_are_named(trained, tmp_path):
    import shutil

    out, _ = trained
    shutil.copytree(out / "decoder", tmp_path / "d")
    weights = tmp_path / "d" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CorruptArtifact, match="model.safetensors"):
        GenerativeDecoder.load(tmp_path / "d")


def test_resume_matches_an_uninterrupted_run(tmp_path, corpus, small_encoder, monkeypatch):
    texts, vectors = corpus
    cfg = TrainConfig(steps=30, batch_size=16, warmup_steps=5, eval_every=10, checkpoint_every=10, precision="fp32")
    kwargs = dict(encoder_name=small_encoder.name, preset="tiny", train_config=cfg, model_overrides=TINY, show_progress_bar=False)
    straight = train(tmp_path / "a", texts, vectors, **kwargs)

    original = _Batches.get

    def interrupted(self, step):  # test double: the process is killed at step 20
        if step == 20:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(_Batches, "get", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "b", texts, vectors, **kwargs)
    monkeypatch.setattr(_Batches, "get", original)
    resumed = train(tmp_path / "b", texts, vectors, **kwargs)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)


def test_schedule_and_curriculum():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1, curriculum_steps=50, curriculum_start_len=4, schedule="cosine")
    assert learning_rate(0, cfg, 100) == pytest.approx(0.1)
    assert learning_rate(10, cfg, 100) == pytest.approx(1.0)
    assert learning_rate(100, cfg, 100) == pytest.approx(0.1)
    assert learning_rate(55, cfg, 100) == pytest.approx(0.55)  # halfway through the decay
    wsd = cfg.replace(schedule="wsd", decay_fraction=0.2)  # stable at lr until step 80, then the same cosine over 80-100
    assert [learning_rate(s, wsd, 100) for s in (0, 10, 79, 80)] == pytest.approx([0.1, 1.0, 1.0, 1.0])
    assert learning_rate(90, wsd, 100) == pytest.approx(0.55) and learning_rate(100, wsd, 100) == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="schedule must be one of"):
        TrainConfig(schedule="linear")
    ids = [[5] * n for n in range(2, 20)]
    batches = _Batches(ids, np.ones((len(ids), 4), np.float32), cfg.replace(batch_size=4), max_len=20, pad_id=0, bos_id=1)
    assert batches.allowed_length(0) == 4 and batches.allowed_length(50) == 20
    _, inputs, targets, memory = batches.get(0)
    assert inputs.shape[1] <= 5 and (inputs[:, 0] == 1).all() and memory is None  # no memory slots, no memory rows


def test_length_grouping_pads_less_and_replays_exactly():
    rng = np.random.default_rng(0)
    ids = [[5] * int(n) for n in rng.integers(2, 60, 2000)]
    vectors = rng.standard_normal((len(ids), 4)).astype(np.float32)

    def padded_width(grouping: int) -> float:
        cfg = TrainConfig(steps=100, batch_size=32, curriculum_steps=0, noise_std=0.0, length_grouping=grouping)
        batches = _Batches(ids, vectors, cfg, max_len=64, pad_id=0, bos_id=1)
        return float(np.mean([batches.get(step)[1].shape[1] for step in range(64)]))

    assert padded_width(8) < 0.7 * padded_width(1)  # random batches pad to ~the longest of 32
    cfg = TrainConfig(steps=100, batch_size=32, curriculum_steps=0, length_grouping=8)
    batches = _Batches(ids, vectors, cfg, max_len=64, pad_id=0, bos_id=1)
    again = _Batches(ids, vectors, cfg, max_len=64, pad_id=0, bos_id=1)
    for step in (0, 5, 13):  # a function of the step alone, mid-megabatch too (resuming replays nothing)
        assert all(torch.equal(a, b) for a, b in zip(batches.get(step)[:3], again.get(step)[:3]))
    widths = [batches.get(step)[1].shape[1] for step in range(8)]
    assert widths == sorted(widths)  # one megabatch, served shortest first


def test_untrained_factory(small_encoder):
    decoder = create_generative_decoder("tiny", 384, encoder_name=small_encoder.name, texts=BANK_TEXTS * 10, vocab_size=300)
    assert decoder.model.num_parameters() < 1_000_000
    assert isinstance(decoder.decode(small_encoder.encode("hello")), str)


def test_minutes_alone_fit_the_schedule_and_stop(tmp_path, corpus, small_encoder):
    texts, vectors = corpus
    cfg = TrainConfig(steps=None, minutes=0.05, batch_size=16, eval_every=10_000, checkpoint_every=10_000, precision="fp32")
    train(tmp_path / "m", texts, vectors, encoder_name=small_encoder.name, preset="tiny", train_config=cfg,
          model_overrides=TINY, show_progress_bar=False)
    state = json.loads((tmp_path / "m" / "checkpoint" / "state.json").read_text())
    assert state["total_steps"] < 10**9 and state["step"] <= state["total_steps"]
    # a deadline before the 20 steps that fit the schedule: the schedule ends where the run did
    cut = TrainConfig(steps=None, minutes=1e-5, batch_size=16, eval_every=10_000, checkpoint_every=10_000, precision="fp32")
    train(tmp_path / "c", texts, vectors, encoder_name=small_encoder.name, preset="tiny", train_config=cut,
          model_overrides=TINY, show_progress_bar=False)
    cut_state = json.loads((tmp_path / "c" / "checkpoint" / "state.json").read_text())
    assert 1 <= cut_state["step"] == cut_state["total_steps"] < 20
    explicit = TrainConfig(steps=7, minutes=10.0, batch_size=16, eval_every=10_000, checkpoint_every=10_000, precision="fp32")
    train(tmp_path / "s", texts, vectors, encoder_name=small_encoder.name, preset="tiny", train_config=explicit,
          model_overrides=TINY, show_progress_bar=False)
    assert json.loads((tmp_path / "s" / "checkpoint" / "state.json").read_text())["step"] == 7  # --steps is kept
    with pytest.raises(ConfigError, match="steps or minutes"):
        TrainConfig(steps=None)


def test_a_deadline_fit_follows_the_step_time():
    from lightweight_decoder.train import _DeadlineFit

    fit = _DeadlineFit(deadline=100.0, min_steps=20, window=50)
    for _ in range(19):
        fit.record(0.125)
    assert not fit.ready
    fit.record(0.125)
    assert fit.ready and fit.total(20, now=10.0) == 20 + 720  # 90 s left at 0.125 s a step
    for _ in range(50):  # steps slow down (longer sentences): the schedule shortens to end at the deadline
        fit.record(0.25)
    assert fit.total(70, now=20.0) == 70 + 320
    assert fit.total(500, now=99.95) == 501 and fit.total(500, now=120.0) == 501  # always one more step
    fit.record(0.25, overhead=71 * 0.25)  # an evaluation as long as all 71 steps so far: each step now costs twice as much
    assert fit.total(71, now=20.0) == 71 + 160


class FakeClock:
    """Test double for the training loop's ``time`` module: each ``monotonic()`` call advances it by ``tick`` seconds,
    and ``tick`` grows by ``growth`` each time, so steps slow down as they do when the length curriculum reaches
    longer sentences, the same way however busy the machine is (the loop reads the clock twice a step)."""

    def __init__(self, tick: float = 0.02, growth: float = 1.01) -> None:
        self.now, self.tick, self.growth = 1000.0, tick, growth

    def monotonic(self) -> float:
        self.now += self.tick
        self.tick *= self.growth
        return self.now


def test_a_minutes_run_ends_at_the_bottom_of_its_decay(tmp_path, corpus, small_encoder, monkeypatch):
    import lightweight_decoder.train as train_module

    # 6 s hold ~70 steps, each slower than the last: a schedule fitted once, at step 20, would plan ~100 and stop
    # before its decay began
    monkeypatch.setattr(train_module, "time", FakeClock())
    texts, vectors = corpus
    cfg = TrainConfig(steps=None, minutes=0.1, batch_size=16, lr=1e-3, min_lr_ratio=0.1, warmup_steps=2,
                      eval_every=10_000, checkpoint_every=10_000, precision="fp32")
    train(tmp_path / "m", texts, vectors, encoder_name=small_encoder.name, preset="tiny", train_config=cfg,
          model_overrides=TINY, show_progress_bar=False)
    last = [json.loads(line) for line in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()][-1]
    state = json.loads((tmp_path / "m" / "checkpoint" / "state.json").read_text())
    assert state["step"] == state["total_steps"] == last["step"] > 20
    assert last["lr"] < 1e-3 * 0.2  # near lr * min_lr_ratio, not cut off mid-decay
    # a checkpoint of an interrupted run (its fitted schedule not yet done): the rerun fits the rest to its own deadline
    state_path = tmp_path / "m" / "checkpoint" / "state.json"
    state_path.write_text(json.dumps({**state, "total_steps": state["step"] + 10**6}))
    monkeypatch.setattr(train_module, "time", FakeClock())
    train(tmp_path / "m", texts, vectors, encoder_name=small_encoder.name, preset="tiny", train_config=cfg,
          model_overrides=TINY, show_progress_bar=False)
    resumed = json.loads(state_path.read_text())
    assert state["step"] + 20 < resumed["step"] == resumed["total_steps"] < state["step"] + 10**6
    assert json.loads((tmp_path / "m" / "train_log.jsonl").read_text().splitlines()[-1])["lr"] < 1e-3 * 0.2


def test_init_from_keeps_the_function_and_adds_injection(tmp_path, corpus, small_encoder):
    from lightweight_decoder.errors import InvalidInput
    from lightweight_decoder.train import _init_decoder

    texts, vectors = corpus
    source = create_generative_decoder("tiny", small_encoder.dimension, encoder_name=small_encoder.name, texts=texts,
                                       cond_inject=False, **TINY)
    source.generation_config = source.generation_config.replace(repetition_penalty=1.2)
    source.save(tmp_path / "source")
    init = _init_decoder(tmp_path / "source", small_encoder.dimension, small_encoder.name, {"cond_inject": True},
                         load_weights=True, seed=0)
    assert init.model.cond_proj is not None and source.model.cond_proj is None
    assert init.generation_config.repetition_penalty == 1.2  # its decoding defaults carry over
    cond, tokens = torch.from_numpy(vectors[:4]), torch.randint(3, 300, (4, 6))
    with torch.no_grad():
        assert torch.equal(init.model(cond, tokens)[0], source.model(cond, tokens)[0])
    # adaptive norm is added the same way: zero-initialised, the same function
    adaln = _init_decoder(tmp_path / "source", small_encoder.dimension, small_encoder.name, {"cond_inject": True, "cond_adaln": True},
                          load_weights=True, seed=0)
    assert adaln.model.adaln is not None and adaln.model.num_parameters() > init.model.num_parameters()
    with torch.no_grad():
        assert torch.equal(adaln.model(cond, tokens)[0], source.model(cond, tokens)[0])
    # dropout is not a shape: it may be set on an --init decoder; it acts in training only
    dropped = _init_decoder(tmp_path / "source", small_encoder.dimension, small_encoder.name, {"cond_inject": True, "dropout": 0.3},
                            load_weights=True, seed=0)
    assert dropped.model.config.dropout == 0.3
    with torch.no_grad():
        assert torch.equal(dropped.model.eval()(cond, tokens)[0], source.model(cond, tokens)[0])
        dropped.model.train()
        assert not torch.equal(dropped.model(cond, tokens)[0], source.model(cond, tokens)[0])
    with pytest.raises(InvalidInput, match="d_model"):
        _init_decoder(tmp_path / "source", small_encoder.dimension, small_encoder.name, {"d_model": 64}, load_weights=True, seed=0)
    with pytest.raises(IncompatibleArtifact, match="this run trains for"):
        _init_decoder(tmp_path / "source", 768, "all-mpnet-base-v2", {}, load_weights=True, seed=0)

    # training from it continues from its tokenizer and weights, and a second call resumes the checkpoint
    cfg = TrainConfig(steps=20, batch_size=16, warmup_steps=2, eval_every=10, checkpoint_every=10, curriculum_steps=0,
                      precision="fp32")
    out = tmp_path / "tuned"
    tuned = train(out, texts, vectors, encoder_name=small_encoder.name, train_config=cfg, model_overrides={"cond_inject": True},
                  init_from=tmp_path / "source", show_progress_bar=False)
    assert (out / "tokenizer.json").read_text() == (tmp_path / "source" / "tokenizer.json").read_text()
    assert tuned.model.cond_proj.weight.abs().sum() > 0  # the injection learned something
    resumed = train(out, texts, vectors, encoder_name=small_encoder.name, train_config=cfg.replace(steps=30),
                    model_overrides={"cond_inject": True}, init_from=tmp_path / "source", show_progress_bar=False)
    assert json.loads((out / "decoder" / "config.json").read_text())["metadata"]["steps"] == 30
    assert resumed.model.config.cond_inject


def test_init_from_grows_depth_without_changing_the_function(tmp_path, corpus, small_encoder):
    from lightweight_decoder.errors import InvalidInput
    from lightweight_decoder.train import _init_decoder

    texts, vectors = corpus
    source = create_generative_decoder("tiny", small_encoder.dimension, encoder_name=small_encoder.name, texts=texts,
                                       cond_adaln=True, **{**TINY, "n_layer": 2})
    with torch.no_grad():  # a trained-looking adaptive norm, so that moving its rows with their blocks is checked
        source.model.adaln[-1].weight.normal_(0, 0.05)
        source.model.adaln[-1].bias.normal_(0, 0.05)
    source.save(tmp_path / "source")
    cond, tokens = torch.from_numpy(vectors[:4]), torch.randint(3, 300, (4, 6))
    grown = _init_decoder(tmp_path / "source", small_encoder.dimension, small_encoder.name, {"n_layer": 5}, load_weights=True, seed=0)
    assert grown.model.config.n_layer == 5 and len(grown.model.blocks) == 5
    with torch.no_grad():
        assert torch.allclose(grown.model(cond, tokens)[0], source.model(cond, tokens)[0], atol=1e-5)
    # old blocks at 0 and 2 (5 * i // 2); the others start as copies with zeroed output projections
    old, new = source.model.blocks, grown.model.blocks
    assert torch.equal(new[2].attn.qkv.weight, old[1].attn.qkv.weight) and torch.equal(new[2].mlp.proj.weight, old[1].mlp.proj.weight)
    for j, i in ((1, 0), (3, 1), (4, 1)):
        assert torch.equal(new[j].attn.qkv.weight, old[i].attn.qkv.weight)
        assert not new[j].attn.proj.weight.any() and not new[j].mlp.proj.weight.any()
    with pytest.raises(InvalidInput, match="only n_layer may grow"):
        _init_decoder(tmp_path / "source", small_encoder.dimension, small_encoder.name, {"n_layer": 1}, load_weights=True, seed=0)

    # training moves the new blocks' projections, and the run resumes with the grown shapes
    cfg = TrainConfig(steps=6, batch_size=16, warmup_steps=1, eval_every=3, checkpoint_every=3, curriculum_steps=0, precision="fp32")
    trained = train(tmp_path / "deeper", texts, vectors, encoder_name=small_encoder.name, train_config=cfg, model_overrides={"n_layer": 5},
                    init_from=tmp_path / "source", show_progress_bar=False)
    assert trained.model.blocks[1].attn.proj.weight.abs().sum() > 0
    resumed = train(tmp_path / "deeper", texts, vectors, encoder_name=small_encoder.name, train_config=cfg.replace(steps=8),
                    model_overrides={"n_layer": 5}, init_from=tmp_path / "source", show_progress_bar=False)
    assert resumed.model.config.n_layer == 5
    assert json.loads((tmp_path / "deeper" / "decoder" / "config.json").read_text())["metadata"]["steps"] == 8


def test_generation_defaults_change_only_the_config(trained, small_encoder, tmp_path):
    import shutil

    from click.testing import CliRunner

    from lightweight_decoder.cli import main

    out, _ = trained
    folder = tmp_path / "d"
    shutil.copytree(out / "decoder", folder)
    weights = (folder / "model.safetensors").read_bytes()
    shown = CliRunner().invoke(main, ["generation-defaults", str(folder)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["repetition_penalty"] == 1.0
    (tmp_path / "best.json").write_text(json.dumps({"num_beams": 3, "no_repeat_ngram_size": 2}))
    changed = CliRunner().invoke(main, ["generation-defaults", str(folder), "--config", str(tmp_path / "best.json"),
                                        "--set", "repetition_penalty=1.2", "--set", "num_beams=2"])
    assert changed.exit_code == 0, changed.output
    loaded = GenerativeDecoder.load(folder, encoder=small_encoder)
    cfg = loaded.generation_config
    assert (cfg.repetition_penalty, cfg.num_beams, cfg.no_repeat_ngram_size) == (1.2, 2, 2)  # --set after --config
    assert json.loads(changed.output) == cfg.to_dict()
    assert (folder / "model.safetensors").read_bytes() == weights
    q = small_encoder.encode(BANK_TEXTS[:3])
    assert loaded.decode(q) == [r.text for r in loaded.generate(q, rescore=False, repetition_penalty=1.2, num_beams=2,
                                                                   no_repeat_ngram_size=2)]
    for bad, message in ((["--set", "num_beams=0"], "num_beams must be"), (["--set", "beams=2"], "unknown GenerationConfig key"),
                         (["--set", "num_beams"], "not KEY=VALUE"), (["--set", "num_beams=two"], "must be JSON")):
        result = CliRunner().invoke(main, ["generation-defaults", str(folder), *bad])
        assert result.exit_code != 0 and message in result.output, result.output
    (tmp_path / "broken.json").write_text("{num_beams: 2")
    result = CliRunner().invoke(main, ["generation-defaults", str(folder), "--config", str(tmp_path / "broken.json")])
    assert result.exit_code != 0 and "is not JSON" in result.output, result.output
    assert GenerativeDecoder.load(folder).generation_config == cfg  # a refused change leaves the folder as it was


def test_averaging_decoders_takes_the_weighted_mean_of_every_parameter(trained, small_encoder, tmp_path):
    from click.testing import CliRunner

    from lightweight_decoder.cli import main
    from lightweight_decoder.decoders.generative import average_decoders
    from lightweight_decoder.errors import InvalidInput
    from lightweight_decoder.lineage import expand_runs, steps_in_all

    out, _ = trained
    a = GenerativeDecoder.load(out / "decoder")
    b = GenerativeDecoder.load(out / "decoder")
    with torch.no_grad():  # a second model near the first, as a continued run would be
        for p in b.model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    # as `train --init` records the decoder it continued from
    b.metadata.update(cumulative_steps=900, initialised_from={"path": "x", **{k: v for k, v in a.metadata.items() if k != "train_config"}})
    b.save(tmp_path / "b")
    soup = average_decoders([out / "decoder", tmp_path / "b"], [1, 3])
    sa, sb, ss = a.model.state_dict(), b.model.state_dict(), soup.model.state_dict()
    assert set(ss) == set(sa)
    for key in sa:
        assert torch.allclose(ss[key], 0.25 * sa[key] + 0.75 * sb[key], atol=1e-6), key
    assert [s["weight"] for s in soup.metadata["averaged_from"]] == [0.25, 0.75]
    assert soup.metadata["averaged_from"][0]["path"] == str(out / "decoder")
    assert soup.metadata["cumulative_steps"] == 900  # the longest history that went in
    # b's copy of a's record is written as a reference to a, and reads back whole
    assert soup.metadata["averaged_from"][1]["initialised_from"] == {"path": "x", "same_as_source": 0}
    assert expand_runs(soup.metadata)["averaged_from"][1]["initialised_from"]["steps"] == a.metadata["steps"]
    assert steps_in_all(soup.metadata) == 900
    assert soup.generation_config == a.generation_config
    # the sources are left as they were, and a decoder averaged with itself is itself
    assert all(torch.equal(GenerativeDecoder.load(tmp_path / "b").model.state_dict()[k], sb[k]) for k in sb)
    same = average_decoders([a, a])
    q = small_encoder.encode(BANK_TEXTS[:4])
    assert all(torch.equal(same.model.state_dict()[k], sa[k]) for k in sa)
    assert same.decode(q) == a.decode(q)

    # the command writes a loadable folder that records its sources
    result = CliRunner().invoke(main, ["average", str(out / "decoder"), str(tmp_path / "b"), "--weight", "1", "--weight", "3",
                                       "--out", str(tmp_path / "soup")])
    assert result.exit_code == 0, result.output
    assert [s["weight"] for s in json.loads(result.output)["sources"]] == [0.25, 0.75]
    loaded = GenerativeDecoder.load(tmp_path / "soup", encoder=small_encoder)
    assert all(torch.allclose(loaded.model.state_dict()[k], ss[k]) for k in ss)
    meta = json.loads((tmp_path / "soup" / "config.json").read_text())["metadata"]
    assert [s["path"] for s in meta["averaged_from"]] == [str(out / "decoder"), str(tmp_path / "b")]

    # what cannot be averaged is named
    with pytest.raises(InvalidInput, match="at least two"):
        average_decoders([a])
    for weights, message in (([1], "1 weights for 2 decoders"), ([1, -1], "non-negative"), ([0, 0], "not all zero"),
                             ([1, float("nan")], "finite")):
        with pytest.raises(InvalidInput, match=message):
            average_decoders([a, b], weights)
    shape = {k: v for k, v in a.model.config.to_dict().items() if k != "embedding_dim"}
    wider = create_generative_decoder("tiny", small_encoder.dimension, encoder_name=small_encoder.name, tokenizer=a.tokenizer,
                                      **{**shape, "d_ff": a.model.config.d_ff * 2})
    with pytest.raises(IncompatibleArtifact, match="d_ff"):
        average_decoders([a, wider])
    retokenized = create_generative_decoder("tiny", small_encoder.dimension, encoder_name=small_encoder.name,
                                            texts=["other words entirely"] * 10, **shape)
    with pytest.raises(IncompatibleArtifact, match="another tokenizer"):
        average_decoders([a, retokenized])
    other_encoder = create_generative_decoder("tiny", small_encoder.dimension, encoder_name="some-other-encoder",
                                              tokenizer=a.tokenizer, **shape)
    with pytest.raises(IncompatibleArtifact, match="some-other-encoder"):
        average_decoders([a, other_encoder])
    for args, message in (([str(out / "decoder")], "at least two"),
                          ([str(out / "decoder"), str(tmp_path / "b"), "--weight", "1"], "1 weights for 2 decoders")):
        result = CliRunner().invoke(main, ["average", *args, "--out", str(tmp_path / "bad")])
        assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "bad").exists()
