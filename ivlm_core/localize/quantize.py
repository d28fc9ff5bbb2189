"""The language model's weights in 8-bit or 4-bit, the rest of the network untouched.

Precisions (`LLM_PRECISIONS`): "native" keeps the load dtype (bf16 on a GPU), "int8" is LLM.int8 (bitsandbytes
`Linear8bitLt`, outlier threshold 6.0 as transformers' `load_in_8bit`), "nf4" is 4-bit NormalFloat with double
quantisation and blocks of 64 (bitsandbytes `Linear4bit`, what upstream's `--load_in_4bit` uses). Only the
decoder layers' projections are quantised (q/k/v/o, gate/up/down: 12.7 of LLaMA-2-13B's 13.0 B weights);
embeddings, lm_head, the norms, SAM, CLIP, the projector and the heads stay in the load dtype, as upstream
keeps `visual_model` out of quantisation.

Why bitsandbytes (checked 2026-12 on torch 2.13 CPU, bitsandbytes 0.50.2, torchao 0.18.0): it is the library
upstream's own 4-bit and 8-bit paths use, so its NF4 is the format the authors ran at 16 GB; one API and one
quantised format on the CPU and on CUDA (its wheel ships CPU and CUDA 11.8-13.x kernels), so CI on CPU runs
the same code a GPU runs. torchao's int8 weight-only also runs on both, but its int4 needs the `mslk` kernels
on CPU (not installable here) or a prototype CPU layout, and a different packing per device. On CPUs without
AVX-512 (this project's machines) bitsandbytes dequantises every weight for every matmul, which is slow
(about 1 s per 5120x13824 layer): CPU runs at release size are for memory figures, not for speed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator

import torch
from torch import nn

from ivlm_core.errors import IVLMError

LLM_PRECISIONS = ("native", "int8", "nf4")
BITSANDBYTES = "bitsandbytes"
BITSANDBYTES_PIN = "bitsandbytes==0.50.2"
# bitsandbytes logs a warning on every int8 matmul whose input is not float16 (it casts; expected on the CPU path,
# where the activations are float32): one line per layer per token would bury the server's log.
logging.getLogger("bitsandbytes.autograd._functions").addFilter(
    lambda record: not record.getMessage().startswith("MatMul8bitLt: inputs will be cast")
)
INT8_THRESHOLD = 6.0  # LLM.int8 outlier threshold: transformers' default for load_in_8bit (upstream's path)
NF4_BLOCK = 64  # bitsandbytes' default block size for 4-bit weights
LAYER_PROJECTIONS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)


class QuantizationUnavailableError(IVLMError):
    """The quantisation library is missing, or has no kernels for the device."""

    code = "QUANTIZATION_UNAVAILABLE"


def check_precision(precision: str) -> str:
    if precision not in LLM_PRECISIONS:
        raise ValueError(f"unknown language-model precision {precision!r}; use one of {', '.join(LLM_PRECISIONS)}")
    return precision


def bitsandbytes_module(device: torch.device | str):
    """Imports bitsandbytes and checks it has kernels for `device` by quantising and running a tiny layer.

    Raises QuantizationUnavailableError naming the package and the fallback (the unquantised configurations).
    """
    device = torch.device(device)
    fallback = (
        "Or run an unquantised configuration (the joint release in bf16 or the two releases in bf16; "
        "`ivlm plan` shows what each needs)."
    )
    try:
        bnb = importlib.import_module(BITSANDBYTES)
    except ImportError as exc:
        raise QuantizationUnavailableError(
            f"8-bit and 4-bit language models need the '{BITSANDBYTES}' package, which is not installed ({exc}).",
            f"Install it with `pip install {BITSANDBYTES_PIN}`. {fallback}",
        ) from exc
    try:
        probe = quantized_linear(
            torch.randn(64, 64), None, "nf4", device, torch.float32 if device.type == "cpu" else torch.bfloat16
        )
        probe(torch.zeros(1, 64, device=device, dtype=probe.compute_dtype))
    except Exception as exc:
        raise QuantizationUnavailableError(
            f"'{BITSANDBYTES}' {getattr(bnb, '__version__', '?')} has no working 4-bit kernels for {device} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}).",
            f"Install a {BITSANDBYTES} build for this device (`pip install -U {BITSANDBYTES_PIN}`; CUDA needs a driver "
            f"it supports). {fallback}",
        ) from exc
    return bnb


def quantized_linear(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    precision: str,
    device: torch.device | str,
    compute_dtype: torch.dtype,
) -> nn.Module:
    """A bitsandbytes layer holding `weight` [out, in] quantised on `device`; `bias` is kept in `compute_dtype`.

    The float weight is needed only while quantising (one layer at a time keeps the peak at one matrix).
    """
    import bitsandbytes as bnb

    out_features, in_features = weight.shape
    data = weight.detach().to(compute_dtype)
    if precision == "int8":
        with torch.device("meta"):
            module = bnb.nn.Linear8bitLt(
                in_features, out_features, bias=bias is not None, has_fp16_weights=False, threshold=INT8_THRESHOLD
            )
        module.weight = bnb.nn.Int8Params(data.contiguous(), requires_grad=False, has_fp16_weights=False)
    elif precision == "nf4":
        with torch.device("meta"):
            module = bnb.nn.Linear4bit(
                in_features,
                out_features,
                bias=bias is not None,
                compute_dtype=compute_dtype,
                quant_type="nf4",
                compress_statistics=True,
            )
        module.weight = bnb.nn.Params4bit(
            data.contiguous(), requires_grad=False, quant_type="nf4", compress_statistics=True, blocksize=NF4_BLOCK
        )
    else:
        raise ValueError(f"not a quantised precision: {precision!r}")
    if bias is not None:
        module.bias = nn.Parameter(bias.detach().to(compute_dtype), requires_grad=False)
    module = module.to(device)  # bitsandbytes quantises when the parameter reaches its device
    module.compute_dtype = compute_dtype
    module.requires_grad_(False)
    return module


def layer_projection_names(num_layers: int) -> Iterator[str]:
    """Module names (relative to the LlamaForCausalLM) of every projection that is quantised."""
    for index in range(num_layers):
        for projection in LAYER_PROJECTIONS:
            yield f"model.layers.{index}.{projection}"


def quantize_llm(
    llm: nn.Module, weights: dict[str, torch.Tensor], precision: str, device: torch.device, compute_dtype: torch.dtype
) -> list[str]:
    """Replaces the decoder projections of `llm` (built on the meta device) by quantised layers made from
    `weights` (our key names, `llm.` prefix), popping what it used. Returns the quantised module names."""
    bitsandbytes_module(device)
    done = []
    for name in layer_projection_names(len(llm.model.layers)):
        key = f"llm.{name}"
        weight = weights.pop(f"{key}.weight")
        bias = weights.pop(f"{key}.bias", None)
        parent_name, _, child = name.rpartition(".")
        parent = llm.get_submodule(parent_name)
        setattr(parent, child, quantized_linear(weight, bias, precision, device, compute_dtype))
        done.append(name)
    return done


def is_quantized(module: nn.Module) -> bool:
    """True when `module` holds bitsandbytes 8-bit or 4-bit layers."""
    return any(type(m).__name__ in ("Linear8bitLt", "Linear4bit") for m in module.modules())


def weight_bytes(module: nn.Module) -> int:
    """Bytes of everything `module` keeps on its device: parameters, buffers and quantisation statistics."""
    total = 0
    seen: set[int] = set()
    for tensor in [*module.parameters(), *module.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.numel() * tensor.element_size()
        state = getattr(tensor, "quant_state", None)
        if state is not None:  # 4-bit: absmax (double-quantised) and its own statistics
            total += _quant_state_bytes(state)
        scb = getattr(tensor, "SCB", None)
        if scb is not None:  # 8-bit: one float32 scale per row
            total += scb.numel() * scb.element_size()
    return total


def _quant_state_bytes(state) -> int:
    total = 0
    for name in ("absmax", "code", "offset"):
        value = getattr(state, name, None)
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
    nested = getattr(state, "state2", None)
    return total + (_quant_state_bytes(nested) if nested is not None else 0)
