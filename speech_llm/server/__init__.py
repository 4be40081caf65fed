"""A streaming recognition server over WebSocket, with a browser page and a client (``speech-llm serve`` /
``speech-llm client``). Built on the ``websockets`` library (asyncio); the model runs on one decode thread
that advances every session together (:mod:`speech_llm.server.decode_loop`).

Modules: :mod:`~speech_llm.server.protocol` (messages, checks), :mod:`~speech_llm.server.options`
(per-session decode options), :mod:`~speech_llm.server.decode_loop` (continuous batching),
:mod:`~speech_llm.server.session` (one connection), :mod:`~speech_llm.server.http` (the page, /healthz,
503), :mod:`~speech_llm.server.app` (the server), :mod:`~speech_llm.server.client` (the client library),
``static/`` (the page: index.html, app.js, capture-worklet.js).

Protocol, version 1
===================

Endpoint ``ws://HOST:PORT/ws``. The page is ``http://HOST:PORT/``; ``GET /healthz`` returns JSON (active
sessions, limits, decode-loop counters). Text messages are JSON objects with a ``"type"``; audio is binary.

Client -> server, in this order::

    {"type": "start", "version": 1, "sample_rate": 48000, "format": "s16le", "channels": 1,
     "token": "...",                                  # required when the server has a token
     "options": {"endpoint.silence_s": 0.5},          # optional decode overrides (below)
     "label": "mic"}                                  # optional, shows in the server log
    <binary>  audio frames: little-endian samples, "s16le" (int16) or "f32le" (float32, nominally [-1, 1]),
              channels interleaved; any number of whole samples per frame; any sample rate in
              [8000, 192000] (the recognizer resamples to 16 kHz)
    {"type": "marker", "id": 7}                       # optional, any time: answered once all audio sent
                                                      # before it is decoded (a flush point)
    {"type": "end"}                                   # no more audio: finish the open segment

Server -> client::

    {"type": "ready", "version": 1, "session": "12", "chunk_s": 0.64, "config": {...}}     # after "start"
    {"type": "partial", "segment": 3, "start_s": 12.3, "committed": "turn on the", "partial": "",
     "words": [{"word": "turn", "time_s": 12.96}, ...], "audio_s": 14.1}
    {"type": "final", "segment": 3, "start_s": 12.3, "end_s": 15.8, "text": "turn on the light",
     "words": [...], "reason": "silence", "truncated": false}
    {"type": "marker", "id": 7}
    {"type": "done", "segments": 4, "text": "...", "audio_s": 15.8, "compute_s": 0.41, "rtf": 0.026,
     "truncated": false}                                                                   # then close 1000
    {"type": "error", "code": "bad_frame", "message": "..."}                              # then close

* ``partial``: the OPEN segment only -- its committed words (these never change: every later partial and the
  final of that segment extend them) and the word still being written (``partial``, usually empty). Sent
  when that text changes; a slow reader may skip superseded partials, never a final.
* ``final``: one per finished segment, in order. ``reason``: ``silence`` (a pause after text ended it),
  ``no_text`` (non-speech with nothing written: decoder endpointing), ``max_length`` or ``end`` (of the
  input); ``truncated``: the segment's token cap stopped the model early.
* Times are seconds of the session's audio. A word's ``time_s`` is when it was written: how much audio the
  model had read then (not an aligned word boundary). ``start_s``/``end_s`` bound the segment.
* Options a client may set (keys of the checkpoint's ``decode`` section): ``mode`` (streaming|batch),
  ``read_ahead_chunks`` (0-4), ``context_words`` (0-64), ``max_tokens_per_read`` and
  ``max_tokens_per_segment`` (at most the server's), ``endpoint.mode`` (decoder|energy),
  ``endpoint.rule1_silence_s``, ``endpoint.rule2_silence_s`` and ``endpoint.silence_s`` (0.1-10),
  ``endpoint.max_segment_s`` (1 to the server's), ``endpoint.threshold_db`` (-100-0). Anything else is
  ``bad_option``.

Errors end the session (that one only) with a close code: ``bad_json``, ``bad_message``, ``not_started``
(audio or a message before "start"), ``already_started``, ``after_end``, ``unauthorized``, ``idle_timeout``,
``bad_option``, ``bad_frame`` (not whole samples), ``bad_audio`` (NaN/inf, or |x| > 16 in f32le) -> 1008;
``unsupported_version``, ``unsupported_format``, ``bad_sample_rate``, ``bad_channels`` -> 1003; ``internal``
-> 1011; ``shutting_down`` -> 1001; ``server_full`` -> 1013. A full server refuses the handshake itself with
HTTP 503; a message larger than the limit is closed by the library with 1009 (no error message).

Versioning: ``version`` in "start" must equal :data:`~speech_llm.server.protocol.PROTOCOL_VERSION`;
new optional fields may be added within a version, anything else bumps it.
"""

from speech_llm.server.protocol import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
