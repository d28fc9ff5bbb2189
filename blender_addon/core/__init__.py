"""The add-on's bpy-free core: protocol, array codec, HTTP client, job state machine, frames, contact maths.

Standard library only (no numpy, no bpy), so it runs and is tested in plain Python.
"""
