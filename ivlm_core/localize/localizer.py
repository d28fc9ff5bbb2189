"""Localize: a photo and an object label -> per-view contact mask logits on the 4 canonical renders.

    localizer = Localizer.from_folders(release_dir, clip_dir, device="cuda", dtype=torch.bfloat16)
    result = localizer.localize(photo, "chair", "hcontact", views=body_views.sam_images)
    contact = body_views.lift_operator().human(result.logits)       # Lift, 6890 SMPL-H vertices

Modes (prompts.MODES): "hcontact" segments the canonical body renders, "oafford"/"ocontact" the object's
renders, "h2dcontact" the photo itself. Upstream pitfalls handled here (spec §9): exactly one seg token is
used, expanded per view explicitly (P10); the 2D model gets zero camera vectors (P15); a missing seg token
is a clear outcome, not a crash. SAM embeddings of view sets already seen (the canonical body is always the
same) are kept, so a body request runs the SAM image encoder once per process.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from ivlm_core.errors import BadInputError
from ivlm_core.localize import prompts, sam
from ivlm_core.localize.checkpoint import LoadReport, load_network
from ivlm_core.localize.config import check_release_role, load_release_config
from ivlm_core.localize.generation import Generation, StaticDecoder, generate_with_cache
from ivlm_core.localize.network import InteractVLMNetwork
from ivlm_core.localize.tokenizer import ReleaseTokenizer
from ivlm_core.render.views import HUMAN_VIEWS, OBJECT_VIEWS

HUMAN_MODES = ("hcontact",)
OBJECT_MODES = ("oafford", "ocontact")
PHOTO_MODES = ("h2dcontact",)
# The generation cap is derived from the longest answer the release's templates allow, in its own tokenizer's
# tokens (prompts.answer_token_cap: every SMPL part listed, +25 %): about 170 tokens, where upstream's demo allows
# 512 and typical answers are 15-35 (spec §8). An answer cut before its seg token is reported (`stopped_at_cap`).
DECODERS = ("dynamic", "static")
SAM_BATCH = 4  # views per SAM image-encoder call; the memory plan lowers it to 1 on small GPUs
EMBEDDING_CACHE_SIZE = 4


class _DecodeOptions(TypedDict):
    """The keyword arguments both decoders take (generation.py)."""

    max_new_tokens: int
    eos_token_id: int
    seg_token_ids: Sequence[int]


@dataclass
class LocalizeResult:
    """The model's answer and masks. `logits` are float32 [V, H, W] in the view set's order, None when the
    model generated no contact token (then there is no contact to lift, and `found_contact` is False)."""

    mode: str
    label: str
    prompt: str
    text: str  # the answer as upstream's demo prints it (no </s>, double spaces collapsed)
    token_ids: list[int]
    found_contact: bool
    seg_token: str | None
    logits: torch.Tensor | None
    body_parts: list[str] | None
    affordance: str | None
    timings: dict[str, float] = field(default_factory=dict)
    demo: bool = False
    stopped_at_cap: bool = False  # generation hit `max_new_tokens` before `</s>` and before any seg token

    @property
    def cap_note(self) -> str | None:
        """Why there is no contact when the answer was cut, in words; None otherwise."""
        if not self.stopped_at_cap:
            return None
        return (
            f"the model's answer reached the {len(self.token_ids)}-token cap before a contact token, so contact is "
            "unknown (not 'no contact')"
        )


class Localizer:
    """One loaded release plus its tokenizer and CLIP preprocessing. Not thread-safe: one GPU worker owns it."""

    def __init__(
        self,
        network: InteractVLMNetwork,
        tokenizer: ReleaseTokenizer,
        image_processor: CLIPImageProcessorPil,
        report: LoadReport,
        *,
        max_new_tokens: int | None = None,
        prompt_style: str = "clean",
        sam_batch: int = SAM_BATCH,
        decoder: str = "dynamic",
        compile_backend: str | None = None,
    ) -> None:
        """`decoder`: "dynamic" (KV cache grown token by token, eager) or "static" (preallocated cache, compiled
        one-token step: generation.StaticDecoder); `compile_backend` is passed to torch.compile for "static"."""
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; use one of {', '.join(DECODERS)}")
        self.network = network
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.report = report
        self.max_new_tokens = max_new_tokens or prompts.answer_token_cap(lambda text: len(tokenizer.encode_text(text)))
        self.sam_batch = sam_batch
        self.decoder = decoder
        self.compile_backend = compile_backend
        self._static: StaticDecoder | None = None
        self.prompt_style = prompt_style
        self._embeddings: OrderedDict[str, torch.Tensor] = OrderedDict()

    @classmethod
    def from_folders(
        cls,
        release_dir: Path,
        clip_dir: Path,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.bfloat16,
        llm_precision: str = "native",
        role: str | None = None,
        **options: object,
    ) -> Localizer:
        """`llm_precision`: "native" (the language model in `dtype`), "int8" or "nf4" (quantize.py). `role` ("human",
        "object" or "joint") checks the release is that kind before any weight is read."""
        if role is not None:
            check_release_role(load_release_config(Path(release_dir)), role)
        network, report = load_network(release_dir, clip_dir, dtype=dtype, device=device, llm_precision=llm_precision)
        config = network.config
        tokenizer = ReleaseTokenizer.from_folder(
            release_dir,
            seg_token_idx=config.seg_token_idx,
            hseg_token_idx=config.hseg_token_idx,
            oseg_token_idx=config.oseg_token_idx,
            expected_vocab_size=config.vocab_size,
        )
        processor = CLIPImageProcessorPil.from_pretrained(clip_dir, local_files_only=True)
        return cls(network, tokenizer, processor, report, **options)  # type: ignore[arg-type]

    # ---- what a release can do ----------------------------------------------------------------------------

    @property
    def is_demo(self) -> bool:
        return "ivlm_tiny_demo" in self.network.config.raw

    def supported_modes(self) -> tuple[str, ...]:
        config = self.network.config
        if config.is_2d:
            return PHOTO_MODES
        modes: tuple[str, ...] = ()
        if config.human_contact or config.token_type == "Gen-Hu-Obj":
            modes += HUMAN_MODES
        if config.object_contact:
            modes += OBJECT_MODES
        return modes

    def _check_mode(self, mode: str) -> None:
        if mode not in prompts.MODES:
            raise BadInputError(f"unknown contact mode {mode!r}.", f"Use one of {', '.join(prompts.MODES)}.")
        if mode not in self.supported_modes():
            kind = self.network.config.release_kind
            raise BadInputError(
                f"the loaded release ({kind}) does not do {mode}; it does {', '.join(self.supported_modes()) or 'nothing'}.",
                "Load a release trained for this mode (hcontact: interactvlm-3d-hcontact-damon-fix; oafford/ocontact: "
                "interactvlm-3d-oafford-lemon-piad or the joint hcontact-ocontact model; h2dcontact: interactvlm-2d-hcontact).",
            )

    # ---- inference ---------------------------------------------------------------------------------------------

    def _photo_features(self, photo: np.ndarray) -> torch.Tensor:
        pixels = self.image_processor(images=photo, return_tensors="pt")["pixel_values"]
        return self.network.image_features(pixels.to(self.report.device))

    def _view_embeddings(self, images: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """SAM image embeddings of a view stack, cached by content (the canonical body never changes)."""
        key = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest() + str(images.shape)
        if key in self._embeddings:  # before preprocessing: 4 views at 1024^2 take longer to normalise than to hash
            self._embeddings.move_to_end(key)
            return self._embeddings[key], sam.resized_shape(images.shape[1], images.shape[2])
        pixels, input_size = sam.preprocess(images)
        weights = next(self.network.sam.parameters())
        pixels = pixels.to(device=weights.device, dtype=weights.dtype)
        embeddings = torch.cat([sam.encode_images(self.network.sam, chunk) for chunk in pixels.split(self.sam_batch)])
        self._embeddings[key] = embeddings
        while len(self._embeddings) > EMBEDDING_CACHE_SIZE:
            self._embeddings.popitem(last=False)
        return embeddings, input_size

    def clear_view_cache(self) -> None:
        """Forgets the cached SAM embeddings of view stacks (the canonical body's are worked out again when next asked)."""
        self._embeddings.clear()

    def localize(self, photo: np.ndarray, label: str, mode: str, *, views: np.ndarray | None = None) -> LocalizeResult:
        """photo: RGB uint8 [H, W, 3]; views: uint8 [V, 1024, 1024, 3] renders for 3D modes (canonical body
        for hcontact, `render_object_views(...).sam_images` for object modes); ignored for h2dcontact."""
        self._check_mode(mode)
        photo = _check_image(photo, "photo")
        config = self.network.config
        if mode in PHOTO_MODES:
            views, cameras = photo[None], np.zeros((1, 5), np.float32)  # P15: zeros, as in training
        else:
            if views is None:
                raise BadInputError(
                    f"{mode} needs the 4 rendered views to segment.", "Pass views=... (see the docstring)."
                )
            views = _check_image(views, "views", stacked=True)
            if views.shape[0] != config.num_views:
                raise BadInputError(
                    f"{mode}: got {views.shape[0]} views, the release expects {config.num_views}.",
                    "Render the 4 canonical views.",
                )
            cameras = (HUMAN_VIEWS if mode in HUMAN_MODES else OBJECT_VIEWS).camera_vectors()
        label = prompts.normalize_label(label)
        prompt = prompts.contact_prompt(mode, label, self.prompt_style)
        timings: dict[str, float] = {}
        with torch.inference_mode():
            start = time.perf_counter()
            embeddings = self.network.prompt_embeddings(
                self.tokenizer.encode_prompt(prompt), self._photo_features(photo)
            )
            generation = self._generate(embeddings)
            timings["language_model"] = time.perf_counter() - start
            answer = generation.tokens[:-1] if generation.tokens[-1:] == [self.tokenizer.eos_id] else generation.tokens
            text = self.tokenizer.decode(answer, skip_special_tokens=False).replace("  ", " ").strip()
            parsed = prompts.parse_answer(text)
            logits = None
            if generation.found_seg:
                start = time.perf_counter()
                logits = self._decode_masks(
                    generation, views, cameras, photo.shape[:2] if mode in PHOTO_MODES else None, mode
                )
                timings["sam"] = time.perf_counter() - start
        return LocalizeResult(
            mode=mode,
            label=label,
            prompt=prompt,
            text=text,
            token_ids=generation.tokens,
            found_contact=generation.found_seg,
            seg_token=None if generation.seg_token is None else self.tokenizer.decode([generation.seg_token]),
            logits=logits,
            body_parts=parsed.body_parts,
            affordance=parsed.affordance,
            timings=timings,
            demo=self.is_demo,
            stopped_at_cap=not generation.found_seg
            and len(generation.tokens) >= self.max_new_tokens
            and generation.tokens[-1] != self.tokenizer.eos_id,
        )

    def _generate(self, embeddings: torch.Tensor) -> Generation:
        options: _DecodeOptions = {
            "max_new_tokens": self.max_new_tokens,
            "eos_token_id": self.tokenizer.eos_id,
            "seg_token_ids": self.network.config.seg_token_ids,
        }
        if self.decoder == "static":
            if self._static is None:
                self._static = StaticDecoder(self.network.llm, self._static_positions(), backend=self.compile_backend)
            if embeddings.shape[1] + self.max_new_tokens <= self._static.max_cache_len:
                return self._static.generate(embeddings, **options)
            # a prompt longer than the cache was sized for (an unusual label): the dynamic path has no limit
        return generate_with_cache(self.network.llm, embeddings, **options)

    def _static_positions(self) -> int:
        """Cache length for the static decoder: the longest prompt any mode builds with a label at the length limit,
        with the image expanded (+255), plus the answer cap."""
        label = "x" * prompts.MAX_LABEL_CHARS
        longest = max(len(self.tokenizer.encode_prompt(prompts.contact_prompt(m, label))) for m in prompts.MODES)
        return longest + 255 + self.max_new_tokens

    def _decode_masks(
        self,
        generation: Generation,
        views: np.ndarray,
        cameras: np.ndarray,
        original_size: tuple[int, int] | None,
        mode: str,
    ) -> torch.Tensor:
        """The first seg token's state -> per-view prompts -> SAM over all views in one batch -> float32 logits."""
        seg_state, seg_token = generation.seg_state, generation.seg_token
        assert seg_state is not None and seg_token is not None  # called when the answer has a seg token
        embeddings, input_size = self._view_embeddings(views)
        dtype = embeddings.dtype
        tokens = self.network.view_prompt_tokens(
            seg_state.to(dtype), seg_token, torch.as_tensor(cameras, device=embeddings.device)
        )
        decoder = self.network.mask_decoder_for("object" if mode in OBJECT_MODES else "human")
        low_res = sam.decode_views(self.network.sam, embeddings, tokens, mask_decoder=decoder)
        size = original_size or (views.shape[1], views.shape[2])
        return sam.postprocess_masks(low_res, input_size, size)


def _check_image(image: np.ndarray, name: str, stacked: bool = False) -> np.ndarray:
    """RGB uint8 [H, W, 3] (or [V, H, W, 3]); anything else is a clear error."""
    array = np.asarray(image)
    dims = 4 if stacked else 3
    if array.ndim != dims or array.shape[-1] != 3 or min(array.shape[-3:-1]) < 1:
        shape = "[V, H, W, 3]" if stacked else "[H, W, 3]"
        raise BadInputError(
            f"{name} must be an RGB image array {shape}, got shape {array.shape}.", "Send 8-bit RGB images."
        )
    if array.dtype != np.uint8:
        raise BadInputError(
            f"{name} must be 8-bit (uint8), got {array.dtype}.", "Convert the image to 8-bit RGB first."
        )
    return array
