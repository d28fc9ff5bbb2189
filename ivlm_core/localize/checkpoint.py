"""Loading InteractVLM releases without the research code, strictly, and converting them for fast starts.

A release folder (spec §1.9): `config.json`, sharded PyTorch pickles `pytorch_model-0000k-of-0000n.bin` with
`pytorch_model.bin.index.json` (or one `pytorch_model.bin`), tokenizer files. Shards are read with
`torch.load(weights_only=True)` (no code runs) and memory-mapped, every key is mapped onto our network by
the rules below, and anything unmapped or missing is an error naming the keys. Documented exceptions:
`model.vision_tower.*` (stripped from releases; CLIP comes from its own folder) and rotary `inv_freq`
buffers (recomputed).

`convert_release` writes our own layout once: safetensors keyed by our module names (SAM keeps Segment
Anything's own names under `sam.`, the naming `build_sam` loads), plus the config and tokenizer files, so
later starts skip the pickles and the renaming.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from ivlm_core.errors import ModelFileError, ModelFilesMissingError
from ivlm_core.fileio import atomic_path
from ivlm_core.localize.config import ReleaseConfig, load_release_config
from ivlm_core.localize.network import InteractVLMNetwork, llama_config
from ivlm_core.localize.quantize import check_precision, quantize_llm
from ivlm_core.localize.sam import UPSTREAM_SAM_PREFIX, build_sam, upstream_key_to_hf

SHARD_INDEX = "pytorch_model.bin.index.json"
SINGLE_SHARD = "pytorch_model.bin"
CONVERTED_MARKER = "ivlm_converted.json"
CONVERTED_WEIGHTS = "model-{:05d}.safetensors"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
CLIP_HUB_NAME = "openai/clip-vit-large-patch14"

# Upstream prefix -> our prefix. Order matters only for readability: prefixes do not overlap.
PREFIX_RULES = (
    ("model.embed_tokens.", "llm.model.embed_tokens."),
    ("model.layers.", "llm.model.layers."),
    ("model.norm.", "llm.model.norm."),
    ("lm_head.", "llm.lm_head."),
    ("model.mm_projector.", "mm_projector."),
    ("model.text_hidden_fcs.", "text_hidden_fcs."),
    ("cam_pose_encoder.", "cam_pose_encoder."),
    ("attention_splitter.", "attention_splitter."),
)
IGNORED = (re.compile(r"^model\.vision_tower\."), re.compile(r"\.rotary_emb\.inv_freq$"))
SEPARATE_DECODERS = ("human_mask_decoder.", "object_mask_decoder.")


def our_key(upstream: str) -> str | None:
    """Our name for an upstream key; None for documented ignores; KeyError for keys of no known module."""
    if any(pattern.search(upstream) for pattern in IGNORED):
        return None
    for old, new in PREFIX_RULES:
        if upstream.startswith(old):
            return new + upstream[len(old) :]
    if upstream.startswith(UPSTREAM_SAM_PREFIX):
        rest = upstream[len(UPSTREAM_SAM_PREFIX) :]
        for decoder in SEPARATE_DECODERS:  # "-DifDe" releases: decoders beside SAM's own, named like it
            if rest.startswith(decoder):
                inner = _sam_key("mask_decoder." + rest[len(decoder) :])
                return decoder + inner[len("mask_decoder.") :]
        _sam_key(rest)  # raises for keys SAM does not have
        return "sam." + rest
    raise KeyError(upstream)


def _sam_key(key: str) -> str:
    try:
        return upstream_key_to_hf(key)
    except ModelFileError as exc:
        raise KeyError(UPSTREAM_SAM_PREFIX + key) from exc


# ---- reading release shards ------------------------------------------------------------------------------


def release_shard_files(folder: Path) -> list[Path]:
    index = folder / SHARD_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelFileError(f"{index} is not a valid shard index ({exc}).", "Re-extract the release zip.") from exc
        files = sorted(set(weight_map.values()))
        missing = [name for name in files if not (folder / name).is_file()]
        if missing:
            raise ModelFileError(
                f"{folder} is incomplete: {', '.join(missing)} listed in {SHARD_INDEX} is missing.",
                "Re-extract the release zip (the download may have been cut short).",
            )
        return [folder / name for name in files]
    if (folder / SINGLE_SHARD).is_file():
        return [folder / SINGLE_SHARD]
    raise ModelFilesMissingError(
        f"{folder} has no weights ({SHARD_INDEX} or {SINGLE_SHARD}).",
        "Unzip the InteractVLM release zip into this folder; it holds the pytorch_model-*.bin shards.",
    )


def _load_shard(path: Path) -> dict[str, torch.Tensor]:
    """One shard, memory-mapped when possible, with weights_only=True so no pickled code can run."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):  # legacy (non-zip) files cannot be mapped; anything else is damage
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise ModelFileError(
            f"{path} cannot be read: it is damaged or truncated ({exc}).", "Re-extract the release zip."
        ) from exc
    except Exception as exc:  # torch raises UnpicklingError subclasses for refused objects
        raise ModelFileError(
            f"{path} is not a plain weights file ({type(exc).__name__}: {exc}).", "Re-extract the release zip."
        ) from exc


def iter_release_tensors(folder: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(upstream key, tensor) for every tensor of every shard."""
    for shard in release_shard_files(folder):
        state = _load_shard(shard)
        if not isinstance(state, dict):
            raise ModelFileError(f"{shard} does not hold a state dict.", "Re-extract the release zip.")
        yield from state.items()


# ---- building the network ----------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What loading did, for logs, `ivlm doctor` and tests."""

    release: Path
    clip: Path
    converted: bool
    ignored_keys: list[str]
    dtype: torch.dtype
    device: torch.device
    llm_precision: str = "native"  # "native" (= dtype), "int8" or "nf4": the decoder layers' weights


def _check_shapes(
    config: ReleaseConfig, tensors: dict[str, torch.Tensor], clip_config: CLIPVisionConfig, folder: Path
) -> None:
    def rows(key: str) -> int | None:
        return int(tensors[key].shape[0]) if key in tensors else None

    for key in ("llm.model.embed_tokens.weight", "llm.lm_head.weight"):
        if rows(key) is not None and rows(key) != config.vocab_size:
            raise ModelFileError(
                f"{folder}: {key} has {rows(key)} rows but config.json says vocab_size = {config.vocab_size}.",
                "The weights and config.json come from different releases; re-extract the release zip.",
            )
    projector = tensors.get("mm_projector.weight")
    if projector is not None and projector.shape[1] != clip_config.hidden_size:
        raise ModelFileError(
            f"mm_projector expects {projector.shape[1]}-d CLIP features, but the CLIP folder gives {clip_config.hidden_size}.",
            f"Point the CLIP folder at {CLIP_HUB_NAME} (ViT-L/14, 1024-d).",
        )


def clip_vision_config(clip_dir: Path) -> CLIPVisionConfig:
    clip_dir = Path(clip_dir)
    if not (clip_dir / "config.json").is_file():
        raise ModelFilesMissingError(
            f"The CLIP vision tower is missing: no config.json in {clip_dir}.",
            f"Download {CLIP_HUB_NAME} from the Hugging Face hub (MIT licence) into {clip_dir}; releases do not contain it.",
        )
    return CLIPVisionConfig.from_pretrained(clip_dir, local_files_only=True)


def load_network(
    release_dir: Path,
    clip_dir: Path,
    *,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str = "cpu",
    llm_precision: str = "native",
) -> tuple[InteractVLMNetwork, LoadReport]:
    """Builds the network from a release folder (or one made by `convert_release`) and a CLIP folder.

    `llm_precision` "int8"/"nf4" quantises the decoder layers while loading, one matrix at a time (see
    quantize.py); everything else is loaded in `dtype`.
    """
    release_dir, device = Path(release_dir), torch.device(device)
    check_precision(llm_precision)
    config = load_release_config(release_dir)
    converted = (release_dir / CONVERTED_MARKER).is_file()
    ignored: list[str] = []
    tensors: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    source = _iter_converted(release_dir) if converted else iter_release_tensors(release_dir)
    for key, tensor in source:
        try:
            name = key if converted else our_key(key)
        except KeyError:
            unknown.append(key)
            continue
        if name is None:
            ignored.append(key)
            continue
        tensors[name] = tensor
    if unknown:
        raise ModelFileError(
            f"{release_dir}: {len(unknown)} weights match no part of the InteractVLM network, e.g. "
            f"{', '.join(unknown[:5])}.",
            "This is not an InteractVLM release this software knows; check the folder, or report the release name.",
        )
    clip_config = clip_vision_config(clip_dir)
    _check_shapes(config, tensors, clip_config, release_dir)
    sam_weights = {k[len("sam.") :]: tensors.pop(k) for k in [k for k in tensors if k.startswith("sam.")]}
    if not sam_weights:
        raise ModelFileError(f"{release_dir}: no SAM weights ({UPSTREAM_SAM_PREFIX}*).", "Re-extract the release zip.")
    sam_model = build_sam(sam_weights, dtype=dtype, device=device)  # strict; errors name the SAM keys
    with torch.device("meta"):
        network = InteractVLMNetwork(config, clip_config, sam_model.config)
    expected = {k: v.shape for k, v in network.state_dict().items() if not k.startswith(("sam.", "vision_tower."))}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{release_dir}: the weights do not fit the network built from config.json"
            + (f"; missing {len(missing)}: {', '.join(missing[:5])}" if missing else "")
            + (f"; unexpected {len(unexpected)}: {', '.join(unexpected[:5])}" if unexpected else "")
            + ".",
            "Re-extract the release zip; if it is complete, its config.json does not describe these weights.",
        )
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name]):
            raise ModelFileError(
                f"{release_dir}: {name} has shape {tuple(tensor.shape)}, the config implies {tuple(expected[name])}.",
                "The weights and config.json come from different releases; re-extract the release zip.",
            )
    if llm_precision != "native":  # before the rest, so the float copies never coexist
        quantize_llm(network.llm, tensors, llm_precision, device, dtype)
    network.load_state_dict(
        {k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}, strict=False, assign=True
    )
    network.sam = sam_model
    network.vision_tower = CLIPVisionModel.from_pretrained(clip_dir, dtype=dtype, local_files_only=True).to(device)
    # Rotary frequencies are a non-persistent buffer: rebuild them rather than load them.
    network.llm.model.rotary_emb = LlamaRotaryEmbedding(llama_config(config)).to(device)
    network.requires_grad_(False)
    network.eval()
    report = LoadReport(release_dir, Path(clip_dir), converted, ignored, dtype, device, llm_precision)
    return network, report


def _release_bytes(folder: Path) -> int:
    """The shards' total size (the index's metadata, else the files' sizes): what conversion progress counts to."""
    index = folder / SHARD_INDEX
    if index.is_file():
        try:
            return int(json.loads(index.read_text())["metadata"]["total_size"])
        except (KeyError, TypeError, ValueError, json.JSONDecodeError):
            pass
    return sum(path.stat().st_size for path in release_shard_files(folder))


# ---- our own layout ----------------------------------------------------------------------------------------


def _iter_converted(folder: Path) -> Iterator[tuple[str, torch.Tensor]]:
    from safetensors.torch import load_file

    meta = json.loads((folder / CONVERTED_MARKER).read_text())
    for name in meta["files"]:
        path = folder / name
        if not path.is_file():
            raise ModelFileError(f"{path} is missing from the converted folder.", "Run `ivlm convert-release` again.")
        try:
            yield from load_file(path).items()
        except Exception as exc:  # safetensors raises its own error types for damaged files
            raise ModelFileError(f"{path} cannot be read ({exc}).", "Run `ivlm convert-release` again.") from exc


def convert_release(
    release_dir: Path,
    out_dir: Path,
    *,
    dtype: torch.dtype = torch.bfloat16,
    shard_bytes: int = 4 << 30,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Writes the release in our layout: renamed, checked, safetensors shards of at most `shard_bytes`.

    `out_dir` may be the release folder itself (the .bin shards are left in place; the marker written last makes
    the loader take the safetensors). `progress(done_bytes, total_bytes)` is called after every tensor."""
    from safetensors.torch import save_file

    release_dir, out_dir = Path(release_dir), Path(out_dir)
    load_release_config(release_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    shard: dict[str, torch.Tensor] = {}
    size = 0
    ignored = []

    def flush() -> None:
        nonlocal shard, size
        if shard:
            name = CONVERTED_WEIGHTS.format(len(files) + 1)
            with atomic_path(out_dir / name) as tmp:
                save_file(shard, str(tmp), metadata={"format": "pt", "layout": "ivlm"})
            files.append(name)
            shard, size = {}, 0

    total = _release_bytes(release_dir)
    done = 0
    for key, tensor in iter_release_tensors(release_dir):
        done += tensor.numel() * tensor.element_size()
        if progress is not None:
            progress(done, total)
        try:
            name = our_key(key)
        except KeyError as exc:
            raise ModelFileError(
                f"{release_dir}: the weight {key} matches no part of the network.", "Check the folder."
            ) from exc
        if name is None:
            ignored.append(key)
            continue
        tensor = tensor.to(dtype if tensor.is_floating_point() else tensor.dtype).contiguous()
        if size + tensor.numel() * tensor.element_size() > shard_bytes:
            flush()
        shard[name] = tensor
        size += tensor.numel() * tensor.element_size()
    flush()
    for name in ("config.json", "generation_config.json", *TOKENIZER_FILES):
        if (release_dir / name).is_file() and release_dir.resolve() != out_dir.resolve():
            shutil.copy2(release_dir / name, out_dir / name)
    with atomic_path(out_dir / CONVERTED_MARKER) as tmp:  # written last: marks a complete conversion
        tmp.write_text(
            json.dumps({"source": str(release_dir), "dtype": str(dtype), "files": files, "ignored": ignored}, indent=2)
        )
    return out_dir
