"""Audio encoders: streaming fbank front end, chunked Conformer with caches, CTC head, forced alignment."""

from encoders.registry import build_encoder, list_encoders, register_encoder

__all__ = ["build_encoder", "list_encoders", "register_encoder"]
