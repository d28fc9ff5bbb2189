"""InteractVLM's network composed from transformers parts (spec §1): no research code involved.

    photo -> CLIPVisionModel (penultimate layer, CLS dropped: 256 tokens) -> mm_projector (one Linear)
          -> spliced into the prompt embeddings at the <image> sentinel (+255 positions)
          -> LlamaForCausalLM, greedy -> the final-norm hidden state that predicted [SEG]
          -> text_hidden_fcs -> one copy per view, camera-conditioned (+ human/object split for the joint model)
          -> SAM mask decoder on the V canonical renders -> float32 logits per view.

Module names are chosen so a release's keys map onto them by prefix (see checkpoint.py).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM, SamConfig, SamModel

from ivlm_core.localize.config import ReleaseConfig
from ivlm_core.localize.heads import AttentionSplitter, camera_encoder, text_hidden_fcs
from ivlm_core.localize.prompts import IMAGE_TOKEN_INDEX  # LLaVA's sentinel for the image in prompt ids


def llama_config(config: ReleaseConfig) -> LlamaConfig:
    """LLaMA-2 as LISA/InteractVLM use it: no GQA, RoPE base 10000, untied head, standard RMSNorm."""
    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        rms_norm_eps=config.rms_norm_eps,
        max_position_embeddings=config.max_position_embeddings,
        rope_theta=config.rope_theta,
        tie_word_embeddings=False,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=0,
    )


class InteractVLMNetwork(nn.Module):
    """All weights of one release plus the CLIP tower. Inference only (eval mode, no dropout)."""

    def __init__(self, config: ReleaseConfig, clip_config: CLIPVisionConfig, sam_config: SamConfig) -> None:
        super().__init__()
        self.config = config
        self.llm = LlamaForCausalLM(llama_config(config))
        self.vision_tower = CLIPVisionModel(clip_config)
        self.mm_projector = nn.Linear(clip_config.hidden_size, config.hidden_size)
        self.sam = SamModel(sam_config)
        self.text_hidden_fcs = nn.ModuleList([text_hidden_fcs(config.hidden_size, config.out_dim)])
        if config.camera_conditioned:
            self.cam_pose_encoder = camera_encoder(config.camera_encoder, config.num_views, config.out_dim)
        if config.token_type in ("Gen-Hu-Obj", "Gen-Int"):
            self.attention_splitter = AttentionSplitter(config.out_dim)
        if config.separate_decoders:  # "-DifDe": human and object decoders next to the shared one (spec §1.4)
            self.human_mask_decoder = copy.deepcopy(self.sam.mask_decoder)
            self.object_mask_decoder = copy.deepcopy(self.sam.mask_decoder)
        self.eval()

    # ---- the photo and the prompt -----------------------------------------------------------------------

    def image_features(self, clip_pixels: torch.Tensor) -> torch.Tensor:
        """CLIP pixel values [1, 3, 224, 224] -> projected patch features [1, 256, hidden]."""
        out = self.vision_tower(clip_pixels.to(self.mm_projector.weight.dtype), output_hidden_states=True)
        patches = out.hidden_states[self.config.vision_select_layer][:, 1:]  # LLaVA "patch": drop CLS
        return self.mm_projector(patches)

    def prompt_embeddings(self, input_ids: list[int], image_features: torch.Tensor) -> torch.Tensor:
        """Token ids with one IMAGE_TOKEN_INDEX -> input embeddings [1, len - 1 + n_patches, hidden]."""
        if input_ids.count(IMAGE_TOKEN_INDEX) != 1:
            raise ValueError("the prompt must contain exactly one image sentinel")
        at = input_ids.index(IMAGE_TOKEN_INDEX)
        embed = self.llm.get_input_embeddings()
        device = embed.weight.device
        before = embed(torch.tensor([input_ids[:at]], device=device))
        after = embed(torch.tensor([input_ids[at + 1 :]], device=device))
        return torch.cat([before, image_features.to(before.dtype), after], dim=1)

    # ---- the seg embedding to per-view SAM prompts ----------------------------------------------------------

    def view_prompt_tokens(self, seg_state: torch.Tensor, seg_token: int, cameras: torch.Tensor) -> torch.Tensor:
        """Final-norm hidden state [hidden] of the position that predicted a seg token -> SAM sparse tokens [V, D].

        Every view's decoder is shown all V camera-conditioned copies (spec §2.6); the caller expands them.
        """
        embedding = self.text_hidden_fcs[0](seg_state.reshape(1, 1, -1))  # [1, 1, D]
        views = self.config.num_views
        embedding = embedding.expand(1, views, -1)
        if self.config.camera_conditioned:
            embedding = self.cam_pose_encoder(embedding, cameras.to(embedding.dtype))
        if self.config.token_type in ("Gen-Hu-Obj", "Gen-Int"):
            if seg_token == self.config.hseg_token_idx:
                embedding = self.attention_splitter(embedding, "human")
            elif seg_token == self.config.oseg_token_idx:
                embedding = self.attention_splitter(embedding, "object")
        return embedding[0]

    def mask_decoder_for(self, mode: str) -> nn.Module:
        """The decoder a mode uses: the shared one, or the human/object one of a -DifDe release."""
        if not self.config.separate_decoders:
            return self.sam.mask_decoder
        return self.human_mask_decoder if mode == "human" else self.object_mask_decoder
