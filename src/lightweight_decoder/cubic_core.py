"""Module 2: a trainable 3-D lattice that transforms embeddings.

The D-dimensional embedding is laid out on an X x Y x Z lattice (768 -> 8 x 8 x 12), lifted to a few
channels per cell (plus a learned per-cell state, so the shared rule can act differently at different
places), updated for T steps by one shared local rule (each cell reads its 3x3x3 neighbourhood and the
lattice's mean; gated residual update), and read back out to D dimensions. The read-out starts at zero and is added to
the input, so an untrained core is the identity: training only has to learn the change.

Modes: ``identity`` (no lattice), ``autoencoder`` (trained to restore its input from a noisy copy),
``transform`` (trained on text pairs, e.g. question -> answer, with a cosine loss).

>>> core = CubicCore(CubicCoreConfig(dimension=768, mode="transform"))
>>> core.config.lattice_shape()
(8, 8, 12)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _atomic
from .artifacts import read_artifact_config
from .config import BaseConfig, _check, _is_int
from .errors import IncompatibleArtifact, InvalidInput

__all__ = ["CubicCoreConfig", "CubicCore", "lattice_shape_for", "train_core", "read_pairs"]

CORE_MODES = ("identity", "autoencoder", "transform")
FORMAT_VERSION = 1


def lattice_shape_for(dimension: int) -> tuple[int, int, int]:
    """The most cube-like X <= Y <= Z with X * Y * Z == dimension (768 -> (8, 8, 12))."""
    best = (1, 1, dimension)
    for x in range(1, round(dimension ** (1 / 3)) + 2):
        if dimension % x:
            continue
        for y in range(x, int((dimension // x) ** 0.5) + 1):
            if (dimension // x) % y == 0:
                z = dimension // x // y
                if max(x, y, z) - min(x, y, z) < max(best) - min(best):
                    best = (x, y, z)
    return best


@dataclasses.dataclass
class CubicCoreConfig(BaseConfig):
    """Shape and behaviour of the lattice. ``shape`` defaults to :func:`lattice_shape_for` of ``dimension``."""

    dimension: int = 768
    shape: list[int] | None = None
    channels: int = 8
    steps: int = 4
    mode: str = "transform"

    def validate(self) -> None:
        _check(_is_int(self.dimension) and self.dimension >= 1, f"dimension must be an int >= 1, got {self.dimension!r}")
        if self.shape is not None:
            _check(isinstance(self.shape, (list, tuple)) and len(self.shape) == 3 and all(_is_int(s) and s >= 1 for s in self.shape),
                   f"shape must be three positive ints, got {self.shape!r}")
            _check(int(np.prod(self.shape)) == self.dimension, f"shape {list(self.shape)} has {int(np.prod(self.shape))} cells, not {self.dimension}")
        _check(_is_int(self.channels) and self.channels >= 1, f"channels must be an int >= 1, got {self.channels!r}")
        _check(_is_int(self.steps) and self.steps >= 0, f"steps must be an int >= 0, got {self.steps!r}")
        _check(self.mode in CORE_MODES, f"mode must be one of {CORE_MODES}, got {self.mode!r}")

    def lattice_shape(self) -> tuple[int, int, int]:
        return tuple(self.shape) if self.shape else lattice_shape_for(self.dimension)  # type: ignore[return-value]


class CubicCore(nn.Module):
    """(B, D) unit vectors -> (B, D) unit vectors through T steps of a shared 3-D local rule."""

    def __init__(self, config: CubicCoreConfig | None = None) -> None:
        super().__init__()
        self.config = config or CubicCoreConfig()
        c = self.config.channels
        self.lift = nn.Conv3d(1, c, kernel_size=1)
        self.cell_state = nn.Parameter(torch.zeros(1, c, *self.config.lattice_shape()))  # learned, per cell
        self.rule = nn.Conv3d(2 * c, 2 * c, kernel_size=3, padding=1)  # 3x3x3 neighbourhood + the lattice mean
        self.readout = nn.Conv3d(c, 1, kernel_size=1)
        nn.init.zeros_(self.readout.weight)  # untrained core == identity
        nn.init.zeros_(self.readout.bias)
        self.metrics: dict[str, Any] = {}

    def lattice_delta(self, x: torch.Tensor) -> torch.Tensor:
        """The change the lattice proposes for x (B, D), before it is added and re-normalised."""
        B = x.shape[0]
        X, Y, Z = self.config.lattice_shape()
        grid = (x * x.shape[-1] ** 0.5).view(B, 1, X, Y, Z)  # unit-variance cells
        h = torch.tanh(self.lift(grid)) + self.cell_state  # (B, C, X, Y, Z)
        for _ in range(self.config.steps):
            field = h.mean(dim=(2, 3, 4), keepdim=True).expand_as(h)
            update, gate = self.rule(torch.cat([h, field], dim=1)).chunk(2, dim=1)
            h = h + torch.sigmoid(gate) * torch.tanh(update)  # gated residual update
        return self.readout(h).view(B, -1) / x.shape[-1] ** 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.mode == "identity":
            return F.normalize(x, dim=-1)
        return F.normalize(x + self.lattice_delta(x), dim=-1)

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Numpy in, numpy out: ``[D]`` -> ``[D]``, ``[N, D]`` -> ``[N, D]`` (float32, unit norm)."""
        from .phrasebank import as_query_matrix

        matrix, single = as_query_matrix(vectors, self.config.dimension)
        self.eval()
        with torch.inference_mode():
            out = self(torch.from_numpy(matrix)).numpy()
        return out[0] if single else out

    def save(self, path: str | os.PathLike[str], *, encoder_name: str = "") -> None:
        """Write config.json and model.safetensors as one folder, atomically; saving over an existing core folder
        keeps its other files."""
        from safetensors.torch import save_model

        with _atomic.atomic_dir(path, owned={"model.safetensors", "config.json"}) as tmp:
            save_model(self, str(tmp / "model.safetensors"))
            _atomic.write_json(tmp / "config.json", {"type": "cubic_core", "format_version": FORMAT_VERSION, "encoder": encoder_name,
                                                     "core": self.config.to_dict(), "metrics": self.metrics})

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, encoder_name: str | None = None, dimension: int | None = None) -> "CubicCore":
        from .checkpoint import read_weights

        path = Path(path)
        meta = read_artifact_config(path, "cubic_core", FORMAT_VERSION, "cubic core")
        core = cls(CubicCoreConfig.from_dict(meta["core"]))
        if (encoder_name and meta.get("encoder") and encoder_name != meta["encoder"]) or (dimension and dimension != core.config.dimension):
            raise IncompatibleArtifact(f"core {path} was trained for {meta.get('encoder')} ({core.config.dimension}-D); "
                                       f"got {encoder_name} ({dimension}-D)")
        read_weights(core, path / "model.safetensors")
        core.metrics = meta.get("metrics", {})
        return core.eval()


def _mean_cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a, b, dim=-1).mean())


def train_core(
    sources: np.ndarray,
    targets: np.ndarray | None,
    config: CubicCoreConfig,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 3e-3,
    noise_std: float = 0.3,
    holdout: float = 0.1,
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    show_progress_bar: bool = True,
) -> CubicCore:
    """Train a core. ``transform``: sources -> targets; ``autoencoder``: noisy sources -> sources.

    A seeded ``holdout`` fraction is kept out; ``core.metrics`` reports on it both the untrained baseline
    (cosine of input to target) and the trained core's cosine. With ``checkpoint`` (a folder), training
    resumes from the last finished epoch.
    """
    from tqdm.auto import tqdm

    from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint

    if config.mode == "identity":
        raise InvalidInput("an identity core has nothing to train")
    if config.mode == "transform" and (targets is None or len(targets) != len(sources)):
        raise InvalidInput("transform mode needs one target vector per source vector")
    src = torch.from_numpy(np.asarray(sources, np.float32))
    tgt = src.clone() if config.mode == "autoencoder" else torch.from_numpy(np.asarray(targets, np.float32))
    if src.shape[1] != config.dimension:
        raise InvalidInput(f"the core is {config.dimension}-D but the vectors are {src.shape[1]}-D")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(src))
    n_hold = max(1, int(len(src) * holdout))
    if len(src) - n_hold < 1:
        raise InvalidInput(f"need at least 2 pairs to train and hold some out, got {len(src)}")
    hold, fit = order[:n_hold], order[n_hold:]
    torch.manual_seed(seed)
    core = CubicCore(config)
    optimizer = torch.optim.AdamW(core.parameters(), lr=lr, weight_decay=0.0)

    def corrupt(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if config.mode != "autoencoder":
            return x
        return F.normalize(x + noise_std * torch.randn(x.shape, generator=generator) / x.shape[1] ** 0.5, dim=-1)

    start_epoch = 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and has_checkpoint(ckpt):
        start_epoch = load_checkpoint(ckpt, core, optimizer)["epoch"]
    eval_gen = torch.Generator().manual_seed(seed + 1)
    hold_in = corrupt(src[hold], eval_gen)
    bar = tqdm(total=epochs, initial=start_epoch, desc="training core", unit="epoch", disable=not show_progress_bar)
    for epoch in range(start_epoch, epochs):
        core.train()
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        perm = torch.from_numpy(np.random.default_rng((seed, epoch)).permutation(fit))
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            loss = 1 - F.cosine_similarity(core(corrupt(src[idx], generator)), tgt[idx], dim=-1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        core.eval()
        with torch.no_grad():
            held = _mean_cos(core(hold_in), tgt[hold])
        bar.update(1)
        bar.set_postfix(heldout_cos=f"{held:.4f}")
        if ckpt is not None:
            save_checkpoint(ckpt, core, optimizer, {"epoch": epoch + 1})
    bar.close()
    core.eval()
    with torch.no_grad():
        core.metrics = {
            "mode": config.mode, "pairs": len(src), "heldout_pairs": n_hold, "epochs": epochs,
            "heldout_baseline_cosine": round(_mean_cos(hold_in, tgt[hold]), 4),  # untrained core (identity)
            "heldout_trained_cosine": round(_mean_cos(core(hold_in), tgt[hold]), 4),
            "train_baseline_cosine": round(_mean_cos(corrupt(src[fit], torch.Generator().manual_seed(seed + 2)), tgt[fit]), 4),
        }
    return core


def read_pairs(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """Pairs from a TSV file: ``source<TAB>target`` per line."""
    sources, targets = [], []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                raise InvalidInput(f"{path}:{lineno}: expected 'source<TAB>target'")
            sources.append(parts[0].strip())
            targets.append(parts[1].strip())
    return sources, targets


