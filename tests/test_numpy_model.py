"""The numpy runtime computes what the torch model computes: logits on tiny seeded models with every kind of
conditioning, greedy text, and the shipped model's text; it never imports torch; what it cannot do raises."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_model

from lightweight_decoder.config import GenerationConfig, ModelConfig
from lightweight_decoder.decoders import PhraseBankDecoder
from lightweight_decoder.decoders.generative import GenerativeDecoder, create_generative_decoder
from lightweight_decoder.decoders.hybrid import HybridDecoder
from lightweight_decoder.errors import ConfigError, CorruptArtifact, IncompatibleArtifact
from lightweight_decoder.generation import generate
from lightweight_decoder.loading import load_decoder
from lightweight_decoder.model import PrefixLM
from lightweight_decoder.numpy_model import NumpyPrefixLM, greedy_generate
from lightweight_decoder.paths import default_paths


def _random_model(**overrides) -> PrefixLM:
    """A tiny model whose zero-initialised parts (cond_proj, adaln's last layer) are random too, so that every
    path of the forward pass is exercised."""
    torch.manual_seed(0)
    model = PrefixLM(ModelConfig.preset("tiny", embedding_dim=16, max_len=16, vocab_size=64, **overrides)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "cond_proj" in name or "adaln" in name or "norm" in name:
                p.normal_(0.0, 0.3 if "norm" not in name else 1.0)
    return model


def _numpy_twin(model: PrefixLM, tmp_path) -> NumpyPrefixLM:
    save_model(model, str(tmp_path / "model.safetensors"))
    return NumpyPrefixLM.load(model.config, tmp_path / "model.safetensors")


def _cond(rows: int, dim: int = 16) -> np.ndarray:
    c = np.random.default_rng(1).standard_normal((rows, dim)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


@pytest.mark.parametrize("conditioning", [dict(cond_inject=False), dict(cond_inject=True), dict(cond_inject=True, cond_adaln=True)])
def test_logits_match_the_torch_model_step_by_step(tmp_path, conditioning):
    model = _random_model(**conditioning)
    twin = _numpy_twin(model, tmp_path)
    assert twin.num_parameters() == model.num_parameters()
    cond = _cond(3)
    tokens = np.array([[5, 9, 30, 7], [11, 11, 3, 40], [60, 2, 8, 8]])
    with torch.no_grad():
        c = torch.from_numpy(cond)
        state = model.conditioning(c)
        expected, cache = model.start(c, torch.full((3,), model.config.bos_id), state=state, max_new_tokens=8)
        expected_steps = []
        for t in range(tokens.shape[1]):
            logits, cache = model.step(torch.from_numpy(tokens[:, t]), cache, model.config.context_len + 1 + t, state)
            expected_steps.append(logits.numpy())
    np_state = twin.conditioning(cond)
    got, np_cache = twin.start(cond, np_state, 8)
    np.testing.assert_allclose(got, expected.numpy(), atol=2e-4, rtol=1e-4)
    for t in range(tokens.shape[1]):
        np.testing.assert_allclose(twin.step(tokens[:, t], np_cache, np_state), expected_steps[t], atol=2e-4, rtol=1e-4)


def test_the_numpy_runtime_holds_each_weight_once(tmp_path):
    """The tied input/output matrix is the largest weight (the vocabulary times the width): one copy serves both."""
    model = _random_model(cond_inject=True, cond_adaln=True)
    twin = _numpy_twin(model, tmp_path)
    held = [a for a in vars(twin).values() if isinstance(a, np.ndarray)]
    held += [a for group in (twin.prefix, twin.adaln, *twin.blocks) for a in group]
    rotary = twin.cos.nbytes + twin.sin.nbytes
    # every parameter once in fp32, but bow_bias (a training loss's, not read at inference)
    assert sum(a.nbytes for a in held) - rotary == 4 * (model.num_parameters() - model.config.vocab_size)
    # a token's input embedding is its column of the output layer
    np.testing.assert_array_equal(twin.head[:, 7], model.tok_emb.weight[7].detach().numpy())


@pytest.mark.parametrize("settings", [dict(), dict(repetition_penalty=1.3), dict(no_repeat_ngram_size=2, max_new_tokens=12)])
def test_greedy_text_and_scores_match_the_torch_runtime(tmp_path, settings):
    model = _random_model(cond_inject=True)
    twin = _numpy_twin(model, tmp_path)
    cond = _cond(6)
    cfg = GenerationConfig(**settings)
    expected = generate(model, torch.from_numpy(cond), cfg)
    got = greedy_generate(twin, cond, cfg)
    assert [row[0].tokens for row in got] == [row[0].tokens for row in expected]
    np.testing.assert_allclose([row[0].score for row in got], [row[0].score for row in expected], atol=1e-3)
    # a row's text does not depend on the batch it is decoded in
    assert [greedy_generate(twin, cond[i:i + 1], cfg)[0][0].tokens for i in range(len(cond))] == [row[0].tokens for row in got]


def test_a_decoder_folder_loads_in_either_runtime_with_the_same_text(tmp_path):
    decoder = create_generative_decoder("tiny", embedding_dim=16, texts=["the cat sat on the mat", "a dog ran"] * 20)
    decoder.save(tmp_path / "dec", weights="fp16")  # fp16 on disk: both runtimes compute with the same rounded weights
    torch_decoder = GenerativeDecoder.load(tmp_path / "dec")
    numpy_decoder = GenerativeDecoder.load(tmp_path / "dec", runtime="numpy")
    assert numpy_decoder.runtime == "numpy" and numpy_decoder.health()["runtime"] == "numpy"
    assert numpy_decoder.num_parameters == torch_decoder.num_parameters
    vectors = _cond(4)
    assert numpy_decoder.decode(vectors) == torch_decoder.decode(vectors)
    assert isinstance(numpy_decoder.decode(vectors[0]), str)


def test_what_the_numpy_runtime_cannot_do_raises_and_says_so(tmp_path, small_bank, small_encoder):
    decoder = create_generative_decoder("tiny", embedding_dim=16, texts=["the cat sat on the mat", "a dog ran"] * 20)
    decoder.save(tmp_path / "dec")
    with pytest.raises(ConfigError, match="unknown runtime 'jax'"):
        GenerativeDecoder.load(tmp_path / "dec", runtime="jax")
    with pytest.raises(ConfigError, match="torch runtime"):
        GenerativeDecoder.load(tmp_path / "dec", runtime="numpy", quantize="int8")
    numpy_decoder = GenerativeDecoder.load(tmp_path / "dec", runtime="numpy")
    with pytest.raises(ConfigError, match="num_beams=4.*torch runtime"):
        numpy_decoder.generate(_cond(1)[0], num_beams=4)
    with pytest.raises(ConfigError, match="torch runtime"):
        numpy_decoder.generate(_cond(1)[0], do_sample=True)
    with pytest.raises(ConfigError, match="scoring texts needs the torch runtime"):
        numpy_decoder.log_likelihood(["a dog ran"], _cond(1)[0])
    with pytest.raises(ConfigError, match="saving needs the torch runtime"):
        numpy_decoder.save(tmp_path / "again")
    create_generative_decoder("tiny", embedding_dim=small_encoder.dimension, encoder_name=small_encoder.name,
                              tokenizer=decoder.tokenizer).save(tmp_path / "dec384")
    generator = GenerativeDecoder.load(tmp_path / "dec384", runtime="numpy")
    with pytest.raises(ConfigError, match="hybrid .* needs the torch runtime"):
        HybridDecoder(PhraseBankDecoder(small_bank), generator, small_encoder)
    with pytest.raises(IncompatibleArtifact, match="memory slots"):
        NumpyPrefixLM(ModelConfig.preset("tiny", embedding_dim=16, memory_len=4), {})


def test_damaged_weights_are_named(tmp_path):
    model = _random_model()
    save_model(model, str(tmp_path / "model.safetensors"))
    tensors = {k: v.numpy() for k, v in model.state_dict().items()}
    with pytest.raises(CorruptArtifact, match="lack 'blocks.1.mlp.up.weight'"):
        NumpyPrefixLM(model.config, {k: v for k, v in tensors.items() if k != "blocks.1.mlp.up.weight"})
    with pytest.raises(CorruptArtifact, match="'norm.weight' has shape"):
        NumpyPrefixLM(model.config, {**tensors, "norm.weight": np.ones(3, np.float32)})
    wrong = ModelConfig.from_dict({**model.config.to_dict(), "d_ff": 400})
    with pytest.raises(CorruptArtifact, match="model.safetensors: model weight 'blocks.0.mlp.gate.weight' has shape"):
        NumpyPrefixLM.load(wrong, tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CorruptArtifact, match="not a readable safetensors file"):
        NumpyPrefixLM.load(model.config, tmp_path / "model.safetensors")


def _shipped() -> str:
    path = default_paths()["generative"]
    if not (path / "config.json").exists():
        pytest.skip("no generative model is shipped in this version")
    return str(path)


@pytest.mark.shipped_model
def test_shipped_model_writes_the_same_text_in_both_runtimes():
    path = _shipped()
    vectors = np.random.default_rng(3).standard_normal((8, 768)).astype(np.float32)
    torch_text = GenerativeDecoder.load(path).decode(vectors)
    assert GenerativeDecoder.load(path, runtime="numpy").decode(vectors) == torch_text


@pytest.mark.shipped_model
def test_decoding_with_the_numpy_runtime_never_imports_torch(tmp_path):
    path = _shipped()
    np.save(tmp_path / "v.npy", np.random.default_rng(4).standard_normal((2, 768)).astype(np.float32))
    script = ("import json, sys, numpy as np\n"
              "from lightweight_decoder.decoders.generative import GenerativeDecoder\n"
              f"d = GenerativeDecoder.load({path!r}, runtime='numpy')\n"
              f"texts = d.decode(np.load({str(tmp_path / 'v.npy')!r}))\n"
              "print(json.dumps({'texts': texts, 'torch': 'torch' in sys.modules}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["torch"] is False
    assert len(out["texts"]) == 2 and all(t.strip() for t in out["texts"])


@pytest.mark.shipped_model
def test_cli_decode_without_rescoring_loads_neither_encoder_nor_torch(tmp_path):
    path = _shipped()
    vectors = np.random.default_rng(5).standard_normal((3, 768)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    script = ("import json, sys\n"
              "from threadpoolctl import threadpool_info\n"
              "from lightweight_decoder.cli import main\n"
              f"main(['--threads', '1', 'decode', {str(tmp_path / 'v.npy')!r}, '--decoder', 'generative', '--generative', {path!r},\n"
              "      '--runtime', 'numpy', '--no-rescore', '--json'], standalone_mode=False)\n"
              "blas = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
              "print(json.dumps({'torch': 'torch' in sys.modules, 'blas': blas}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    *rows, status = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert status == {"torch": False, "blas": [1]}  # --threads reached NumPy's BLAS without importing torch
    assert [row["text"] for row in rows] == GenerativeDecoder.load(path, runtime="numpy").decode(vectors)
    assert all(row["score"] is None for row in rows)  # nothing re-encoded the outputs: strict JSON null, not NaN
    with pytest.raises(ConfigError, match="the phrase decoder needs its encoder"):
        load_decoder("phrase", with_encoder=False)
