"""The training history in a decoder's metadata: repeats written once, read back whole (lineage.py)."""

import copy
import json

import pytest

from lightweight_decoder.errors import CorruptArtifact
from lightweight_decoder.lineage import expand_runs, share_repeated_runs, steps_in_all


def _run(steps: int, total: int, init: dict | None = None, path: str | None = None) -> dict:
    """A record as `train` writes it; ``init`` is the record of the decoder it continued from (`--init`)."""
    record = {"steps": steps, "train_config": {"lr": 1e-4, "steps": steps}, "data": [{"offset": steps, "texts": 10 * steps}]}
    if init is not None:  # train copies its source's record without train_config
        record.update(cumulative_steps=total, initialised_from={"path": path, **{k: v for k, v in init.items() if k != "train_config"}})
    return record


def _mean(*sources: tuple[str, dict]) -> dict:
    """A record as `average` builds it, before sharing."""
    return {"averaged_from": [{**record, "path": path, "weight": 1 / len(sources)} for path, record in sources],
            "cumulative_steps": max(steps_in_all(r) for _, r in sources)}


def test_a_mean_of_a_model_and_its_continuation_holds_the_model_once():
    a = _run(100, 100)
    b = _run(50, 150, init=a, path="/jobs/a")
    mean = _mean(("a", a), ("b", b))
    before = copy.deepcopy(mean)
    shared = share_repeated_runs(mean)
    assert mean == before  # the input is left alone
    assert shared["averaged_from"][1]["initialised_from"] == {"path": "/jobs/a", "same_as_source": 0}
    assert share_repeated_runs(shared) == shared
    whole = expand_runs(shared)["averaged_from"][1]["initialised_from"]
    assert whole == {"path": "/jobs/a", **a}  # back whole, with the train_config train left out


def test_rounds_of_continue_then_average_grow_the_record_linearly_not_doubling():
    current, sizes = _run(100, 100), []
    full = current
    for round_ in range(8):
        steps = steps_in_all(current)
        continued = _run(50, steps + 50, init=current, path=f"/jobs/mean{round_}")
        continued_full = _run(50, steps + 50, init=full, path=f"/jobs/mean{round_}")
        current = share_repeated_runs(_mean((f"mean{round_}", current), (f"run{round_}", continued)))
        full = _mean((f"mean{round_}", full), (f"run{round_}", continued_full))
        assert share_repeated_runs(full) == current  # the same, whether shared at each round or once at the end
        runs = [json.dumps(record).count('"offset"') for record in (expand_runs(current), full)]
        assert runs[0] == runs[1]  # read back, every run's record is there
        sizes.append(len(json.dumps(current)))
    growth = [b - a for a, b in zip(sizes, sizes[1:])]
    assert max(growth) <= 2 * min(growth)  # each round adds about the same
    assert len(json.dumps(full)) > 20 * sizes[-1]  # written out in full it doubles each round


def test_a_mean_that_is_a_source_keeps_its_own_references():
    a = _run(100, 100)
    b = _run(50, 150, init=a, path="a")
    inner = share_repeated_runs(_mean(("a", a), ("b", b)))
    c = _run(40, 190, init=inner, path="inner")
    d = _run(30, 130, init=a, path="a")
    outer = share_repeated_runs(_mean(("inner", inner), ("c", c), ("d", d)))
    assert outer["averaged_from"][1]["initialised_from"] == {"path": "inner", "same_as_source": 0}
    assert outer["averaged_from"][0]["averaged_from"][1]["initialised_from"]["same_as_source"] == 0  # a, in inner's list
    assert "same_as_source" not in json.dumps(outer["averaged_from"][2])  # a is not a source of the outer mean
    again = expand_runs(outer)
    assert again["averaged_from"][1]["initialised_from"]["averaged_from"][1]["initialised_from"]["steps"] == 100


def test_old_records_read_back_unchanged_and_a_bad_reference_is_named():
    a = _run(100, 100)
    old = _mean(("a", a), ("b", _run(50, 150, init=a, path="a")))
    assert expand_runs(old) == old
    broken = {"averaged_from": [a, {**a, "initialised_from": {"path": "a", "same_as_source": 5}}]}
    with pytest.raises(CorruptArtifact, match="source 5"):
        expand_runs(broken)


def test_steps_in_all_prefers_the_history_to_the_last_run():
    assert steps_in_all({"steps": 400, "cumulative_steps": 9000}) == 9000
    assert steps_in_all({"steps": 400}) == 400
    assert steps_in_all({}) is None and steps_in_all({"steps": True}) is None
