"""Checkpoints: the manifest, downloads, the per-user cache, and safe reading of state dicts."""
