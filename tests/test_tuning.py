from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lightweight_decoder.cli import main
from lightweight_decoder.config import PhraseDecoderConfig
from lightweight_decoder.errors import ConfigError
from lightweight_decoder.tuning import GenerationParameterOptimizer, Param


def _objective(p):
    return -((p["x"] - 0.7) ** 2) - (p["n"] - 3) ** 2 + (1.0 if p["c"] == "b" else 0.0)


SPACE = {"x": Param("float", 0.0, 1.0), "n": Param("int", 0, 10), "c": Param("choice", choices=("a", "b", "c"))}


def test_finds_the_optimum_and_is_seeded():
    result = GenerationParameterOptimizer(SPACE, _objective, population=10, generations=12, seed=3).run()
    assert result.params["n"] == 3 and result.params["c"] == "b" and abs(result.params["x"] - 0.7) < 0.1
    again = GenerationParameterOptimizer(SPACE, _objective, population=10, generations=12, seed=3).run()
    assert again.params == result.params
    bests = [h["best"] for h in result.history]
    assert bests == sorted(bests)  # elitism: the best never gets worse


def test_each_parameter_set_is_scored_once():
    calls = []
    GenerationParameterOptimizer({"c": Param("choice", choices=("a", "b"))}, lambda p: calls.append(p) or 0.0,
                                 population=4, generations=5).run()
    assert len(calls) <= 2


def test_bad_settings():
    with pytest.raises(ConfigError):
        GenerationParameterOptimizer(SPACE, _objective, population=1)


def test_tune_cli_saves_a_config_eval_accepts(tmp_path):
    from .test_cli import _build_bank

    out, texts = _build_bank(tmp_path)
    dev = tmp_path / "dev.txt"
    dev.write_text("\n".join(texts[:4]) + "\n")
    runner = CliRunner()
    result = runner.invoke(main, ["tune", "--decoder", "phrase", "--input", str(dev), "--bank", str(out), "--population", "3",
                                  "--generations", "2", "--out", str(tmp_path / "best.json")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["evaluations"] >= 3 and set(report["best"]) == {"method", "top_k", "consensus_weight"}
    PhraseDecoderConfig.load(tmp_path / "best.json")  # a complete, valid decoder config
    ev = runner.invoke(main, ["eval", "--input", str(dev), "--bank", str(out), "--config", str(tmp_path / "best.json")])
    assert ev.exit_code == 0 and json.loads(ev.output)["n"] == 4
