from __future__ import annotations

import json

import numpy as np
import pytest

from lightweight_decoder.config import ScreenTrainConfig
from lightweight_decoder.decoders import PhraseBankDecoder
from lightweight_decoder.decoders.hybrid import HybridConfig, HybridDecoder
from lightweight_decoder.errors import ConfigError, CorruptArtifact, IncompatibleArtifact, InvalidInput
from lightweight_decoder.phrasebank import PhraseBank
from lightweight_decoder.screen import EmbeddingScreen, encoder_tokenizer, train_screen, word_casing

from .conftest import BANK_TEXTS
from .test_hybrid import _RecordingEncoderDouble


@pytest.fixture(scope="module")
def corpus(shared_data):
    return (shared_data / "eval" / "dialogue_dev.txt").read_text().splitlines()[:1200]


@pytest.fixture(scope="module")
def trained(corpus, small_encoder):
    vectors = small_encoder.encode(corpus)
    config = ScreenTrainConfig(rank=64, epochs=30, batch_size=128, lr=1e-2, dev_size=120)
    return train_screen(corpus, vectors, encoder_tokenizer(small_encoder), encoder_name=small_encoder.name, config=config,
                        show_progress_bar=False)


def test_a_trained_screen_points_where_the_encoder_points(trained, corpus, small_encoder):
    # an untrained screen is ~0 cosine to the encoder; held-out texts are never seen in training
    assert trained.metrics["dev_texts"] == min(120, len(corpus) // 10)
    assert trained.metrics["train_texts"] == len(corpus) - trained.metrics["dev_texts"]
    assert trained.metrics["dev_cosine"] > 0.5
    texts = ["Where is the nearest train station?", "I need a taxi to the airport.", "The weather is lovely today."]
    scores = np.stack([trained.scores(texts, v) for v in small_encoder.encode(texts)])  # (query, text)
    assert (np.argmax(scores, axis=1) == np.arange(len(texts))).all()


def test_tokens_no_training_text_holds_add_nothing(trained):
    vocab = trained.tokenizer.get_vocab_size()
    assert trained.metrics["tokens_seen"] < vocab
    unseen = (trained.tokens.weight.abs().sum(1) == 0).sum().item()
    assert unseen == vocab - trained.metrics["tokens_seen"]


def test_save_and_load_round_trip(trained, tmp_path, small_encoder):
    trained.save(tmp_path / "screen")
    loaded = EmbeddingScreen.load(tmp_path / "screen", encoder_name=small_encoder.name, dimension=small_encoder.dimension)
    texts = ["A cat sat on the mat.", "Book a table for two, please."]
    np.testing.assert_allclose(loaded.embed(texts), trained.embed(texts), atol=2e-3)  # token vectors are stored in fp16
    assert loaded.metrics["dev_cosine"] == trained.metrics["dev_cosine"]
    assert loaded.embed([]).shape == (0, small_encoder.dimension)
    with pytest.raises(InvalidInput, match="list of texts"):
        loaded.embed("one string")


def test_load_names_what_is_wrong(trained, tmp_path):
    folder = tmp_path / "screen"
    trained.save(folder)
    with pytest.raises(IncompatibleArtifact, match="all-MiniLM-L6-v2.*got all-mpnet-base-v2"):
        EmbeddingScreen.load(folder, encoder_name="all-mpnet-base-v2", dimension=768)
    with pytest.raises(InvalidInput, match="not a embedding screen folder|not an? embedding screen"):
        EmbeddingScreen.load(tmp_path)
    (folder / "tokenizer.json").write_text("{broken")
    with pytest.raises(CorruptArtifact, match="tokenizer.json"):
        EmbeddingScreen.load(folder)
    trained.save(folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 12)
    with pytest.raises(CorruptArtifact, match="model.safetensors"):
        EmbeddingScreen.load(folder)
    trained.save(folder)
    meta = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**meta, "vocab_size": 7}))
    with pytest.raises(CorruptArtifact, match="7"):
        EmbeddingScreen.load(folder)


def test_training_input_is_checked(small_encoder):
    tokenizer = encoder_tokenizer(small_encoder)
    with pytest.raises(InvalidInput, match="one vector per text"):
        train_screen(["a", "b"], np.zeros((3, 384)), tokenizer, encoder_name="x")
    with pytest.raises(InvalidInput, match="at least 20"):
        train_screen(["a"] * 5, np.ones((5, 384)), tokenizer, encoder_name="x")
    with pytest.raises(InvalidInput, match="NaN"):
        train_screen(["a"] * 30, np.full((30, 384), np.nan), tokenizer, encoder_name="x")
    with pytest.raises(ConfigError, match="rank"):
        ScreenTrainConfig(rank=0)


def test_the_screen_suggests_the_words_a_text_lacks(trained, small_encoder):
    target = small_encoder.encode("I need a taxi to the airport.")
    words = trained.suggest_words("I need a to the airport.", target, 10)
    assert "taxi" in words and len(words) == 10
    assert not {"need", "to", "the", "airport"} & {w.lower() for w in words}  # words the text holds are not suggested
    # ranked by the screen's cosine after adding the word: the first raises it the most
    gains = [trained.scores([f"I need a to the airport. {w}"], target)[0] for w in words[:3]]
    assert gains[0] >= max(gains[1:]) - 1e-4
    assert trained.suggest_words("I need a to the airport.", target, 0) == []
    with pytest.raises(InvalidInput, match="384"):
        trained.suggest_words("a text", np.ones(5, dtype=np.float32), 3)


def test_suggested_words_are_cased_as_the_training_texts_write_them(trained, corpus):
    texts = ["Paris is big.", "We saw Paris and NASA.", "paris is first here", "I like NASA", "Dogs bark at dogs.",
             "The King spoke.", "Long live the King.", "Then a king came."]
    # "Dogs" and "paris" open their sentences: they do not count; "King" is 2 of 3 uses, under the 80% asked for
    assert word_casing(texts) == {"paris": "Paris", "nasa": "NASA"}
    assert word_casing(texts, share=0.6) == {"paris": "Paris", "nasa": "NASA", "king": "King"}
    assert word_casing(["We saw Paris."], words={"london"}) == {}
    assert trained.casing and all(k == v.lower() != v for k, v in trained.casing.items())
    name = next(k for k in trained.casing if k in trained._word_tables().words)
    assert trained.casing[name] in " ".join(corpus)


def test_casing_is_saved_and_checked(trained, tmp_path):
    trained.save(tmp_path / "screen")
    assert EmbeddingScreen.load(tmp_path / "screen").casing == trained.casing
    (tmp_path / "screen" / "casing.json").write_text("{broken")
    with pytest.raises(CorruptArtifact, match="casing.json"):
        EmbeddingScreen.load(tmp_path / "screen")
    (tmp_path / "screen" / "casing.json").write_text('["Paris"]')
    with pytest.raises(CorruptArtifact, match="casing.json: not a map"):
        EmbeddingScreen.load(tmp_path / "screen")
    (tmp_path / "screen" / "casing.json").unlink()  # a folder from before casing existed loads, with no casing
    assert EmbeddingScreen.load(tmp_path / "screen").casing == {}


class _EncoderAsScreenDouble:
    """Test double: a perfect screen, the encoder itself (the real screen only approximates it), that suggests the
    given words."""

    def __init__(self, encoder, words=()):
        self.encoder, self.encoder_name, self.dimension, self.words = encoder, encoder.name, encoder.dimension, list(words)
        self.suggested_for: list[str] = []

    def prepare_suggestions(self):
        pass

    def scores(self, texts, query):
        return self.encoder.encode(list(texts)) @ query

    def suggest_words(self, text, query, k):
        self.suggested_for.append(text)
        return [w for w in self.words if w not in text.split()][:k]


def test_the_hybrid_judges_only_the_edits_the_screen_ranks_best(small_encoder):
    bank = PhraseBank.build(BANK_TEXTS + ["A quiet town.", "The village was small."], small_encoder)
    target = small_encoder.encode("The river flooded the town after three days of heavy rain.")
    cfg = HybridConfig(num_steps=3, edits_per_step=4, screen_proposals=200, max_encoder_calls=50, max_seconds=None)

    def run(screen):
        judge = _RecordingEncoderDouble(small_encoder)
        return HybridDecoder(PhraseBankDecoder(bank), None, judge, cfg, screen=screen).generate(target), judge.batches

    screened, batches = run(_EncoderAsScreenDouble(small_encoder))
    unscreened, _ = run(None)
    assert screened.details["screened"] >= 3 * 4 and unscreened.details["screened"] == 0
    assert len(batches) >= 3 and max(batches) <= cfg.edits_per_step  # the bank's scores are exact: every call is a round's best 4
    # the same number of texts judged; the screened ones were the best of 200 proposals, not 4 at random
    assert screened.score > unscreened.score + 0.01
    off = HybridDecoder(PhraseBankDecoder(bank), None, small_encoder, cfg.replace(screen_proposals=0),
                        screen=_EncoderAsScreenDouble(small_encoder)).generate(target)
    assert off.details["screened"] == 0 and off.text == unscreened.text  # screen_proposals 0: the screen is not used


def test_correction_places_the_words_the_screen_suggests(small_encoder):
    bank = PhraseBank.build(BANK_TEXTS, small_encoder)  # no text in it says "volcano" or "lava"
    target = small_encoder.encode("The volcano erupted and lava flooded the village.")
    cfg = HybridConfig(num_steps=4, edits_per_step=8, screen_proposals=200, max_encoder_calls=50, max_seconds=None)
    screen = _EncoderAsScreenDouble(small_encoder, words=["volcano", "lava", "erupted"])
    suggested = HybridDecoder(PhraseBankDecoder(bank), None, small_encoder, cfg, screen=screen).generate(target)
    plain = HybridDecoder(PhraseBankDecoder(bank), None, small_encoder, cfg.replace(screen_words=0),
                          screen=_EncoderAsScreenDouble(small_encoder, words=["volcano"])).generate(target)
    assert len(screen.suggested_for) >= suggested.details["steps"] >= 1  # asked once per round, for the best so far
    assert {"volcano", "lava", "erupted"} & set(suggested.text.lower().strip(".").split())
    assert suggested.score > plain.score + 0.05
    assert "volcano" not in plain.text.lower()  # screen_words 0: no word suggested, none placed


def test_a_screen_for_another_encoder_is_refused(trained, small_encoder):
    bank = PhraseBank.build(BANK_TEXTS, small_encoder)
    other = _EncoderAsScreenDouble(small_encoder)
    other.encoder_name = "another-encoder"
    with pytest.raises(IncompatibleArtifact, match="another-encoder"):
        HybridDecoder(PhraseBankDecoder(bank), None, small_encoder, screen=other)
    assert trained.encoder_name == small_encoder.name  # a real screen carries the name it was trained for


def test_the_screen_picks_which_texts_the_budget_can_judge(small_encoder):
    """What the pool and the rounds use when they cannot judge every text: the screen's best first, else the given order."""
    bank = PhraseBank.build(BANK_TEXTS, small_encoder)
    target = small_encoder.encode("The river flooded the village.")
    texts = ["Stocks fell sharply.", "A dog barked.", "The river flooded the town.", "Heavy rain flooded the village."]
    screened = HybridDecoder(PhraseBankDecoder(bank), None, small_encoder, screen=_EncoderAsScreenDouble(small_encoder))
    order = np.argsort(-(small_encoder.encode(texts) @ target))
    assert screened._screened(texts, target, 2, screened.config) == ([texts[i] for i in order[:2]], 4)
    assert screened._screened(texts, target, 2, screened.config.replace(screen_proposals=0)) == (texts[:2], 0)  # turned off
    plain = HybridDecoder(PhraseBankDecoder(bank), None, small_encoder)
    assert plain._screened(texts, target, 2, plain.config) == (texts[:2], 0)
