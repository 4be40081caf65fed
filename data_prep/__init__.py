"""Data preparation: LibriSpeech, the synthetic LibriSpeech-format corpus, Kaldi data-dir I/O.

Modules:
    audio        read_audio / write_audio: float32 mono at SAMPLE_RATE, AudioError naming the file
    kaldi_dir    Utterance, read_data_dir / write_data_dir / validate_data_dir, DataError
    manifest     JSONL manifests: read_manifest / write_manifest, data dir <-> manifest
    librispeech  download_librispeech (resume, sha256, extraction), prepare_librispeech
    download     HTTP download with Range resume and checksums, safe tar extraction
    sentences    seeded English sentence generator with French / German translations
    voices       espeak-ng and flite speakers
    synth        generate_corpus: the synthetic corpus in LibriSpeech layout (template words)
    normalize    normalize_text / spoken_text: LibriSpeech-style text normalisation
    text_corpus  select_sentences: real English sentences (WordNet usage examples), filtered, seeded
    tts          synthesize_sentence: whole sentences by espeak-ng, flite, piper, with word times
    sentence_corpus  generate_sentence_corpus: those sentences in LibriSpeech layout, held-out voice
    asterisk     prepare_asterisk: real recorded prompts (Debian asterisk-core-sounds-en) as a test set
    longform     build_longform: a data dir's utterances joined with pauses into 1/5/20-minute test files
    fileutil     atomic writes

Rule for bad records, everywhere: stop before writing anything. Every problem is collected and reported
in one DataError (file, line, utterance); outputs are written atomically, so nothing prepared earlier is
lost (details in :mod:`data_prep.kaldi_dir`).
"""
