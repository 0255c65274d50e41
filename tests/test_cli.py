from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lightweight_decoder.cli import main
from lightweight_decoder.errors import ConfigError
from lightweight_decoder.threads import set_threads

SMALL = ["--model", "all-MiniLM-L6-v2"]


def test_info_json():
    result = CliRunner().invoke(main, ["info", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["known_encoders"]["all-mpnet-base-v2"] == 768
    assert isinstance(report["cpu_bf16"], bool)
    assert report["auto_precision"] == ("bf16" if report["cpu_bf16"] else "fp32")
    assert report["versions"]["torch"].startswith("2.13.0")


def test_threads_option_and_environment_variable():
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(2, user_api="blas"):  # restores NumPy's BLAS pool afterwards
        try:
            report = json.loads(CliRunner().invoke(main, ["--threads", "1", "info", "--json"]).output)
            assert report["torch_threads"] == torch.get_num_threads() == 1
            assert report["blas_threads"] == 1  # the numpy runtime's products
            torch.set_num_threads(before)
            threadpool_limits(2, user_api="blas")
            report = json.loads(CliRunner().invoke(main, ["info", "--json"], env={"LIGHTWEIGHT_DECODER_THREADS": "1"}).output)
            assert report["torch_threads"] == report["blas_threads"] == 1
            bad = CliRunner().invoke(main, ["--threads", "0", "info"])
            assert bad.exit_code == 2 and "--threads" in bad.output
            for wrong in (0, 1.5, True):
                with pytest.raises(ConfigError, match="thread count must be an int >= 1"):
                    set_threads(wrong)
        finally:
            torch.set_num_threads(before)


def test_info_reports_the_shipped_generator():
    from lightweight_decoder.paths import default_paths

    meta = json.loads((default_paths()["generative"] / "config.json").read_text())
    report = json.loads(CliRunner().invoke(main, ["info", "--json"]).output)
    assert report["generative_parameters"] == meta["parameters"]
    assert report["generative_weights"] == meta.get("weights", "fp32")
    text = CliRunner().invoke(main, ["info"]).output
    assert f"{meta['parameters']:,} ({report['generative_weights']} weights on disk)" in text
    screen = json.loads((default_paths()["screen"] / "config.json").read_text())
    assert report["screen_dev_cosine"] == screen["metrics"]["dev_cosine"]
    assert f"{screen['metrics']['dev_cosine']:.3f} to the encoder" in text


def test_encode_json_lines(small_encoder):
    result = CliRunner().invoke(main, ["encode", "The cat sat on the mat.", "A dog.", "--json", *SMALL])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["text"] for r in rows] == ["The cat sat on the mat.", "A dog."]
    vec = np.array(rows[0]["embedding"])
    assert vec.shape == (384,)
    np.testing.assert_allclose(vec, small_encoder.encode("The cat sat on the mat."), atol=1e-5)


def test_encode_stdin_to_npy(tmp_path):
    out = tmp_path / "v.npy"
    result = CliRunner().invoke(main, ["encode", "--input", "-", "--out", str(out), *SMALL], input="one line\n\nanother line\n")
    assert result.exit_code == 0, result.output
    assert np.load(out).shape == (2, 384)
    assert "2 x 384" in result.output


def test_user_mistakes_are_friendly():
    runner = CliRunner()
    unknown = runner.invoke(main, ["encode", "x", "--model", "nope"])
    assert unknown.exit_code == 1 and "ModelNotFound" in unknown.output and "Traceback" not in unknown.output
    empty = runner.invoke(main, ["encode", "", *SMALL])
    assert empty.exit_code == 1 and "empty string" in empty.output
    nothing = runner.invoke(main, ["encode", *SMALL])
    assert nothing.exit_code == 2 and "--input" in nothing.output


def _build_bank(tmp_path, runner=None):
    from .conftest import BANK_TEXTS

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(BANK_TEXTS + BANK_TEXTS[:3]) + "\n")  # duplicates are dropped
    out = tmp_path / "bank"
    args = ["bank", "build", "--corpus", str(corpus), "--out", str(out), *SMALL, "--precision", "fp32", "--cache", str(tmp_path / "emb")]
    result = (runner or CliRunner()).invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, BANK_TEXTS


def test_bank_build_is_resumable_and_reusable(tmp_path):
    out, texts = _build_bank(tmp_path)
    info = json.loads(CliRunner().invoke(main, ["bank", "info", str(out)]).output)
    assert info["size"] == len(texts) and info["encoder"] == "all-MiniLM-L6-v2" and info["dimension"] == 384
    shard = tmp_path / "emb" / "shard-00000.npy"
    before = shard.stat().st_mtime_ns
    _build_bank(tmp_path)  # second run reuses the cached embeddings
    assert shard.stat().st_mtime_ns == before


def test_bank_add_continues_the_corpus_and_skips_what_is_there(tmp_path):
    from .conftest import BANK_TEXTS

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(BANK_TEXTS) + "\n")
    runner = CliRunner()
    built = runner.invoke(main, ["bank", "build", "--corpus", str(corpus), "--out", str(tmp_path / "bank"), "--limit", "10", *SMALL,
                                 "--precision", "fp32"])
    assert built.exit_code == 0, built.output
    args = ["bank", "add", str(tmp_path / "bank"), "--corpus", str(corpus), "--offset", "8", "--precision", "fp32"]
    added = runner.invoke(main, args)
    assert added.exit_code == 0, added.output
    assert "added 6 entries (2 already there)" in added.output  # texts 8, 9 came with the build
    info = json.loads(runner.invoke(main, ["bank", "info", str(tmp_path / "bank")]).output)
    assert info["size"] == len(BANK_TEXTS)
    assert info["metadata"]["additions"] == [{"corpus": ["corpus.txt"], "seed": 0, "offset": 8, "limit": None, "added": 6,
                                              "skipped_duplicates": 2, "precision": "fp32"}]
    found = runner.invoke(main, ["decode", "--bank", str(tmp_path / "bank"), "--text", BANK_TEXTS[-1], "--json"])
    assert json.loads(found.output)["text"] == BANK_TEXTS[-1]  # an added entry is searchable after the reload
    other = runner.invoke(main, ["bank", "add", str(tmp_path / "bank"), "--corpus", str(corpus), "--model", "all-mpnet-base-v2"])
    assert other.exit_code == 1 and "IncompatibleArtifact" in other.output


def test_decode_text_npy_and_jsonl(tmp_path, small_encoder):
    out, texts = _build_bank(tmp_path)
    runner = CliRunner()
    by_text = runner.invoke(main, ["decode", "--bank", str(out), "--text", texts[0], "--text", texts[3]])
    assert by_text.exit_code == 0, by_text.output
    assert by_text.output.splitlines() == [texts[0], texts[3]]
    np.save(tmp_path / "q.npy", small_encoder.encode(texts[:2]))
    by_npy = runner.invoke(main, ["decode", str(tmp_path / "q.npy"), "--bank", str(out), "--json", "--method", "weighted"])
    rows = [json.loads(line) for line in by_npy.output.splitlines()]
    assert [r["text"] for r in rows] == texts[:2] and rows[0]["method"] == "weighted"
    jsonl = "\n".join(json.dumps({"embedding": v.tolist()}) for v in small_encoder.encode(texts[4:6]))
    by_stdin = runner.invoke(main, ["decode", "-", "--bank", str(out)], input=jsonl)
    assert by_stdin.output.splitlines() == texts[4:6]


def test_decode_nprobe_reaches_the_bank(tmp_path, monkeypatch):
    from lightweight_decoder.phrasebank import PhraseBank

    out, texts = _build_bank(tmp_path)
    asked = []
    real = PhraseBank.set_search
    monkeypatch.setattr(PhraseBank, "set_search", lambda self, **kw: (asked.append(kw), real(self, **kw))[1])
    result = CliRunner().invoke(main, ["decode", "--bank", str(out), "--text", texts[0], "--nprobe", "4"])
    assert result.exit_code == 0, result.output
    assert asked == [{"nprobe": 4}] and result.output.splitlines() == [texts[0]]
    bad = CliRunner().invoke(main, ["decode", "--bank", str(out), "--text", texts[0], "--nprobe", "0"])
    assert bad.exit_code == 2 and "nprobe" in bad.output


def test_quantize_and_runtime_with_the_phrase_decoder_are_named_as_ignored(tmp_path, caplog):
    out, texts = _build_bank(tmp_path)
    result = CliRunner().invoke(main, ["decode", "--bank", str(out), "--text", texts[0], "--quantize", "fp16", "--runtime", "numpy"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == texts[0]
    assert any("quantize=fp16 has no effect on the phrase decoder" in r.getMessage() for r in caplog.records)
    assert any("runtime=numpy has no effect on the phrase decoder" in r.getMessage() for r in caplog.records)


def test_decode_errors_are_friendly(tmp_path):
    out, _ = _build_bank(tmp_path)
    runner = CliRunner()
    np.save(tmp_path / "bad.npy", np.ones((1, 10), np.float32))
    wrong = runner.invoke(main, ["decode", str(tmp_path / "bad.npy"), "--bank", str(out)])
    assert wrong.exit_code == 1 and "expected 384-D vectors, got 10-D" in wrong.output
    (tmp_path / "bad.jsonl").write_text("[1, 2\n")
    broken = runner.invoke(main, ["decode", str(tmp_path / "bad.jsonl"), "--bank", str(out)])
    assert broken.exit_code == 1 and "bad.jsonl:1" in broken.output
    other = runner.invoke(main, ["decode", "--text", "x", "--bank", str(out), "--model", "all-mpnet-base-v2"])
    assert other.exit_code == 1 and "IncompatibleArtifact" in other.output
    missing_bank = runner.invoke(main, ["decode", "--text", "x", "--decoder", "hybrid", "--bank", str(tmp_path / "none")])
    assert missing_bank.exit_code == 1 and "no phrase bank" in missing_bank.output and "Traceback" not in missing_bank.output
    np.save(tmp_path / "v.npy", np.ones((1, 384), np.float32))
    for needs_encoder in (["--text", "x", "--decoder", "generative"], [str(tmp_path / "v.npy"), "--bank", str(out)],
                          [str(tmp_path / "v.npy"), "--decoder", "generative", "--model", "all-MiniLM-L6-v2"]):
        refused = runner.invoke(main, ["decode", *needs_encoder, "--no-rescore"])
        assert refused.exit_code == 2 and "--no-rescore loads no encoder" in refused.output


def test_roundtrip_and_eval_contract(tmp_path):
    out, texts = _build_bank(tmp_path)
    dev = tmp_path / "dev.txt"
    dev.write_text("\n".join(texts[:3] + ["A completely unseen sentence about glaciers."]) + "\n")
    runner = CliRunner()
    rt = runner.invoke(main, ["roundtrip", "--decoder", "phrase", "--input", str(dev), "--bank", str(out), "--jsonl"])
    assert rt.exit_code == 0, rt.output
    rows = [json.loads(line) for line in rt.output.splitlines()]
    assert len(rows) == 4 and all(set(r) == {"input", "output", "cosine", "ms"} for r in rows)
    assert [r["output"] for r in rows[:3]] == texts[:3] and rows[0]["cosine"] > 0.999
    limited = runner.invoke(main, ["roundtrip", "--input", str(dev), "--bank", str(out), "--limit", "2", "--jsonl"])
    assert len(limited.output.splitlines()) == 2
    ev = runner.invoke(main, ["eval", "--decoder", "phrase", "--input", str(dev), "--bank", str(out), "--jsonl", "--out", str(tmp_path / "r.json")])
    assert ev.exit_code == 0, ev.output
    summary = json.loads(ev.output)
    assert set(summary) == {"n", "bleu", "exact_match", "token_f1", "rouge_l", "cosine", "names_recovered", "numbers_recovered",
                            "ms_per_sentence"}
    assert summary["n"] == 4 and summary["exact_match"] == 0.75 and 0 < summary["bleu"] <= 100
    assert len(json.loads((tmp_path / "r.json").read_text())["rows"]) == 4
    table = runner.invoke(main, ["eval", "--input", str(dev), "--bank", str(out), "--table"])
    assert table.output.startswith("| decoder | n | bleu")
    hybrid = runner.invoke(main, ["roundtrip", "--decoder", "hybrid", "--input", str(dev), "--bank", str(out), "--limit", "2", "--jsonl",
                                  "--generative", str(tmp_path / "no-model-here")])
    assert hybrid.exit_code == 1 and "no generative decoder" in hybrid.output  # an explicit path must exist
    (tmp_path / "hybrid.json").write_text(json.dumps({"num_steps": 1, "tau": 0.99}))
    hybrid = runner.invoke(main, ["eval", "--decoder", "hybrid", "--input", str(dev), "--bank", str(out), "--config", str(tmp_path / "hybrid.json")])
    assert hybrid.exit_code == 0, hybrid.output
    assert json.loads(hybrid.output)["exact_match"] == 0.75


def test_train_then_roundtrip_generative(tmp_path):
    from .conftest import BANK_TEXTS

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(BANK_TEXTS * 5) + "\n")
    dev = tmp_path / "dev.txt"
    dev.write_text("\n".join(BANK_TEXTS[:3]) + "\n")
    runner = CliRunner()
    trained = runner.invoke(main, ["train", "--corpus", str(corpus), "--out", str(tmp_path / "gen"), "--preset", "tiny", "--steps", "20",
                                   "--encoder", "all-MiniLM-L6-v2", "--batch-size", "8", "--eval-every", "10", "--dev", str(dev),
                                   "--cache", str(tmp_path / "emb"), "--adaln", "--dropout", "0.1", "--noise-std", "0.2", "--weights", "fp16",
                                   "--layers", "3", "--decay-fraction", "0.5"])
    assert trained.exit_code == 0, trained.output
    saved = json.loads((tmp_path / "gen" / "decoder" / "config.json").read_text())
    assert saved["model"]["cond_adaln"] is True and saved["model"]["dropout"] == 0.1 and saved["weights"] == "fp16"
    assert saved["model"]["n_layer"] == 3  # the tiny preset has 2
    assert saved["metadata"]["train_config"]["noise_std"] == 0.2 and saved["metadata"]["train_config"]["decay_fraction"] == 0.5
    log = [json.loads(line) for line in (tmp_path / "gen" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20] and {"bleu", "exact_match", "cosine", "lm_mean", "nll"} <= set(log[-1])
    assert "step 20, " in trained.output and f"on 3 lines of {dev}: BLEU {log[-1]['bleu']:.2f}," in trained.output  # the last evaluation
    rt = runner.invoke(main, ["roundtrip", "--decoder", "generative", "--generative", str(tmp_path / "gen"), "--input", str(dev), "--jsonl"])
    assert rt.exit_code == 0, rt.output
    rows = [json.loads(line) for line in rt.output.splitlines()]
    assert len(rows) == 3 and all(set(r) == {"input", "output", "cosine", "ms"} for r in rows)
    ev = runner.invoke(main, ["eval", "--decoder", "generative", "--generative", str(tmp_path / "gen"), "--input", str(dev), "--num-beams", "2"])
    assert ev.exit_code == 0, ev.output
    summary = json.loads(ev.output)
    assert summary["n"] == 3 and {"nll", "perplexity", "nll_mismatched", "nll_output", "search_errors"} <= set(summary) and summary["nll"] > 0
    int8 = runner.invoke(main, ["decode", "--text", BANK_TEXTS[0], "--decoder", "generative", "--generative", str(tmp_path / "gen"),
                                "--quantize", "int8", "--json"])
    assert int8.exit_code == 0, int8.output
    assert json.loads(int8.output)["text"]
    # the numpy runtime writes the torch runtime's greedy text; eval then has no likelihood columns
    fp32 = runner.invoke(main, ["decode", "--text", BANK_TEXTS[0], "--decoder", "generative", "--generative", str(tmp_path / "gen"), "--json"])
    numpy_rt = runner.invoke(main, ["decode", "--text", BANK_TEXTS[0], "--decoder", "generative", "--generative", str(tmp_path / "gen"),
                                    "--runtime", "numpy", "--json"])
    assert numpy_rt.exit_code == 0, numpy_rt.output
    assert json.loads(numpy_rt.output)["text"] == json.loads(fp32.output)["text"]
    ev_numpy = runner.invoke(main, ["eval", "--decoder", "generative", "--generative", str(tmp_path / "gen"), "--input", str(dev),
                                    "--runtime", "numpy"])
    assert ev_numpy.exit_code == 0, ev_numpy.output
    assert "bleu" in json.loads(ev_numpy.output) and "nll" not in json.loads(ev_numpy.output)
    beams = runner.invoke(main, ["decode", "--text", BANK_TEXTS[0], "--decoder", "generative", "--generative", str(tmp_path / "gen"),
                                 "--runtime", "numpy", "--num-beams", "2"])
    assert beams.exit_code == 1 and "torch runtime" in beams.output
    hybrid = runner.invoke(main, ["decode", "--text", BANK_TEXTS[0], "--decoder", "hybrid", "--runtime", "numpy"])
    assert hybrid.exit_code == 1 and "torch runtime" in hybrid.output
    missing = runner.invoke(main, ["decode", "--text", "x", "--decoder", "generative", "--generative", str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "train one" in missing.output


def test_train_with_memory_then_decode_through_the_hybrid(tmp_path, small_bank):
    """--memory-len adds candidate-word slots filled from --memory-bank; the decoder names that bank, and a hybrid over
    the same bank lends it to the generator instead of loading it twice."""
    from lightweight_decoder.loading import load_decoder

    from .conftest import BANK_TEXTS

    bank_dir = tmp_path / "bank"
    small_bank.save(bank_dir)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(BANK_TEXTS * 5) + "\n")
    runner = CliRunner()
    trained = runner.invoke(main, ["train", "--corpus", str(corpus), "--out", str(tmp_path / "gen"), "--preset", "tiny", "--steps", "4",
                                   "--encoder", "all-MiniLM-L6-v2", "--batch-size", "8", "--eval-every", "2", "--cache", str(tmp_path / "emb"),
                                   "--memory-len", "12", "--memory-bank", str(bank_dir), "--memory-neighbours", "2", "--memory-dropout", "0.25"])
    assert trained.exit_code == 0, trained.output
    saved = json.loads((tmp_path / "gen" / "decoder" / "config.json").read_text())
    assert saved["model"]["memory_len"] == 12 and saved["memory"]["bank"] == str(bank_dir.resolve()) and saved["memory"]["neighbours"] == 2
    assert saved["metadata"]["train_config"]["memory_dropout"] == 0.25
    hybrid, _ = load_decoder("hybrid", bank_path=str(bank_dir), generative_path=str(tmp_path / "gen"))
    assert hybrid.generator.retriever.bank is hybrid.phrase.bank
    alone, _ = load_decoder("generative", generative_path=str(tmp_path / "gen"))
    assert alone.retriever.bank is not hybrid.phrase.bank and len(alone.retriever.bank) == len(BANK_TEXTS)
    (tmp_path / "in.txt").write_text(BANK_TEXTS[1] + "\n")
    rt = runner.invoke(main, ["roundtrip", "--decoder", "hybrid", "--bank", str(bank_dir), "--generative", str(tmp_path / "gen"),
                              "--input", str(tmp_path / "in.txt"), "--jsonl"])
    assert rt.exit_code == 0, rt.output
    assert json.loads(rt.output.splitlines()[0])["output"] == BANK_TEXTS[1]  # in the bank: the fast path


def test_train_from_a_bank_without_vectors(tmp_path, small_encoder):
    """A bank's texts and the vectors its PQ index decodes are training pairs; the run records how close they were."""
    from lightweight_decoder.config import PhraseBankConfig
    from lightweight_decoder.phrasebank import PhraseBank

    from .conftest import BANK_TEXTS

    texts = [f"{t} ({i})" for i in range(8) for t in BANK_TEXTS]  # 128 distinct texts
    PhraseBank.from_vectors(texts, small_encoder.encode(texts), encoder_name=small_encoder.name,
                            config=PhraseBankConfig(index_factory="PQ8x4", vector_dtype="none")).save(tmp_path / "bank")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts[:20] + ["A sentence only the corpus has."]) + "\n")
    runner = CliRunner()
    assert "give --corpus FILE or --bank DIR" in runner.invoke(main, ["train", "--out", str(tmp_path / "x"), "--steps", "1"]).output
    trained = runner.invoke(main, ["train", "--bank", str(tmp_path / "bank"), "--corpus", str(corpus), "--out", str(tmp_path / "gen"),
                                   "--preset", "tiny", "--steps", "2", "--encoder", "all-MiniLM-L6-v2", "--batch-size", "8",
                                   "--cache", str(tmp_path / "emb")])
    assert trained.exit_code == 0, trained.output
    assert "108 texts with vectors decoded from its PQ8x4 index" in trained.output  # the 20 the corpus has are not taken twice
    meta = json.loads((tmp_path / "gen" / "decoder" / "config.json").read_text())["metadata"]
    assert meta["train_texts"] == 21 + 108
    corpus_part, bank_part = meta["data"]
    assert corpus_part == {"corpus": ["corpus.txt"], "seed": 0, "offset": 0, "texts": 21}
    assert bank_part["texts"] == 108 and bank_part["vectors"] == "reconstructed" and 0.2 < bank_part["cosine_to_fresh"] < 0.999


def test_screen_train_then_hybrid_decode_with_it(tmp_path, shared_data):
    lines = (shared_data / "eval" / "dialogue_dev.txt").read_text().splitlines()[:300]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    trained = runner.invoke(main, ["screen", "train", "--corpus", str(corpus), "--out", str(tmp_path / "screen"), *SMALL,
                                   "--cache", str(tmp_path / "emb"), "--rank", "32", "--epochs", "2"])
    assert trained.exit_code == 0, trained.output
    meta = json.loads((tmp_path / "screen" / "config.json").read_text())
    assert meta["type"] == "embedding_screen" and meta["encoder"] == "all-MiniLM-L6-v2" and meta["rank"] == 32
    assert meta["metrics"]["data"]["texts"] == len(set(lines)) and f"cosine {meta['metrics']['dev_cosine']:.4f}" in trained.output
    built = runner.invoke(main, ["bank", "build", "--corpus", str(corpus), "--out", str(tmp_path / "bank"), *SMALL, "--cache", str(tmp_path / "emb")])
    assert built.exit_code == 0, built.output
    decoded = runner.invoke(main, ["decode", "--text", "Can I get a taxi to the station at noon?", "--decoder", "hybrid", "--bank",
                                   str(tmp_path / "bank"), "--screen", str(tmp_path / "screen"), "--json"])
    assert decoded.exit_code == 0, decoded.output
    assert json.loads(decoded.output.splitlines()[-1])["details"]["screened"] > 0
    wrong = runner.invoke(main, ["decode", "--text", "x", "--decoder", "hybrid", "--bank", str(tmp_path / "bank"), "--screen", str(tmp_path / "nothing")])
    assert wrong.exit_code == 1 and "screen train" in wrong.output
