"""Generation on tiny seeded models (untrained: the point is the decoding machinery, not the text)."""

from __future__ import annotations

import warnings

import pytest
import torch

from lightweight_decoder.errors import ConfigError
from lightweight_decoder.generation import GenerationConfig, generate
from lightweight_decoder.model import KVCache, ModelConfig, PrefixLM


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PrefixLM(ModelConfig.preset("tiny", embedding_dim=16, max_len=16, vocab_size=64)).eval()


@pytest.fixture(scope="module")
def cond():
    torch.manual_seed(1)
    c = torch.randn(3, 16)
    return c / c.norm(dim=1, keepdim=True)


def _naive_greedy(model, cond, steps, repetition_penalty=1.0):
    """Reference: re-run the whole sequence through forward() at every step (no KV cache), and apply the
    repetition penalty (CTRL) row by row, to each distinct token the row has generated."""
    mc = model.config
    tokens = torch.full((cond.shape[0], 1), mc.bos_id)
    for _ in range(steps):
        logits, _ = model(cond, tokens)
        nxt = logits[:, -1].clone()
        nxt[:, [mc.pad_id, mc.bos_id]] = float("-inf")
        for row in range(nxt.shape[0]):
            for tok in set(tokens[row, 1:].tolist()):
                value = nxt[row, tok]
                nxt[row, tok] = value / repetition_penalty if value > 0 else value * repetition_penalty
        tokens = torch.cat([tokens, nxt.argmax(-1, keepdim=True)], dim=1)
    return tokens[:, 1:].tolist()


def _assert_cached_greedy_matches_full_forward(model, cond, repetition_penalty=1.0) -> None:
    hyps = generate(model, cond, GenerationConfig(max_new_tokens=10, repetition_penalty=repetition_penalty))
    reference = _naive_greedy(model, cond, 10, repetition_penalty)
    for row, ref in zip(hyps, reference):
        eos = ref.index(model.config.eos_id) if model.config.eos_id in ref else len(ref)
        assert row[0].tokens == ref[:eos]


def test_kv_cache_greedy_matches_full_forward(model, cond):
    _assert_cached_greedy_matches_full_forward(model, cond)


def test_specials_never_generated(model, cond):
    for hyps in generate(model, cond, GenerationConfig(max_new_tokens=12, num_beams=3, num_return_sequences=3)):
        for h in hyps:
            assert model.config.pad_id not in h.tokens and model.config.bos_id not in h.tokens


def test_beam_search_returns_sorted_distinct_hypotheses(model, cond):
    result = generate(model, cond, GenerationConfig(max_new_tokens=8, num_beams=4, num_return_sequences=3))
    assert [len(r) for r in result] == [3, 3, 3]
    for hyps in result:
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 3


def test_beam_of_one_equals_greedy(model, cond):
    greedy = generate(model, cond, GenerationConfig(max_new_tokens=8))
    beam1 = generate(model, cond, GenerationConfig(max_new_tokens=8, num_beams=1))
    assert [g[0].tokens for g in greedy] == [b[0].tokens for b in beam1]


def test_no_repeat_ngram_size(model, cond):
    for hyps in generate(model, cond, GenerationConfig(max_new_tokens=16, no_repeat_ngram_size=2)):
        bigrams = list(zip(hyps[0].tokens, hyps[0].tokens[1:]))
        assert len(bigrams) == len(set(bigrams))


@pytest.mark.parametrize("penalty", [5.0, 50.0])
def test_repetition_penalty_matches_the_row_by_row_reference(model, cond, penalty):
    # the untrained model repeats one token; these penalties change its text, so the comparison has teeth
    plain = [h[0].tokens for h in generate(model, cond, GenerationConfig(max_new_tokens=10))]
    assert [h[0].tokens for h in generate(model, cond, GenerationConfig(max_new_tokens=10, repetition_penalty=penalty))] != plain
    _assert_cached_greedy_matches_full_forward(model, cond, repetition_penalty=penalty)


@torch.no_grad()
def _penalised_score(model, cond_row, tokens, steps, penalty):
    """A hypothesis's beam score recomputed from scratch: the sum of its tokens' log-probs (and EOS's, when it
    ended before ``steps``) under the repetition penalty of its own history, divided by its length."""
    mc = model.config
    ended = len(tokens) < steps
    seq = torch.tensor([[mc.bos_id, *tokens]])
    logits, _ = model(cond_row[None], seq)
    total = 0.0
    for t, nxt in enumerate([*tokens, mc.eos_id] if ended else tokens):
        row = logits[0, t].clone()
        row[[mc.pad_id, mc.bos_id]] = float("-inf")
        for tok in set(tokens[:t]):
            row[tok] = row[tok] / penalty if row[tok] > 0 else row[tok] * penalty
        total += float(torch.log_softmax(row, -1)[nxt])
    return total / (len(tokens) + ended)


def test_repetition_penalty_follows_reordered_beams(model, cond):
    """Each beam's record of generated tokens moves with the beam: every returned hypothesis's score is what its
    own history's penalty gives, and batched beams equal one sentence at a time."""
    cfg = GenerationConfig(max_new_tokens=10, num_beams=3, num_return_sequences=3, repetition_penalty=3.0)
    batched = generate(model, cond, cfg)
    for i in range(cond.shape[0]):
        assert [h.tokens for h in batched[i]] == [h.tokens for h in generate(model, cond[i:i + 1], cfg)[0]]
        for h in batched[i]:
            assert h.score == pytest.approx(_penalised_score(model, cond[i], h.tokens, 10, 3.0), abs=1e-4)


def test_repetition_penalty_reduces_repeats(model, cond):
    def repeats(cfg):
        return sum(len(h[0].tokens) - len(set(h[0].tokens)) for h in generate(model, cond, cfg))

    assert repeats(GenerationConfig(max_new_tokens=16, repetition_penalty=5.0)) < repeats(GenerationConfig(max_new_tokens=16))


def test_sampling_is_seeded(model, cond):
    cfg = GenerationConfig(max_new_tokens=8, do_sample=True, top_k=20, top_p=0.9, temperature=1.2, seed=7, num_return_sequences=2)
    a, b = generate(model, cond, cfg), generate(model, cond, cfg)
    assert [[h.tokens for h in r] for r in a] == [[h.tokens for h in r] for r in b]
    c = generate(model, cond, cfg.replace(seed=8))
    assert [[h.tokens for h in r] for r in a] != [[h.tokens for h in r] for r in c]
    assert all(len(r) == 2 for r in a)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"num_return_sequences": 3}, "num_return_sequences"),
        ({"num_beams": 2, "do_sample": True}, "beam sampling"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_impossible_settings_raise(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        GenerationConfig(**kwargs)


def test_ignored_settings_warn(model, cond):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generate(model, cond, GenerationConfig(max_new_tokens=2, temperature=0.5, length_penalty=2.0))
    messages = " ".join(str(w.message) for w in caught)
    assert "temperature=0.5" in messages and "length_penalty=2.0" in messages


def test_presets_fit_their_budgets():
    assert PrefixLM(ModelConfig.preset("tiny")).num_parameters() <= 1_000_000
    assert PrefixLM(ModelConfig.preset("base")).num_parameters() <= 30_000_000
    with pytest.raises(ConfigError, match="unknown preset"):
        ModelConfig.preset("huge")
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(d_model=100, n_head=3)


@pytest.fixture(scope="module")
def injected_model():
    """A tiny model whose embedding injection is non-zero (it starts at zero, which would hide misuse)."""
    torch.manual_seed(2)
    m = PrefixLM(ModelConfig.preset("tiny", embedding_dim=16, max_len=16, vocab_size=64, cond_inject=True)).eval()
    torch.nn.init.normal_(m.cond_proj.weight, std=0.5)
    return m


def test_injection_reaches_cached_decoding(injected_model, cond):
    _assert_cached_greedy_matches_full_forward(injected_model, cond)
    with torch.no_grad():  # and it matters: without it the model computes something else
        full, _ = injected_model(cond, torch.full((3, 1), injected_model.config.bos_id))
        saved = injected_model.cond_proj.weight.clone()
        injected_model.cond_proj.weight.zero_()
        plain, _ = injected_model(cond, torch.full((3, 1), injected_model.config.bos_id))
        injected_model.cond_proj.weight.copy_(saved)
    assert not torch.allclose(full, plain)


@pytest.fixture(scope="module")
def adaln_model():
    """A tiny model with both injection and adaptive norm, made non-zero (both start at zero)."""
    torch.manual_seed(3)
    m = PrefixLM(ModelConfig.preset("tiny", embedding_dim=16, max_len=16, vocab_size=64, cond_inject=True, cond_adaln=True)).eval()
    torch.nn.init.normal_(m.cond_proj.weight, std=0.5)
    torch.nn.init.normal_(m.adaln[-1].weight, std=0.5)
    return m


def test_adaptive_norm_reaches_cached_decoding(adaln_model, cond):
    m = adaln_model
    _assert_cached_greedy_matches_full_forward(m, cond)
    bos = torch.full((3, 1), m.config.bos_id)
    tokens = torch.randint(3, m.config.vocab_size, (3, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # every cached step's logits equal the full forward pass's
        full, _ = m(cond, torch.cat([bos, tokens], dim=1))
        logits, cache = m.start(cond, bos[:, 0])
        state = m.conditioning(cond)
        steps = [logits]
        for t in range(tokens.shape[1]):
            logits, cache = m.step(tokens[:, t], cache, m.config.prefix_len + 1 + t, state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # and it matters: without it the model computes something else
        full, _ = adaln_model(cond, bos)
        saved = adaln_model.adaln[-1].weight.clone()
        adaln_model.adaln[-1].weight.zero_()
        plain, _ = adaln_model(cond, bos)
        adaln_model.adaln[-1].weight.copy_(saved)
    assert not torch.allclose(full, plain)
    # beams select rows of the cache and of the conditioning state together
    cfg = GenerationConfig(max_new_tokens=8, num_beams=3, num_return_sequences=2)
    batched = generate(adaln_model, cond, cfg)
    for i in range(cond.shape[0]):
        assert [h.tokens for h in batched[i]] == [h.tokens for h in generate(adaln_model, cond[i:i + 1], cfg)[0]]


def test_batched_beam_search_matches_one_sentence_at_a_time(injected_model, cond):
    cfg = GenerationConfig(max_new_tokens=8, num_beams=3, num_return_sequences=2)
    batched = generate(injected_model, cond, cfg)
    for i in range(cond.shape[0]):
        alone = generate(injected_model, cond[i:i + 1], cfg)[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in alone]


def test_rows_that_finish_early_leave_the_others_unchanged():
    """Rows leave the batch (and the KV cache) as they emit end-of-text; the rest decode as the full forward pass
    says. A model whose end-of-text embedding is scaled up ends rows after 0, 2 and 9 tokens, so rows drop out at
    several steps, once with two rows at a time."""
    torch.manual_seed(0)
    m = PrefixLM(ModelConfig.preset("tiny", embedding_dim=16, max_len=16, vocab_size=64)).eval()
    with torch.no_grad():
        m.tok_emb.weight[m.config.eos_id] *= 8
    torch.manual_seed(5)
    c = torch.randn(6, 16)
    c = c / c.norm(dim=1, keepdim=True)
    lengths = [len(h[0].tokens) for h in generate(m, c, GenerationConfig(max_new_tokens=10))]
    assert lengths == [2, 0, 9, 10, 9, 9]
    _assert_cached_greedy_matches_full_forward(m, c)
    _assert_cached_greedy_matches_full_forward(m, c, repetition_penalty=3.0)
    cfg = GenerationConfig(max_new_tokens=10, num_beams=3, num_return_sequences=2)
    batched = generate(m, c, cfg)
    for i in range(c.shape[0]):
        assert [h.tokens for h in batched[i]] == [h.tokens for h in generate(m, c[i:i + 1], cfg)[0]]


def test_kv_cache_select_keeps_the_filled_positions_of_the_chosen_rows():
    cache = KVCache.empty(n_layer=2, rows=3, n_head=2, capacity=5, head_dim=4, dtype=torch.float32)
    cache.keys.fill_(-1.0)
    cache.values.fill_(-1.0)
    for row in range(3):
        cache.keys[:3, :, row], cache.values[:3, :, row] = row, 10 + row
    cache.length = 3
    cache.select(torch.tensor([2, 0, 0]))  # beams: reordered, one row twice
    assert len(cache) == 3 and cache.capacity == 5
    assert cache.keys[:3, :, :, 0, 0].tolist() == [[[2.0, 0.0, 0.0]] * 2] * 3
    assert cache.values[:3, :, :, 0, 0].tolist() == [[[12.0, 10.0, 10.0]] * 2] * 3
    cache.select(torch.tensor([0, 2]))  # rows that finished leave
    assert len(cache) == 2 and cache.keys[:3, :, :, 1, 3].tolist() == [[[2.0, 0.0]] * 2] * 3
    keys, _ = cache.layer(1)
    assert keys.shape == (2, 2, 5, 4) and keys[0, 1, :3].tolist() == [[2.0] * 4] * 3


def test_step_refuses_a_position_the_cache_does_not_expect(model, cond):
    bos = torch.full((3,), model.config.bos_id)
    _, cache = model.start(cond, bos, max_new_tokens=2)
    first = model.config.prefix_len + 1
    with pytest.raises(ValueError, match="goes at"):
        model.step(bos, cache, first + 1)
    model.step(bos, cache, first)
    model.step(bos, cache, first + 1)
    with pytest.raises(ValueError, match="room for"):
        model.step(bos, cache, first + 2)


def test_decoding_follows_changes_to_the_output_weights():
    """Decoding keeps a transposed copy of the (tied) output layer; it must be remade when the weights change, as
    they do in training and when weights are loaded."""
    torch.manual_seed(0)
    m = PrefixLM(ModelConfig.preset("tiny", embedding_dim=16, max_len=16, vocab_size=64)).eval()
    c = torch.nn.functional.normalize(torch.randn(2, 16), dim=1)
    bos = torch.full((2,), m.config.bos_id)
    before = m.start(c, bos)[0]
    with torch.no_grad():
        m.tok_emb.weight.mul_(3.0)
        full, _ = m(c, bos[:, None])
    after = m.start(c, bos)[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, full[:, 0], rtol=1e-4, atol=1e-4)
