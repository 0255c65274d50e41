"""Retrieval memory: candidate words from a phrase bank that the generative decoder reads after its prefix."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from lightweight_decoder.decoders.generative import GenerativeDecoder, create_generative_decoder
from lightweight_decoder.errors import ConfigError, IncompatibleArtifact, ModelNotFound
from lightweight_decoder.generation import GenerationConfig, generate
from lightweight_decoder.memory import MemoryConfig, Retriever, frequent_token_ids, memory_ids
from lightweight_decoder.model import ModelConfig, PrefixLM
from lightweight_decoder.tokenizer import train_tokenizer
from lightweight_decoder.train import TrainConfig, _init_decoder, train

from .conftest import BANK_TEXTS

TINY = {"vocab_size": 300, "max_len": 64}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(BANK_TEXTS * 10, vocab_size=300)


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory, small_bank):
    path = tmp_path_factory.mktemp("bank") / "bank"
    small_bank.save(path)
    return path


def test_memory_rows_keep_each_token_once_in_rank_order():
    ids = {"a": [5, 6, 7], "b": [7, 8, 1], "c": [9, 10, 11, 12]}
    rows = memory_ids([["a", "b"], ["b"], ["c", "a"], []], ids, length=5, skip={1}, pad_id=0)
    assert rows.dtype == np.int64 and rows.shape == (4, 5)
    assert rows.tolist() == [[5, 6, 7, 8, 0],   # 7 once, 1 skipped, padded
                             [7, 8, 0, 0, 0],
                             [9, 10, 11, 12, 5],  # cut at length: the second text only starts
                             [0, 0, 0, 0, 0]]     # nothing found: all pad


def test_frequent_tokens_are_the_ones_in_most_texts(tokenizer):
    texts = ["The cat slept.", "The weather was sunny.", "The orchestra performed.", "Plants use sunlight"]
    skip = frequent_token_ids(tokenizer, texts, share=0.5)  # in more than 2 of the 4 texts
    bags = [set(tokenizer.encode(t).ids) for t in texts]
    assert skip == sorted(t for t in set().union(*bags) if sum(t in bag for bag in bags) > 2)
    assert {tokenizer.id_to_token(i) for i in skip} >= {"The", "."}


def test_retriever_reads_the_nearest_texts_and_leaves_out_the_excluded_one(small_bank, small_encoder, tokenizer):
    retriever = Retriever(small_bank, tokenizer, length=12, config=MemoryConfig(neighbours=2, skip_ids=[]), pad_id=0)
    q = small_encoder.encode(BANK_TEXTS[:3])
    rows = retriever(q)
    for row, query in zip(rows, q):
        nearest = [h.text for h in small_bank.search(query, k=2)[0]]
        assert row.tolist() == memory_ids([nearest], {t: tokenizer.encode(t).ids for t in nearest}, 12, set(), 0)[0].tolist()
    own = retriever(q, exclude=BANK_TEXTS[:3])  # each sentence is in the bank: its own text is left out
    for row, query, text in zip(own, q, BANK_TEXTS[:3]):
        others = [h.text for h in small_bank.search(query, k=3)[0] if h.text != text][:2]
        assert text not in others and row.tolist() == memory_ids([others], {t: tokenizer.encode(t).ids for t in others}, 12, set(), 0)[0].tolist()


def test_retriever_refuses_a_bank_of_another_encoder(small_bank, tokenizer):
    config = MemoryConfig(neighbours=2, skip_ids=[])
    kwargs = dict(length=12, pad_id=0, bank=small_bank)
    assert Retriever.load(config, tokenizer, encoder_name=small_bank.encoder_name, dimension=small_bank.dimension, **kwargs).bank is small_bank
    with pytest.raises(IncompatibleArtifact, match=rf"{small_bank.encoder_name} \(384-D\); got all-mpnet-base-v2 \(768-D\)"):
        Retriever.load(config, tokenizer, encoder_name="all-mpnet-base-v2", dimension=768, **kwargs)


def test_memory_config_is_checked():
    with pytest.raises(ConfigError, match="neighbours"):
        MemoryConfig(neighbours=0)
    with pytest.raises(ConfigError, match="skip_ids"):
        MemoryConfig(skip_ids=[-1])
    with pytest.raises(ConfigError, match="memory_len"):
        ModelConfig.preset("tiny", memory_len=-1)


def test_cached_generation_with_memory_matches_the_full_forward():
    """start() + step() read the memory exactly as forward() does: the KV cache holds its slots."""
    torch.manual_seed(0)
    model = PrefixLM(ModelConfig.preset("tiny", embedding_dim=16, max_len=12, vocab_size=64, memory_len=5)).eval()
    with torch.no_grad():  # as if trained: the slots are marked and the copy gate is open
        model.memory_type.normal_(0, 0.5)
        model.memory_gate.weight.normal_(0, 0.5)
        model.memory_gate.bias.fill_(1.0)
    cond = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
    memory = torch.randint(3, 64, (3, 5))
    tokens = torch.full((3, 1), model.config.bos_id)
    with torch.no_grad():
        for _ in range(8):  # greedy through forward(), no cache
            logits = model(cond, tokens, memory=memory)[0][:, -1]
            logits[:, [model.config.pad_id, model.config.bos_id]] = float("-inf")
            tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
    cached = generate(model, cond, GenerationConfig(max_new_tokens=8), memory=memory)
    for row, hyps in enumerate(cached):
        full = tokens[row, 1:].tolist()
        if model.config.eos_id in full:
            full = full[:full.index(model.config.eos_id)]
        assert hyps[0].tokens == full
    with torch.no_grad():  # the memory is read: other candidates, other logits
        assert not torch.allclose(model(cond, tokens, memory=memory)[0], model(cond, tokens, memory=memory.flip(0))[0])
        # the copy gate's bonus reaches exactly the tokens in a row's memory
        plain = model(cond, tokens, memory=memory)[0]
        model.memory_gate.bias.fill_(3.0)
        bonus = model(cond, tokens, memory=memory)[0] - plain
        model.memory_gate.bias.fill_(1.0)
    held = torch.zeros(3, 64, dtype=torch.bool).scatter_(1, memory, True)
    torch.testing.assert_close(bonus, torch.where(held[:, None, :], 2.0, 0.0).expand_as(bonus), atol=1e-4, rtol=0)
    beams = generate(model, cond, GenerationConfig(max_new_tokens=8, num_beams=3, num_return_sequences=2), memory=memory)
    assert [len(b) for b in beams] == [2, 2, 2]
    with pytest.raises(ValueError, match="memory must be"):
        model(cond, tokens, memory=memory[:, :4])
    with pytest.raises(ValueError, match="no memory slots"):
        PrefixLM(ModelConfig.preset("tiny", embedding_dim=16, vocab_size=64))(cond, tokens, memory=memory)


def test_model_learns_to_write_the_sentence_its_memory_holds(tokenizer):
    """With an embedding that says nothing (the same for every sentence), only the memory can tell the
    sentences apart: a model that reads it reproduces them; with the memory emptied it cannot."""
    from lightweight_decoder.train import _tokenize, teacher_forcing

    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny", embedding_dim=16, vocab_size=300, max_len=40, memory_len=32)
    model = PrefixLM(cfg)
    seqs = _tokenize(tokenizer, BANK_TEXTS, cfg.max_len, cfg.eos_id)
    memory = memory_ids([[t] for t in BANK_TEXTS], {t: tokenizer.encode(t).ids[::-1] for t in BANK_TEXTS}, 32, set(), cfg.pad_id)
    memory = torch.from_numpy(memory)  # each sentence's tokens, reversed: the model must read them, and order them
    inputs, targets = teacher_forcing(seqs, cfg.pad_id, cfg.bos_id)
    cond = torch.nn.functional.normalize(torch.ones(len(seqs), 16), dim=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model(cond, inputs, targets, memory=memory)[1]["lm"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    written = [tokenizer.decode(h[0].tokens).strip() for h in generate(model, cond, GenerationConfig(max_new_tokens=40), memory=memory)]
    assert np.mean([w == t for w, t in zip(written, BANK_TEXTS)]) >= 0.75, list(zip(written, BANK_TEXTS))
    empty = [tokenizer.decode(h[0].tokens).strip() for h in generate(model, cond, GenerationConfig(max_new_tokens=40))]
    assert len(set(empty)) == 1  # nothing tells the rows apart


def test_trained_decoder_saves_its_bank_and_loads_it(tmp_path, small_encoder, bank_dir):
    texts = BANK_TEXTS * 4
    vectors = small_encoder.encode(texts)
    cfg = TrainConfig(steps=4, batch_size=16, warmup_steps=1, eval_every=2, checkpoint_every=2, curriculum_steps=0, precision="fp32")
    decoder = train(tmp_path / "run", texts, vectors, encoder_name=small_encoder.name, preset="tiny", train_config=cfg,
                    model_overrides={**TINY, "memory_len": 16}, memory=MemoryConfig(bank=str(bank_dir), neighbours=3),
                    dev_texts=BANK_TEXTS, dev_vectors=small_encoder.encode(BANK_TEXTS), encoder=small_encoder, show_progress_bar=False)
    meta = json.loads((tmp_path / "run" / "decoder" / "config.json").read_text())
    assert meta["model"]["memory_len"] == 16 and meta["memory"]["bank"] == str(bank_dir) and meta["memory"]["neighbours"] == 3
    assert meta["memory"]["skip_ids"] == frequent_token_ids(decoder.tokenizer, texts)  # computed from the training texts
    loaded = GenerativeDecoder.load(tmp_path / "run", encoder=small_encoder)
    assert loaded.retriever is not None and len(loaded.retriever.bank) == len(BANK_TEXTS)
    assert loaded.health()["memory"] == {"bank": str(bank_dir), "entries": len(BANK_TEXTS), "neighbours": 3, "slots": 16}
    q = small_encoder.encode(BANK_TEXTS[:4])
    assert loaded.decode(q) == decoder.decode(q)
    assert loaded.log_likelihood(BANK_TEXTS[:2], q[0]).shape == (2,)
    # a decoder whose bank is gone says which bank it needs
    (tmp_path / "moved").mkdir()
    shutil.copytree(tmp_path / "run" / "decoder", tmp_path / "moved" / "decoder")
    changed = {**meta, "memory": {**meta["memory"], "bank": str(tmp_path / "no-bank")}}
    (tmp_path / "moved" / "decoder" / "config.json").write_text(json.dumps(changed))
    with pytest.raises(ModelNotFound, match="no-bank"):
        GenerativeDecoder.load(tmp_path / "moved")
    shared = GenerativeDecoder.load(tmp_path / "moved", memory_bank=loaded.retriever.bank)  # or reads a bank given to it
    assert shared.decode(q) == decoder.decode(q)


def test_init_adds_memory_slots_to_a_decoder_without_them(tmp_path, small_encoder, bank_dir):
    texts = BANK_TEXTS * 4
    source = create_generative_decoder("tiny", small_encoder.dimension, encoder_name=small_encoder.name, texts=texts, **TINY)
    source.save(tmp_path / "source")
    grown = _init_decoder(tmp_path / "source", small_encoder.dimension, small_encoder.name, {"memory_len": 8}, load_weights=True, seed=0)
    assert grown.model.config.memory_len == 8 and grown.retriever is None  # train() attaches the retriever
    assert not grown.model.memory_type.any() and not grown.model.memory_gate.weight.any()
    for name, value in source.model.state_dict().items():
        assert torch.equal(grown.model.state_dict()[name], value), name
    with pytest.raises(ConfigError, match="saved with the retriever"):
        grown.save(tmp_path / "no-retriever")


def test_training_batches_carry_each_rows_memory_and_empty_some():
    from lightweight_decoder.train import _Batches

    ids = [[5 + i % 7] * (2 + i % 9) for i in range(256)]
    memory = np.arange(256 * 4).reshape(256, 4) + 3  # row r's memory: 4r+3 .. 4r+6
    cfg = TrainConfig(batch_size=64, curriculum_steps=0, memory_dropout=0.25)
    batches = _Batches(ids, np.ones((256, 4), np.float32), cfg, max_len=16, pad_id=0, bos_id=1, memory=memory)
    emptied = 0
    for step in range(8):
        _, inputs, targets, rows = batches.get(step)
        assert torch.equal(rows, batches.get(step)[3])  # a function of the step: resuming replays it
        for row, target in zip(rows, targets):
            owner = memory[(memory[:, 0] == int(row[0]))] if int(row[0]) else None
            if owner is None:
                assert not row.any()  # emptied whole
                emptied += 1
            else:  # the row's own memory, the one of the sentence it targets
                assert row.tolist() == owner[0].tolist() and len(ids[(int(row[0]) - 3) // 4]) == int((target != 0).sum())
    assert 0.15 < emptied / (8 * 64) < 0.35
