"""A generative decoder's training history, as the metadata in its ``config.json`` records it.

Each run's record holds its own facts (``steps``, ``train_seconds``, ``data``, ...) and links to what it came from:
``train --init`` nests the record of the decoder it continued from under ``initialised_from``, and ``average`` lists
its sources' records, each with its ``path`` and ``weight``, under ``averaged_from``.

A mean of a model and its own continuation (as the shipped generator is) would hold the model's record twice: as a
source, and again inside the continuation's ``initialised_from``. Done again on that mean, the record doubles at each
round. :func:`share_repeated_runs` therefore writes such a repeat as ``{"path": ..., "same_as_source": i}``: the
record of source ``i`` of the mean in whose source's chain it stands. :func:`expand_runs` reads the records back whole.

>>> record = {"averaged_from": [{"steps": 5, "path": "a", "weight": 0.5},
...                             {"steps": 3, "path": "b", "weight": 0.5, "initialised_from": {"steps": 5, "path": "x/a"}}]}
>>> shared = share_repeated_runs(record)
>>> shared["averaged_from"][1]["initialised_from"]
{'path': 'x/a', 'same_as_source': 0}
>>> expand_runs(shared) == record
True
"""

from __future__ import annotations

import json
from typing import Any

from .errors import CorruptArtifact

__all__ = ["expand_runs", "share_repeated_runs", "steps_in_all"]

_PLACE = ("path", "weight")  # what a record says about where the run was used, not about the run


def steps_in_all(metadata: dict) -> int | None:
    """The optimizer steps a decoder's weights have been through: its own run's, plus those of every run it continued
    from (``train --init``); for a mean (``average``), its longest source's. None when the metadata does not say.

    >>> steps_in_all({"steps": 400, "cumulative_steps": 9000}), steps_in_all({"steps": 400}), steps_in_all({})
    (9000, 400, None)
    """
    steps = metadata.get("cumulative_steps", metadata.get("steps"))
    return int(steps) if isinstance(steps, (int, float)) and not isinstance(steps, bool) else None


def _same_run(run: dict, source: dict) -> bool:
    """Whether a record in a chain is the record of ``source``: ``train --init`` copies its source's record without
    ``train_config``, so a copy that lacks it is compared without it."""
    drop = set(_PLACE) | ({"train_config"} if "train_config" not in run else set())
    content = [json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True, default=str) for r in (run, source)]
    return content[0] == content[1]


def share_repeated_runs(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with every record in a source's ``initialised_from`` chain that repeats another source of the same
    mean (the same facts; its path and weight may differ) written as a reference to that source. The input is not
    changed, and applying this twice changes nothing more. :func:`expand_runs` undoes it, except that a copy
    ``train --init`` made without the source's ``train_config`` reads back with it.
    """
    out = dict(metadata)
    if isinstance(out.get("initialised_from"), dict):
        out["initialised_from"] = share_repeated_runs(out["initialised_from"])
    if not isinstance(out.get("averaged_from"), list):
        return out
    # each source first shares its own repeats (a source may itself be a mean), so that equal runs compare equal
    sources = [share_repeated_runs(s) if isinstance(s, dict) else s for s in out["averaged_from"]]
    for j, source in enumerate(sources):
        parent = source  # already a copy: changing it leaves the input alone
        while isinstance(parent, dict) and isinstance(parent.get("initialised_from"), dict):
            run = parent["initialised_from"]
            if "same_as_source" in run:
                break
            twin = next((i for i, s in enumerate(sources) if i != j and isinstance(s, dict) and _same_run(run, s)), None)
            if twin is not None:
                parent["initialised_from"] = {**{k: run[k] for k in _PLACE if k in run}, "same_as_source": twin}
                break
            if "averaged_from" in run:
                break  # a mean: the references below it name its own sources
            run = dict(run)
            parent["initialised_from"] = run
            parent = run
    out["averaged_from"] = sources
    return out


def expand_runs(metadata: dict[str, Any], _sources: list | None = None) -> dict[str, Any]:
    """``metadata`` with each ``same_as_source`` reference (see :func:`share_repeated_runs`) replaced by the record it
    names, so that every run's record can be read where it stands. Old metadata without references comes back equal.
    """
    out = dict(metadata)
    if "same_as_source" in out:
        if _sources is None or not 0 <= out["same_as_source"] < len(_sources):
            raise CorruptArtifact(f"a run record refers to source {out['same_as_source']!r} of a mean that has no such source")
        target = _sources[out.pop("same_as_source")]
        out = {**{k: v for k, v in target.items() if k not in _PLACE}, **out}
    if isinstance(out.get("averaged_from"), list):
        raw = out["averaged_from"]
        out["averaged_from"] = [expand_runs(s, raw) if isinstance(s, dict) else s for s in raw]
        _sources = out["averaged_from"]
    if isinstance(out.get("initialised_from"), dict):
        out["initialised_from"] = expand_runs(out["initialised_from"], _sources)
    return out
