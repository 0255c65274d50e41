"""A static screen of an encoder: a text's embedding approximated from its tokens alone, ~250x cheaper.

The screen sums a learned vector per token of the encoder's own tokenizer, maps the sum into the encoder's
space and normalises it: a bag of tokens, blind to word order, trained to point where the encoder points
(cosine loss on texts the encoder embedded). Its cosine to the encoder is modest (0.74 on held-out
sentences for all-mpnet-base-v2), but it orders small edits of one text well, which is the job it has: the
hybrid decoder proposes hundreds of edits per correction round, the screen ranks them, and the encoder (the
judge) re-encodes only the best few. ``python bench/screen.py`` measures how much of the best edit's gain the
screened few keep, against as many edits picked at random.

>>> screen = EmbeddingScreen.load("models/default/screen")              # doctest: +SKIP
>>> screen.scores(["a cat sat", "stocks fell"], encoder.encode("A cat sat."))  # doctest: +SKIP  (one cosine per text)
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from . import _atomic
from .artifacts import read_artifact_config
from .config import ScreenTrainConfig
from .errors import CorruptArtifact, IncompatibleArtifact, InvalidInput
from .phrasebank import as_query_matrix

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

    from .encoder import TextEncoder

__all__ = ["EmbeddingScreen", "ScreenTrainConfig", "train_screen", "encoder_tokenizer", "word_casing", "WORD_PATTERN"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_TOKENIZER = "tokenizer.json"
_WEIGHTS = "model.safetensors"
_CASING = "casing.json"
# what the screen counts as a word (the tokens suggest_words can offer): 2+ letters, or digits
WORD_PATTERN = re.compile(r"[^\W\d_]{2,}|\d+")


class _WordTables(NamedTuple):
    """What :meth:`EmbeddingScreen.suggest_words` scores: the whole-word tokens with a learned vector."""

    ids: torch.Tensor  # their token ids
    vectors: torch.Tensor  # their token vectors (rank space)
    norms: torch.Tensor  # the squared norm of each one's projection
    gram: torch.Tensor  # the projection's Gram matrix, project.T @ project
    words: list[str]  # the words, as the vocabulary writes them


class EmbeddingScreen(nn.Module):
    """Texts -> unit vectors in an encoder's space, from a learned bag of the encoder's tokens."""

    def __init__(self, tokenizer: "Tokenizer", dimension: int, rank: int = 256, *, encoder_name: str = "") -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.dimension, self.rank, self.encoder_name = int(dimension), int(rank), encoder_name
        self.tokens = nn.EmbeddingBag(tokenizer.get_vocab_size(), self.rank, mode="sum")
        self.project = nn.Linear(self.rank, self.dimension, bias=False)
        self.metrics: dict[str, Any] = {}
        # lower-case word -> the form the training texts used most inside a sentence ("italy" -> "Italy"), for the
        # words the tokenizer lower-cases; see :func:`word_casing`
        self.casing: dict[str, str] = {}
        self._words: _WordTables | None = None  # suggest_words' tables, built on first use

    def __repr__(self) -> str:
        return f"EmbeddingScreen(encoder={self.encoder_name!r}, vocab={self.tokens.num_embeddings}, rank={self.rank}, dimension={self.dimension})"

    def _ids(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat token ids and the offset of each text in them (special tokens left out)."""
        return _bags([e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)])

    def forward(self, flat: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.project(self.tokens(flat, offsets)), dim=-1)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``[N, D]`` float32 unit vectors (a text with no known token gives zeros)."""
        if isinstance(texts, str):
            raise InvalidInput("embed takes a list of texts, got one string")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with torch.inference_mode():
            return self(*self._ids(texts)).numpy()

    def scores(self, texts: Sequence[str], query: np.ndarray) -> np.ndarray:
        """The screen's cosine of each text to ``query`` (a ``[D]`` vector), float32 ``[N]``."""
        matrix, _ = as_query_matrix(query, self.dimension)
        return self.embed(texts) @ matrix[0]

    def suggest_words(self, text: str, query: np.ndarray, k: int) -> list[str]:
        """The ``k`` words whose addition to ``text`` brings the screen's vector of it closest to ``query``, best
        first: whole-word tokens of the encoder's vocabulary that ``text`` does not hold, cased by :attr:`casing`.

        The hybrid places them in its correction edits: they are words the target's embedding points to and the
        candidates lack, often a name or a topic word that neither the bank's neighbours nor the generator wrote
        (``python bench/screen.py`` measures how many of a reference's missing words they recover). All vocabulary
        words are scored at once in the screen's low-rank space: ~2 ms for a 30k-token vocabulary."""
        matrix, _ = as_query_matrix(query, self.dimension)
        if k < 1:
            return []
        table = self._word_tables()
        held = self.tokenizer.encode(text, add_special_tokens=False).ids
        with torch.inference_mode():
            bag = self.tokens.weight[held].float().sum(0) if held else torch.zeros(self.rank)
            q = self.project.weight.float().T @ torch.from_numpy(matrix[0])  # the query in rank space
            g = table.gram @ bag
            # cosine of project(bag + token) to the query, for every word token at once
            squared_norm = bag @ g + 2 * (table.vectors @ g) + table.norms
            cosine = (bag @ q + table.vectors @ q) / torch.sqrt(squared_norm.clamp_min(1e-12))
            cosine[torch.isin(table.ids, torch.tensor(held, dtype=torch.long))] = -np.inf
            top = torch.topk(cosine, min(k, len(table.words))).indices.tolist()
        return [self.casing.get(table.words[i], table.words[i]) for i in top if cosine[i] > -np.inf]

    def prepare_suggestions(self) -> None:
        """Build what :meth:`suggest_words` needs now (about 1 s, once) rather than on its first call."""
        self._word_tables()

    def _word_tables(self) -> _WordTables:
        """The whole-word tokens' tables, built once (the weights do not change after training or loading)."""
        if self._words is None:
            weight = self.tokens.weight.detach().float()
            vocab = sorted(self.tokenizer.get_vocab().items(), key=lambda kv: kv[1])
            keep = [(i, tok.lstrip("\u0120\u2581")) for tok, i in vocab  # byte-level BPE and SentencePiece word starts
                    if not tok.startswith("##") and WORD_PATTERN.fullmatch(tok.lstrip("\u0120\u2581")) and bool(weight[i].any())]
            ids = torch.tensor([i for i, _ in keep], dtype=torch.long)
            project = self.project.weight.detach().float()
            gram = project.T @ project
            vectors = weight[ids]
            self._words = _WordTables(ids, vectors, ((vectors @ gram) * vectors).sum(1), gram, [w for _, w in keep])
        return self._words

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write config.json, model.safetensors (token vectors in fp16), tokenizer.json and casing.json as one folder,
        atomically. Saving over an existing screen folder keeps its other files (a card)."""
        from safetensors.torch import save_file

        tensors = {"tokens.weight": self.tokens.weight.detach().half().contiguous(),
                   "project.weight": self.project.weight.detach().contiguous()}
        with _atomic.atomic_dir(path, owned={_WEIGHTS, _TOKENIZER, _CASING, "config.json"}) as tmp:
            save_file(tensors, str(tmp / _WEIGHTS))
            self.tokenizer.save(str(tmp / _TOKENIZER))
            _atomic.write_json(tmp / _CASING, self.casing)
            _atomic.write_json(tmp / "config.json", {"type": "embedding_screen", "format_version": FORMAT_VERSION,
                                                     "encoder": self.encoder_name, "dimension": self.dimension, "rank": self.rank,
                                                     "vocab_size": self.tokens.num_embeddings, "metrics": self.metrics})

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, encoder_name: str | None = None, dimension: int | None = None) -> "EmbeddingScreen":
        """Load a screen folder; ``encoder_name``/``dimension``, when given, must be the ones it was trained for."""
        from tokenizers import Tokenizer

        from .checkpoint import read_weights

        path = Path(path)
        meta = read_artifact_config(path, "embedding_screen", FORMAT_VERSION, "embedding screen")
        if (encoder_name and encoder_name != meta.get("encoder")) or (dimension and dimension != meta.get("dimension")):
            raise IncompatibleArtifact(f"screen {path} was trained for {meta.get('encoder')} ({meta.get('dimension')}-D); "
                                       f"got {encoder_name} ({dimension}-D)")
        try:
            tokenizer = Tokenizer.from_file(str(path / _TOKENIZER))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises its own exception types for any damage
            raise CorruptArtifact(f"{path / _TOKENIZER}: cannot be loaded ({exc})") from exc
        if tokenizer.get_vocab_size() != meta.get("vocab_size"):
            raise CorruptArtifact(f"{path / _TOKENIZER}: {tokenizer.get_vocab_size()} tokens, config.json says {meta.get('vocab_size')}")
        screen = cls(tokenizer, meta["dimension"], meta["rank"], encoder_name=meta.get("encoder", ""))
        read_weights(screen, path / _WEIGHTS)
        screen.metrics = meta.get("metrics", {})
        if (path / _CASING).exists():  # folders written before casing.json existed have none: words stay as the vocabulary has them
            try:
                casing = json.loads((path / _CASING).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CorruptArtifact(f"{path / _CASING}: cannot be read ({exc})") from exc
            if not isinstance(casing, dict) or not all(isinstance(v, str) for v in casing.values()):
                raise CorruptArtifact(f"{path / _CASING}: not a map of lower-case words to their usual form")
            screen.casing = casing
        return screen.eval()


def _bags(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as EmbeddingBag input: the ids end to end, and where each list starts."""
    flat = torch.tensor([i for seq in sequences for i in seq], dtype=torch.long)
    offsets = torch.tensor([0, *np.cumsum([len(seq) for seq in sequences[:-1]]).tolist()], dtype=torch.long)
    return flat, offsets


def word_casing(texts: Sequence[str], words: set[str] | None = None, share: float = 0.8) -> dict[str, str]:
    """Lower-case word -> the form ``texts`` write it in inside a sentence, for the words written in one form that
    is not lower case at least ``share`` of the time ("italy" -> "Italy", "nasa" -> "NASA"); only ``words`` when
    given. A sentence's first word is not counted: its capital says nothing about the word. Words capitalised
    only in names ("river": "River" in 61% of the corpus's uses, "Mississippi River") stay lower case."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(WORD_PATTERN.findall(" ".join(text.split()[1:])))
    forms: dict[str, Counter] = {}
    for form, n in counts.items():
        if words is None or form.lower() in words:
            forms.setdefault(form.lower(), Counter())[form] = n
    casing = {}
    for key, seen in forms.items():
        form, n = seen.most_common(1)[0]
        if form != key and n >= share * sum(seen.values()):
            casing[key] = form
    return casing


def encoder_tokenizer(encoder: "TextEncoder") -> "Tokenizer":
    """The encoder's own tokenizer, as a ``tokenizers.Tokenizer`` (a sentence-transformers model with a fast tokenizer)."""
    hf = getattr(encoder._model, "tokenizer", None)
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None:
        raise IncompatibleArtifact(f"encoder {encoder.name} has no fast tokenizer; a screen needs one")
    from tokenizers import Tokenizer

    return Tokenizer.from_str(backend.to_str())


def train_screen(texts: Sequence[str], vectors: np.ndarray, tokenizer: "Tokenizer", *, encoder_name: str,
                 config: ScreenTrainConfig | None = None, show_progress_bar: bool = True) -> EmbeddingScreen:
    """Fit a screen to ``vectors`` (the encoder's embeddings of ``texts``) by cosine. ``dev_size`` texts of a seeded
    shuffle (at most a tenth of them) are held out, and the screen's mean cosine to the encoder on them goes into
    ``screen.metrics``. Tokens that no training text contains keep zero vectors, so they add nothing to a text's sum."""
    from tqdm.auto import tqdm

    cfg = config or ScreenTrainConfig()
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(texts) != len(vectors):
        raise InvalidInput(f"need one vector per text; got {len(texts)} texts and vectors of shape {vectors.shape}")
    if len(texts) < 20:
        raise InvalidInput(f"need at least 20 texts to train a screen, got {len(texts)}")
    if not np.isfinite(vectors).all():
        raise InvalidInput("the training vectors contain NaN or inf")
    torch.manual_seed(cfg.seed)
    screen = EmbeddingScreen(tokenizer, vectors.shape[1], cfg.rank, encoder_name=encoder_name)
    nn.init.normal_(screen.tokens.weight, std=0.02)
    target = torch.from_numpy(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))
    ids = [e.ids for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(cfg.seed))
    n_dev = min(cfg.dev_size, len(texts) // 10)
    dev, train = order[:n_dev], order[n_dev:]

    def batch(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _bags([ids[i] for i in rows.tolist()])

    def dev_cosine() -> float:
        with torch.inference_mode():
            return float((screen(*batch(dev)) * target[dev]).sum(-1).mean())

    optimizer = torch.optim.Adam(screen.parameters(), lr=cfg.lr)
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc="screen", unit="step", disable=not show_progress_bar)
    screen.train()
    for epoch in range(cfg.epochs):
        shuffled = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed + epoch + 1))]
        for start in range(0, len(shuffled), cfg.batch_size):
            rows = shuffled[start:start + cfg.batch_size]
            loss = 1 - (screen(*batch(rows)) * target[rows]).sum(-1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update(1)
            bar.set_postfix(cosine=f"{1 - loss.item():.3f}")
        logger.info("screen epoch %d: held-out cosine to the encoder %.4f", epoch + 1, dev_cosine())
    bar.close()
    screen.eval()
    seen = torch.zeros(screen.tokens.num_embeddings, dtype=torch.bool)
    for i in train.tolist():
        seen[torch.tensor(ids[i], dtype=torch.long)] = True
    with torch.no_grad():
        screen.tokens.weight[~seen] = 0.0
    screen.casing = word_casing([texts[i] for i in train.tolist()], set(screen._word_tables().words))
    screen.metrics = {"train_texts": len(train), "dev_texts": len(dev), "dev_cosine": round(dev_cosine(), 4),
                      "tokens_seen": int(seen.sum()), "train_config": cfg.to_dict()}
    return screen
