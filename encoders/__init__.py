"""Audio encoders: streaming fbank front end, chunked Conformer with caches, CTC head, forced alignment."""
