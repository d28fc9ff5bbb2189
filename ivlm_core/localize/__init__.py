"""Localize: InteractVLM's network (LLaMA + CLIP + SAM on transformers) turning a photo and a label into
per-view contact masks on the 4 canonical renders."""
