"""The local inference server: a FastAPI `/v1` job API in front of one worker that owns the models."""

SERVER_VERSION = "0.1.0"
LISTENING = "IVLM server listening on"  # the start banner's first words; scripts read the URL after them
