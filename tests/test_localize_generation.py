"""KV-cached greedy generation picks the same tokens and the same [SEG] state as upstream's no-cache path."""

import pytest
import torch
from greedy_margin import assert_argmax_is_safe, assert_greedy_tokens_agree
from transformers import LlamaConfig, LlamaForCausalLM

from ivlm_core.localize.generation import generate_with_cache, generate_without_cache


@pytest.fixture(scope="module")
def llm():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def test_cached_and_uncached_generation_agree(llm):
    torch.manual_seed(1)
    prompt = torch.randn(1, 40, 64) * 0.5
    reference = generate_without_cache(llm, prompt, max_new_tokens=12, eos_token_id=-1, seg_token_ids=())
    seg = reference.tokens[7]  # declare a token the model does produce to be the seg token
    cached = generate_with_cache(llm, prompt, max_new_tokens=12, eos_token_id=-1, seg_token_ids=(seg,))
    uncached = generate_without_cache(llm, prompt, max_new_tokens=12, eos_token_id=-1, seg_token_ids=(seg,))
    # Token equality across the two schedules is required only because every step's margin makes it safe.
    assert_greedy_tokens_agree(llm, prompt, reference.tokens, cached.tokens)
    assert_greedy_tokens_agree(llm, prompt, reference.tokens, uncached.tokens)
    assert cached.seg_index == uncached.seg_index == reference.tokens.index(seg)
    assert torch.allclose(cached.seg_state, uncached.seg_state, atol=1e-5)
    # The seg state is the final-norm hidden state of the position that predicted the seg token:
    # recompute it teacher-forced over prompt + the tokens before it.
    before = reference.tokens[: cached.seg_index]
    embeds = torch.cat([prompt, llm.get_input_embeddings()(torch.tensor([before], dtype=torch.long))], dim=1)
    with torch.no_grad():
        state = llm.model(inputs_embeds=embeds).last_hidden_state[0, -1]
    assert torch.allclose(cached.seg_state, state, atol=1e-5)
    assert_argmax_is_safe(llm.lm_head(state), seg)


def test_stops_at_eos_and_reports_no_seg(llm):
    torch.manual_seed(2)
    prompt = torch.randn(1, 20, 64) * 0.5
    free = generate_with_cache(llm, prompt, max_new_tokens=8, eos_token_id=-1, seg_token_ids=())
    eos = free.tokens[3]
    stopped = generate_with_cache(llm, prompt, max_new_tokens=8, eos_token_id=eos, seg_token_ids=())
    assert_greedy_tokens_agree(llm, prompt, free.tokens[: free.tokens.index(eos) + 1], stopped.tokens)
    assert not stopped.found_seg and stopped.seg_state is None


def test_forced_answer_runs_the_requested_length(llm):
    prompt = torch.randn(1, 10, 64)
    forced = [5, 6, 7, 8, 9]
    cached = generate_with_cache(
        llm, prompt, max_new_tokens=0, eos_token_id=2, seg_token_ids=(8,), forced_tokens=forced
    )
    uncached = generate_without_cache(
        llm, prompt, max_new_tokens=0, eos_token_id=2, seg_token_ids=(8,), forced_tokens=forced
    )
    assert cached.tokens == uncached.tokens == forced
    assert len(cached.decode_seconds) == len(uncached.decode_seconds) == 4
    assert torch.allclose(cached.seg_state, uncached.seg_state, atol=1e-5)
