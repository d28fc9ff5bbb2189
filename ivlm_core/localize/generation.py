"""Greedy generation that also returns the hidden state which predicted the first seg token.

Upstream (spec §2.5, P24) re-runs the whole 13B model over the full sequence for every new token and then
picks, from the last step's hidden states, the state one position before `[SEG]` (LISA's offset): that is
the final-norm hidden state of the position whose logits *predicted* `[SEG]`. With a KV cache each step
already computes exactly that state for its last position, so we keep it the moment a seg token is chosen:
no extra pass. `generate_without_cache` is upstream's path, kept as the reference for tests and benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import LlamaForCausalLM
from transformers.cache_utils import DynamicCache


@dataclass
class Generation:
    """Generated token ids (prompt excluded) and the first seg token's predicting state."""

    tokens: list[int]
    seg_index: int | None = None  # index in `tokens` of the first seg token
    seg_token: int | None = None
    seg_state: torch.Tensor | None = None  # [hidden], final-norm hidden state that predicted it
    prefill_seconds: float = 0.0
    decode_seconds: list[float] = field(default_factory=list)

    @property
    def found_seg(self) -> bool:
        return self.seg_state is not None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _next_token(llm: LlamaForCausalLM, last_state: torch.Tensor, step: int, forced: Sequence[int] | None) -> int:
    logits = llm.lm_head(last_state)
    choice = int(torch.argmax(logits, dim=-1))
    return int(forced[step]) if forced is not None else choice


def _record(result: Generation, token: int, state: torch.Tensor, seg_ids: Sequence[int]) -> None:
    if result.seg_state is None and token in seg_ids:
        result.seg_index, result.seg_token = len(result.tokens), token
        result.seg_state = state.detach().clone()
    result.tokens.append(token)


@torch.no_grad()
def generate_with_cache(
    llm: LlamaForCausalLM,
    prompt_embeddings: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_id: int,
    seg_token_ids: Sequence[int],
    forced_tokens: Sequence[int] | None = None,
) -> Generation:
    """Greedy decoding with a KV cache. `forced_tokens` feeds a fixed answer (benchmarks with random weights)."""
    device = prompt_embeddings.device
    result = Generation(tokens=[])
    cache = DynamicCache(config=llm.config)
    _sync(device)
    start = time.perf_counter()
    out = llm.model(inputs_embeds=prompt_embeddings, past_key_values=cache, use_cache=True)
    state = out.last_hidden_state[0, -1]
    token = _next_token(llm, state, 0, forced_tokens)
    _sync(device)
    result.prefill_seconds = time.perf_counter() - start
    steps = len(forced_tokens) if forced_tokens is not None else max_new_tokens
    for step in range(steps):
        _record(result, token, state, seg_token_ids)
        if (forced_tokens is None and token == eos_token_id) or step + 1 == steps:
            break
        start = time.perf_counter()
        embedded = llm.get_input_embeddings()(torch.tensor([[token]], device=device))
        out = llm.model(inputs_embeds=embedded, past_key_values=out.past_key_values, use_cache=True)
        state = out.last_hidden_state[0, -1]
        token = _next_token(llm, state, step + 1, forced_tokens)
        _sync(device)
        result.decode_seconds.append(time.perf_counter() - start)
    return result


@torch.no_grad()
def generate_without_cache(
    llm: LlamaForCausalLM,
    prompt_embeddings: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_id: int,
    seg_token_ids: Sequence[int],
    forced_tokens: Sequence[int] | None = None,
) -> Generation:
    """Upstream's schedule: every step runs the full sequence again (no KV cache). Same outputs, slower."""
    device = prompt_embeddings.device
    result = Generation(tokens=[])
    embeddings = prompt_embeddings
    steps = len(forced_tokens) if forced_tokens is not None else max_new_tokens
    for step in range(steps):
        _sync(device)
        start = time.perf_counter()
        out = llm.model(inputs_embeds=embeddings, use_cache=False)
        state = out.last_hidden_state[0, -1]
        token = _next_token(llm, state, step, forced_tokens)
        _sync(device)
        elapsed = time.perf_counter() - start
        if step == 0:
            result.prefill_seconds = elapsed
        else:
            result.decode_seconds.append(elapsed)
        _record(result, token, state, seg_token_ids)
        if (forced_tokens is None and token == eos_token_id) or step + 1 == steps:
            break
        embedded = llm.get_input_embeddings()(torch.tensor([[token]], device=device))
        embeddings = torch.cat([embeddings, embedded], dim=1)
    return result


class StaticDecoder:
    """Greedy decoding with a static (preallocated) KV cache and a `torch.compile`d one-token step.

    The dynamic path grows its cache and runs the layers eagerly from Python, token by token; here every decode
    step has the same shapes (one token against a cache of `max_cache_len` positions, the future masked), so the
    step compiles once per process and, on CUDA, is captured as a CUDA graph (`mode="reduce-overhead"`). The
    prefill runs eagerly (its length varies). Same tokens and seg state as `generate_with_cache`, within the
    float tolerance of a different kernel schedule. Not thread-safe: one per Localizer, one request at a time.
    """

    def __init__(
        self, llm: LlamaForCausalLM, max_cache_len: int, *, compile: bool = True, backend: str | None = None
    ) -> None:
        """`backend`: torch.compile's backend; default inductor (with CUDA graphs on a GPU). Tests on the CPU pass
        "aot_eager": the same graph capture without C++ code generation, which takes minutes on a small CPU."""
        from transformers.cache_utils import StaticCache

        self.llm = llm
        self.max_cache_len = max_cache_len
        weight = llm.get_input_embeddings().weight
        self.cache = StaticCache(config=llm.config, max_cache_len=max_cache_len)
        self.device = weight.device
        self.compiled = compile
        step = self._step
        if compile:
            mode = "reduce-overhead" if self.device.type == "cuda" else None  # CUDA graphs on a GPU
            if backend not in (None, "inductor"):
                mode = None  # modes are inductor options
            step = torch.compile(step, backend=backend or "inductor", mode=mode, dynamic=False, fullgraph=False)
        self._compiled_step = step

    def _step(self, embedded: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        out = self.llm.model(
            inputs_embeds=embedded,
            past_key_values=self.cache,
            cache_position=position,
            position_ids=position[None],
            use_cache=True,
        )
        return out.last_hidden_state[0, -1].clone()  # clone: CUDA-graph outputs are overwritten by the next replay

    @torch.no_grad()
    def generate(
        self,
        prompt_embeddings: torch.Tensor,
        *,
        max_new_tokens: int,
        eos_token_id: int,
        seg_token_ids: Sequence[int],
        forced_tokens: Sequence[int] | None = None,
    ) -> Generation:
        """Like `generate_with_cache`; raises ValueError when prompt plus answer would not fit the cache."""
        length = prompt_embeddings.shape[1]
        steps = len(forced_tokens) if forced_tokens is not None else max_new_tokens
        if length + steps > self.max_cache_len:
            raise ValueError(f"prompt ({length}) + answer ({steps}) exceed the static cache ({self.max_cache_len})")
        result = Generation(tokens=[])
        self.cache.reset()
        _sync(self.device)
        start = time.perf_counter()
        positions = torch.arange(length, device=self.device)
        out = self.llm.model(
            inputs_embeds=prompt_embeddings,
            past_key_values=self.cache,
            cache_position=positions,
            position_ids=positions[None],
            use_cache=True,
        )
        state = out.last_hidden_state[0, -1]
        token = _next_token(self.llm, state, 0, forced_tokens)
        _sync(self.device)
        result.prefill_seconds = time.perf_counter() - start
        embed = self.llm.get_input_embeddings()
        for step in range(steps):
            _record(result, token, state, seg_token_ids)
            if (forced_tokens is None and token == eos_token_id) or step + 1 == steps:
                break
            start = time.perf_counter()
            embedded = embed(torch.tensor([[token]], device=self.device))
            position = torch.tensor([length + step], device=self.device)
            state = self._compiled_step(embedded, position)
            token = _next_token(self.llm, state, step + 1, forced_tokens)
            _sync(self.device)
            result.decode_seconds.append(time.perf_counter() - start)
        return result
