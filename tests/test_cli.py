from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from lightweight_decoder.cli import main

SMALL = ["--model", "all-MiniLM-L6-v2"]


def test_info_json():
    result = CliRunner().invoke(main, ["info", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["known_encoders"]["all-mpnet-base-v2"] == 768
    assert isinstance(report["cpu_bf16"], bool)
    assert report["versions"]["torch"].startswith("2.13.0")


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
