"""InteractVLM for Blender: the pipeline as a library (Perceive, Render, Localize, Lift, Fit)."""

__version__ = "0.1.0"
