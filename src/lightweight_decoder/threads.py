"""How many CPU threads the numeric libraries use: torch's pool and the BLAS library NumPy calls.

Both default to one thread per core. The numpy runtime (:mod:`lightweight_decoder.numpy_model`) computes its
products through NumPy's BLAS, the torch runtime and the encoder through torch, so ``--threads`` has to reach
both; ``bench/threads.py`` measures what the count does to each.
"""

from __future__ import annotations

import os
import sys

from .errors import ConfigError

__all__ = ["set_threads", "thread_counts"]


def set_threads(count: int) -> None:
    """Use ``count`` threads in torch and in NumPy's BLAS from now on, without importing torch if it is not
    loaded yet (it then sizes its pool from ``OMP_NUM_THREADS`` when imported)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"thread count must be an int >= 1, got {count!r}")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    else:
        os.environ["OMP_NUM_THREADS"] = str(count)
    import numpy  # noqa: F401 - loads the BLAS library, so that threadpoolctl finds it

    from threadpoolctl import threadpool_limits

    threadpool_limits(count, user_api="blas")


def thread_counts() -> dict[str, int]:
    """The thread counts in force: ``torch`` (imports it) and ``blas`` (NumPy's BLAS library)."""
    import torch
    from threadpoolctl import threadpool_info

    pools = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return {"torch": torch.get_num_threads(), "blas": max(pools) if pools else 1}
