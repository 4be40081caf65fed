"""Data preparation: LibriSpeech, the synthetic LibriSpeech-format corpus, Kaldi data-dir I/O."""
