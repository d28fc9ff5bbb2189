"""Greedy tokens compared across computations only where the logits make the choice safe.

Two computations of the same model (KV cache or not, another load path, another CPU) give logits that differ
by float32 rounding, about 1e-6 of their size here. Greedy decoding takes the argmax, so where the best two
logits are closer than that the two computations may pick different tokens, both correct. Tests therefore
first check that every step's top-2 margin is far above that noise (SAFE_MARGIN); only then is equality of
the tokens a property of the code rather than of the machine.
"""

from __future__ import annotations

import torch
from transformers import LlamaForCausalLM

# Float32 logits of the tiny models here are O(1-10); kernel-path differences are ~1e-6, so 1e-3 cannot flip.
SAFE_MARGIN = 1e-3


def top2_margins(logits: torch.Tensor) -> torch.Tensor:
    """logits [..., vocab] -> best minus second-best logit [...]."""
    best_two = logits.float().topk(2, dim=-1).values
    return best_two[..., 0] - best_two[..., 1]


@torch.no_grad()
def teacher_forced_logits(llm: LlamaForCausalLM, prompt_embeddings: torch.Tensor, tokens: list[int]) -> torch.Tensor:
    """Logits [len(tokens), vocab] that predicted each token, from one pass over prompt + tokens[:-1]."""
    embedded = llm.get_input_embeddings()(
        torch.tensor([tokens[:-1]], dtype=torch.long, device=prompt_embeddings.device)
    )
    inputs = torch.cat([prompt_embeddings, embedded.to(prompt_embeddings.dtype)], dim=1)
    hidden = llm.model(inputs_embeds=inputs).last_hidden_state[0, prompt_embeddings.shape[1] - 1 :]
    return llm.lm_head(hidden)


def assert_argmax_is_safe(logits: torch.Tensor, token: int) -> None:
    """`token` is the argmax of logits [vocab] by at least SAFE_MARGIN."""
    margin = float(top2_margins(logits.detach()))
    assert margin >= SAFE_MARGIN, f"top-2 margin {margin:.2e} is within float noise: equality would be luck"
    assert int(logits.argmax()) == token, f"argmax {int(logits.argmax())}, expected {token}"


def assert_greedy_tokens_agree(
    llm: LlamaForCausalLM, prompt_embeddings: torch.Tensor, reference: list[int], other: list[int]
) -> None:
    """`other` must equal the greedy `reference`, which must be safe at every step: each token the argmax
    of its teacher-forced logits by at least SAFE_MARGIN."""
    assert reference, "no tokens to compare"
    logits = teacher_forced_logits(llm, prompt_embeddings, reference)
    margins = top2_margins(logits)
    unsafe = (margins < SAFE_MARGIN).nonzero()[:, 0].tolist()
    assert not unsafe, f"steps {unsafe} have top-2 margins {margins[unsafe].tolist()}: equality would be luck"
    chosen = logits.argmax(-1).tolist()
    assert chosen == reference, f"the reference is not greedy under teacher forcing: {chosen} != {reference}"
    assert other == reference
