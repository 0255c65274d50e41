from __future__ import annotations

import numpy as np
import pytest

from lightweight_decoder.quality import (RoundTrip, bleu, exact_match, likelihood, markdown_table, output_cosines, particulars, rouge_l,
                                      roundtrip, summarize, token_f1)


def test_metrics_on_known_pairs():
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert bleu(["completely different words here"], ["the cat sat on the mat"]) < 5
    assert exact_match(" a  b ", "a b") == 1.0 and exact_match("a b", "a c") == 0.0
    assert token_f1("the cat sat", "the cat sat down") == pytest.approx(6 / 7)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert rouge_l("the cat sat", "the cat sat down") == pytest.approx(6 / 7)


def test_roundtrip_and_summary(small_encoder):
    texts = ["The cat sat on the mat.", "Stocks fell sharply today."]
    rows = list(roundtrip(texts, small_encoder, lambda v: "The cat sat on the mat."))
    assert rows[0].cosine == pytest.approx(1.0, abs=1e-5) and rows[1].cosine < 0.5
    summary = summarize(rows)
    assert summary["n"] == 2 and summary["exact_match"] == 0.5
    assert set(summary) == {"n", "bleu", "exact_match", "token_f1", "rouge_l", "cosine", "names_recovered", "numbers_recovered",
                            "ms_per_sentence"}
    assert summary["names_recovered"] is None and summary["numbers_recovered"] is None  # the inputs have none
    assert summarize([])["n"] == 0
    assert "| n |" in markdown_table([summary], ["n", "bleu"])
    table = markdown_table([{"decoder": "phrase", "num_steps": None, "bleu": 4.56789}], ["decoder", "num_steps", "bleu", "absent"])
    assert table.splitlines()[-1] == "| phrase |  | 4.568 |  |"  # None and a missing key are empty cells


def test_particulars_are_names_that_do_not_start_a_sentence_and_numbers():
    names, numbers = particulars("In 1912 the Titanic left Southampton. It sank; I read that 1,503 died at 2:20 on 15/04.")
    assert names == {"Titanic", "Southampton"}  # not "In", "It" (sentence starts) nor "I"
    assert numbers == {"1912", "1,503", "2:20", "15/04"}
    assert particulars("") == (set(), set())
    assert particulars("hello there. what now? Paris!")[0] == set()  # "Paris" starts a sentence after "?"
    assert particulars("He met Dr. Watson in the U.S. Army.")[0] == {"Dr", "Watson", "U", "S", "Army"}  # abbreviations end none


def test_names_and_numbers_recovered_pool_over_rows():
    rows = [RoundTrip("The ship Titanic sank in 1912 near Newfoundland.", "Titanic sank in 1912.", 0.9, 1.0),
            RoundTrip("We met Anna in 1999.", "We met someone in 1998.", 0.8, 1.0),
            RoundTrip("nothing to find here", "anything", 0.1, 1.0)]
    summary = summarize(rows)
    # names: Titanic (found, though it starts the output), Newfoundland, Anna -> 1 of 3; numbers: 1912 found, 1999 not -> 1 of 2
    assert summary["names_recovered"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["numbers_recovered"] == 0.5
    assert summarize([RoundTrip("The Titanic sank.", "the titanic sank.", 0.9, 1.0)])["names_recovered"] == 0.0  # case counts


def test_empty_output_scores_zero_cosine(small_encoder):
    rows = list(roundtrip(["A sentence."], small_encoder, lambda v: ""))
    assert rows == [RoundTrip("A sentence.", "", 0.0, rows[0].ms)]


def test_output_cosines_batch_matches_one_at_a_time(small_encoder):
    targets = small_encoder.encode(["The cat sat on the mat.", "Stocks fell sharply.", "Rain again."])
    outputs = ["A cat sat on a mat.", "", "Rain again."]
    cosines = output_cosines(small_encoder, outputs, targets)
    assert cosines[1] == 0.0 and cosines[2] == pytest.approx(1.0, abs=1e-5)
    assert cosines[0] == pytest.approx(float(small_encoder.encode(outputs[0]) @ targets[0]), abs=1e-5)


class _ScorerDouble:
    """Test double: a generative decoder whose text i costs ``nats[i]`` over ``tokens[i]`` tokens under its own vector
    (row i of the identity) and twice that under any other; it records which vector each text was read under."""

    def __init__(self, nats, tokens):
        self.nats, self.tokens, self.read = np.asarray(nats, float), np.asarray(tokens), []

    def sequence_log_probs(self, texts, vectors):
        owners = np.argmax(vectors, axis=1)
        self.read.append(owners)
        own = owners == np.arange(len(texts))
        return -np.where(own, self.nats, 2 * self.nats), self.tokens.copy()


def test_likelihood_weighs_every_token_alike_and_never_reads_a_text_under_its_own_vector():
    scorer = _ScorerDouble(nats=[2.0, 8.0, 5.0, 5.0, 1.0], tokens=[1, 3, 2, 2, 2])
    scores = likelihood(scorer, ["a", "b", "c", "d", "e"], np.eye(5, dtype=np.float32))
    assert scores["nll"] == 21.0 / 10  # not the mean of per-text means (2.6)
    assert scores["nll_mismatched"] == 42.0 / 10
    own, other = scorer.read
    assert list(own) == [0, 1, 2, 3, 4] and sorted(other) == [0, 1, 2, 3, 4] and not (other == np.arange(5)).any()
    alone = likelihood(scorer, ["a", "b", "c", "d", "e"], np.eye(5, dtype=np.float32), mismatched=False)
    assert alone == {"nll": scores["nll"], "perplexity": scores["perplexity"]} and len(scorer.read) == 3  # one pass more, not two
    with pytest.raises(ValueError, match="one vector per text"):
        likelihood(scorer, ["a", "b"], np.eye(5, dtype=np.float32))


class _TextScorerDouble:
    """Test double: a generative decoder that scores each text by a fixed table, (total nats, tokens), whatever the vector."""

    def __init__(self, table):
        self.table = table

    def sequence_log_probs(self, texts, vectors):
        assert len(vectors) == len(texts)
        return -np.array([self.table[t][0] for t in texts]), np.array([self.table[t][1] for t in texts])


def test_search_errors_count_the_true_texts_the_model_prefers_to_what_it_wrote():
    scorer = _TextScorerDouble({"t1": (10.0, 5), "t2": (4.0, 2), "t3": (9.0, 3), "o1": (6.0, 3), "o2": (8.0, 4), "o3": (3.0, 3)})
    vectors = np.eye(3, dtype=np.float32)
    scores = likelihood(scorer, ["t1", "t2", "t3"], vectors, mismatched=False, outputs=["o1", "o2", "o3"])
    # t2 costs 4 nats in all against its output's 8: the search missed a likelier text; t1 and t3 cost more than theirs
    assert scores["search_errors"] == pytest.approx(1 / 3, abs=1e-4) and scores["nll_output"] == 17.0 / 10
    assert scores["nll"] == 23.0 / 10  # the true texts' likelihood is unchanged by the outputs
    partly = likelihood(scorer, ["t1", "t2", "t3"], vectors, mismatched=False, outputs=["o1", " ", "o3"])
    assert partly["search_errors"] == 0.0 and partly["nll_output"] == 9.0 / 6  # an empty output is left out
    nothing = likelihood(scorer, ["t1"], vectors[:1], mismatched=False, outputs=[""])
    assert nothing["search_errors"] is None and nothing["nll_output"] is None
    assert likelihood(scorer, [], vectors[:0], outputs=[]) == {
        "nll": None, "perplexity": None, "nll_mismatched": None, "nll_output": None, "search_errors": None}
    with pytest.raises(ValueError, match="one output per text"):
        likelihood(scorer, ["t1", "t2"], vectors[:2], outputs=["o1"])
