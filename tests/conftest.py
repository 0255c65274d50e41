"""Shared fixtures. The small real encoder (all-MiniLM-L6-v2, 384-D) backs most tests; tests that need
the default 768-D encoder are marked ``real_encoder`` and run in CI too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

SENTENCES = [
    "The cat sat on the mat.",
    "A dog barked at the mailman all morning.",
    "The river flooded the village after three days of heavy rain.",
    "She was elected to the city council in 1998.",
    "Can you book a table for two at an Italian restaurant tonight?",
    "Photosynthesis converts light energy into chemical energy.",
    "The orchestra played Beethoven's fifth symphony.",
    "I would like to fly from Boston to Denver next Friday.",
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"../shared/data not found at {SHARED_DATA} (CI always has it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_encoder():
    from lightweight_decoder.encoder import TextEncoder

    return TextEncoder("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def mpnet():
    from lightweight_decoder.encoder import TextEncoder

    return TextEncoder()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch, request):
    """Tests that write to the cache home get their own, except those that need the real default model."""
    if request.node.get_closest_marker("real_encoder") is None and "mpnet" not in request.fixturenames:
        monkeypatch.setenv("LIGHTWEIGHT_DECODER_HOME", str(tmp_path_factory.mktemp("home")))


BANK_TEXTS = SENTENCES + [
    "The cat slept on the sofa.",
    "Heavy rain caused flooding in the valley.",
    "He was elected mayor in 2004.",
    "The symphony orchestra performed a concert.",
    "Plants use sunlight to make food.",
    "Book me a flight to Denver, please.",
    "The weather was sunny and warm.",
    "She plays the violin in a quartet.",
]


@pytest.fixture(scope="session")
def small_bank(small_encoder):
    from lightweight_decoder.phrasebank import PhraseBank

    return PhraseBank.build(BANK_TEXTS, small_encoder)
