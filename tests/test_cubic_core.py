from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lightweight_decoder.cli import main
from lightweight_decoder.cubic_core import CubicCore, CubicCoreConfig, lattice_shape_for, read_pairs, train_core
from lightweight_decoder.errors import ConfigError, IncompatibleArtifact, InvalidEmbedding, InvalidInput
from lightweight_decoder.pipeline import Pipeline


def _unit(rng, n, d):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_lattice_shapes():
    assert lattice_shape_for(768) == (8, 8, 12)
    assert np.prod(lattice_shape_for(384)) == 384
    assert CubicCoreConfig(dimension=768, shape=[4, 16, 12]).lattice_shape() == (4, 16, 12)
    with pytest.raises(ConfigError, match="cells"):
        CubicCoreConfig(dimension=768, shape=[8, 8, 8])
    with pytest.raises(ConfigError, match="mode"):
        CubicCoreConfig(mode="magic")


def test_untrained_core_is_identity_and_identity_mode(rng):
    x = _unit(rng, 5, 768)
    np.testing.assert_allclose(CubicCore().transform(x), x, atol=1e-6)
    np.testing.assert_allclose(CubicCore(CubicCoreConfig(mode="identity")).transform(x[0]), x[0], atol=1e-6)
    with pytest.raises(InvalidEmbedding, match="768-D"):
        CubicCore().transform(np.ones(10))


def test_the_lattice_is_local(rng):
    """Without the mean field, T steps of the 3x3x3 rule carry a change at most T cells away."""
    torch.manual_seed(0)
    for steps in (1, 2):
        core = CubicCore(CubicCoreConfig(dimension=216, shape=[6, 6, 6], steps=steps))
        torch.nn.init.normal_(core.readout.weight)
        with torch.no_grad():
            core.rule.weight[:, core.config.channels:] = 0  # switch off the global mean field
        x = torch.from_numpy(_unit(rng, 1, 216))
        y = x.clone()
        y[0, 0] += 0.5  # cell (0, 0, 0)
        changed = (core.lattice_delta(y) - core.lattice_delta(x)).detach().abs().view(6, 6, 6) > 1e-7
        reach = np.argwhere(changed.numpy()).max(axis=0)
        assert tuple(reach) == (steps, steps, steps)


def test_transform_training_beats_the_untrained_baseline(rng):
    d = 48
    src = _unit(rng, 600, d)
    shift = _unit(rng, 1, d)[0]  # a consistent semantic shift, like question -> answer
    tgt = src + 0.8 * shift + 0.1 * rng.standard_normal(src.shape).astype(np.float32) / np.sqrt(d)
    tgt /= np.linalg.norm(tgt, axis=1, keepdims=True)
    core = train_core(src, tgt, CubicCoreConfig(dimension=d, shape=[4, 4, 3], channels=8, steps=2), epochs=15, show_progress_bar=False)
    m = core.metrics
    assert m["heldout_trained_cosine"] > m["heldout_baseline_cosine"] + 0.05, m
    assert m["heldout_pairs"] == 60


def test_autoencoder_denoises(rng):
    # structured inputs (smooth fields over the lattice) can be denoised by a local rule; random ones cannot
    raw = torch.from_numpy(rng.standard_normal((400, 1, 6, 6, 6)).astype(np.float32))
    smooth = torch.nn.functional.avg_pool3d(raw, 3, stride=1, padding=1, count_include_pad=False).view(400, -1).numpy()
    src = smooth / np.linalg.norm(smooth, axis=1, keepdims=True)
    core = train_core(src, None, CubicCoreConfig(dimension=216, shape=[6, 6, 6], mode="autoencoder"), epochs=15,
                      noise_std=0.5, show_progress_bar=False)
    assert core.metrics["heldout_trained_cosine"] > core.metrics["heldout_baseline_cosine"]


def test_save_load_and_resume(tmp_path, rng):
    src, tgt = _unit(rng, 200, 48), _unit(rng, 200, 48)
    cfg = CubicCoreConfig(dimension=48, shape=[4, 4, 3])
    straight = train_core(src, tgt, cfg, epochs=4, show_progress_bar=False)
    train_core(src, tgt, cfg, epochs=2, checkpoint=tmp_path / "ckpt", show_progress_bar=False)
    resumed = train_core(src, tgt, cfg, epochs=4, checkpoint=tmp_path / "ckpt", show_progress_bar=False)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)
    resumed.save(tmp_path / "core", encoder_name="test-encoder")
    loaded = CubicCore.load(tmp_path / "core", encoder_name="test-encoder", dimension=48)
    np.testing.assert_allclose(loaded.transform(src[:3]), resumed.transform(src[:3]), atol=1e-6)
    assert loaded.metrics == resumed.metrics
    with pytest.raises(IncompatibleArtifact):
        CubicCore.load(tmp_path / "core", encoder_name="other", dimension=48)
    with pytest.raises(InvalidInput, match="identity"):
        train_core(src, tgt, CubicCoreConfig(dimension=48, mode="identity"))


def test_read_pairs(tmp_path):
    (tmp_path / "p.tsv").write_text("a question?\tan answer.\n\nsecond\tpair\n")
    assert read_pairs(tmp_path / "p.tsv") == (["a question?", "second"], ["an answer.", "pair"])
    (tmp_path / "bad.tsv").write_text("no tab here\n")
    with pytest.raises(InvalidInput, match="bad.tsv:1"):
        read_pairs(tmp_path / "bad.tsv")


def test_pipeline_and_cli(tmp_path, small_encoder, small_bank):
    from lightweight_decoder.decoders import PhraseBankDecoder

    from .conftest import BANK_TEXTS

    decoder = PhraseBankDecoder(small_bank, encoder=small_encoder)
    pipe = Pipeline(small_encoder, decoder)
    assert pipe(BANK_TEXTS[0]).text == BANK_TEXTS[0]
    assert [r.text for r in pipe(BANK_TEXTS[:3])] == BANK_TEXTS[:3]
    with pytest.raises(IncompatibleArtifact):
        Pipeline(small_encoder, decoder, CubicCore(CubicCoreConfig(dimension=768)))

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join(f"{a}\t{b}" for a, b in zip(BANK_TEXTS, BANK_TEXTS[1:] + BANK_TEXTS[:1])) + "\n")
    runner = CliRunner()
    trained = runner.invoke(main, ["core", "train", "--pairs", str(pairs), "--out", str(tmp_path / "core"), "--encoder", "all-MiniLM-L6-v2",
                                   "--epochs", "2", "--json"])
    assert trained.exit_code == 0, trained.output
    metrics = json.loads(trained.stdout)
    assert {"heldout_baseline_cosine", "heldout_trained_cosine"} <= set(metrics)
    small_bank.save(tmp_path / "bank")
    out = runner.invoke(main, ["pipeline", BANK_TEXTS[2], "--core", str(tmp_path / "core"), "--bank", str(tmp_path / "bank"), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["core"] == "transform"
    dev = tmp_path / "dev.txt"
    dev.write_text("\n".join(BANK_TEXTS[:2]) + "\n")
    rt = runner.invoke(main, ["roundtrip", "--input", str(dev), "--bank", str(tmp_path / "bank"), "--core", str(tmp_path / "core"), "--jsonl"])
    assert rt.exit_code == 0 and len(rt.output.splitlines()) == 2
