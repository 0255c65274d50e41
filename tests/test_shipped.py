"""What models/default ships, checked with the real default encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lightweight_decoder.paths import default_paths

pytestmark = [pytest.mark.real_encoder, pytest.mark.shipped_model]


def test_shipped_bank_is_complete_and_documented():
    bank = default_paths()["bank"]
    meta = json.loads((bank / "config.json").read_text())
    assert meta["encoder"] == "all-mpnet-base-v2" and meta["dimension"] == 768 and meta["size"] >= 100_000
    assert sum(f["bytes"] for f in meta["files"].values()) <= 60 * 2**20
    card = (bank / "CARD.md").read_text()
    assert "lightweight-decoder bank build" in card and "CC BY-SA" in card


def test_shipped_bank_returns_its_own_sentences(mpnet):
    from lightweight_decoder.loading import load_decoder

    decoder, _ = load_decoder("phrase", encoder=mpnet)
    picks = [decoder.bank.texts[i] for i in np.random.default_rng(0).choice(len(decoder.bank), 20, replace=False)]
    assert decoder.decode(mpnet.encode(picks)) == picks


def test_shipped_generative_model_is_conditioned_on_the_embedding(mpnet, shared_data):
    from lightweight_decoder.loading import load_decoder

    if not (default_paths()["generative"] / "config.json").exists():
        pytest.skip("no generative model is shipped in this version")
    decoder, _ = load_decoder("generative", encoder=mpnet)
    assert decoder.model.num_parameters() <= 30_000_000
    texts = (shared_data / "eval" / "wikipedia_dev.txt").read_text().splitlines()[:16]
    targets = mpnet.encode(texts)
    outputs = decoder.decode(targets)
    sims = mpnet.encode(outputs) @ targets.T  # (output, input)
    # each output must be closer to its own input than to the other inputs, on average
    assert np.mean(np.diag(sims)) > np.mean(sims[~np.eye(len(texts), dtype=bool)]) + 0.1


def test_shipped_screen_is_documented_and_ranks_as_the_encoder_does(mpnet, shared_data):
    from lightweight_decoder.loading import load_screen

    folder = default_paths()["screen"]
    card = (folder / "CARD.md").read_text()
    assert "lightweight-decoder screen train" in card and "bench/screen.py" in card
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 20 * 2**20
    screen = load_screen(None, mpnet)
    assert screen is not None and screen.metrics["dev_cosine"] > 0.7
    texts = (shared_data / "eval" / "wikipedia_dev.txt").read_text().splitlines()[:20]
    targets = mpnet.encode(texts)
    ranks = np.stack([screen.scores(texts, t) for t in targets])  # (query, text)
    assert (ranks.argmax(axis=1) == np.arange(len(texts))).mean() >= 0.9  # each sentence's own text ranks first
    # the names a text lacks are among the words it suggests, cased as the corpus writes them
    target = mpnet.encode("Wagner wrote that the boy and Siegfried are the same character.")
    assert {"Wagner", "Siegfried"} <= set(screen.suggest_words("He wrote that the boy and the hero are the same character.", target, 10))
