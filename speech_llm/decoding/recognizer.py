"""Recognizer / Stream: incremental decoding with a shared model and per-input state (DESIGN.md §4).

    rec = speech_llm.load_recognizer("exp/mini")
    s = rec.create_stream()
    s.accept_waveform(sample_rate, samples)    # any block size, any rate (resampled to 16 kHz)
    rec.decode(s)                              # advance as far as the input allows
    s.input_finished(); rec.decode(s)
    r = rec.get_result(s)                      # r.text, r.committed, r.partial, r.words, r.segments

The :class:`Recognizer` holds the model and one :class:`~speech_llm.config.DecodeConfig`; a :class:`Stream`
holds one input's state: the resampler, the endpointer, and the open segment(s).

Input of any length: endpointing is part of decoding (as in sherpa-onnx's recognizer). An energy gate on the
stream's 16 kHz samples opens segments (:mod:`speech_common.endpoint`: long quiet input opens none and costs no
decoding). In streaming decoding a segment is ended by what the decoder writes (``decode.endpoint.mode =
"decoder"``, sherpa-onnx's three rules, checked after each chunk: rule 1, ``rule1_silence_s`` of chunks with
no word and nothing written yet; rule 2, ``rule2_silence_s`` of chunks with no word after some text; rule 3,
``max_segment_s``), so noise above the gate's threshold holds nothing open once the model stops writing.
The segment then ends at that chunk's end: the end marker is read and the model writes until eos; the
samples after the chunk end (kept by the segment until its chunks are decided) go back through the gate,
which may open the next segment at once. In batch decoding, or with ``endpoint.mode = "energy"``, the gate
also ends segments (trailing quiet audio, maximum length). Either way the input end ends the open segment.
Each segment is decoded with a fresh LLM context and fresh front-end and encoder caches; a finished segment
leaves only its text and word times (:class:`SegmentResult`), so the state of a stream is at most one
segment plus a pre-roll, however long the input runs. Token caps are per segment, and a segment that hits
one says so (``truncated``). With ``decode.context_words = N`` the last N words of the earlier segments go
into the next segment's prompt.

The decode step (:meth:`Recognizer.write_step`) is the one place the LLM is asked what to write; text, word
times and the decoder rules read only what it returns (tests script it there).

Policy within a segment (streaming): audio goes through fbank -> encoder -> projector as it arrives
(:meth:`SpeechLLM.stream_audio`, which owns the audio-side state). Each complete chunk of
``tokens_per_chunk`` audio tokens is read, then the model writes until it writes ``<wait>`` (eos is
suppressed while input remains); that ``<wait>`` is fed back after the next chunk, exactly as in training,
and the chunk and that pending token share ONE forward. With ``read_ahead_chunks = K`` the first write
waits until K+1 chunks are read. When the segment's input has ended: the last partial chunk is read and
written on, then the source end marker is read and the model writes until eos (``<wait>`` suppressed).
Because chunks are processed one at a time and segment boundaries come from the samples and the chunks'
writes alone, the result does not depend on block sizes or on how often ``decode`` is called.

Batch mode (``decode.mode = "batch"``): each segment is decoded once its input is complete: all audio
tokens and the end marker are read, then the model writes until eos with no waits.

Many streams (:meth:`Recognizer.decode_streams`) advance in one batch with exactly the policy above; a
single :meth:`Recognizer.decode` is the same code with one stream. Each call runs in rounds; a round takes
the first segment with work of every stream:

1. Audio side: :meth:`SpeechLLM.stream_audio` encodes the whole chunks of all those segments, batching the
   segments whose encoder states need the same number of features.
2. LLM: each segment's work is a list of steps (read a chunk -- the prompt goes with the first one -- then
   maybe write; at the end the end marker, then the final write). The sessions of the segments with work
   are merged (:meth:`~speech_llm.lm.group_lm.GroupStreamingSession.merge`) and step ``i`` of every segment
   runs together: ONE LLM forward reads all the chunks (per-stream lengths) AND feeds each writing
   stream's pending token after its chunk (so a chunk that writes only ``<wait>`` costs one forward), then
   each further greedy token is ONE forward over the merged batch (per-stream stop/suppress/cap; a stream
   done writing takes part with an empty row until the longest write of the step ends). A segment whose
   steps are done leaves the batch (:meth:`~speech_llm.lm.group_lm.GroupStreamingSession.select`), so
   padding never outlives a call.

Each stream gets the tokens it gets decoded alone: batched forwards differ from ``B = 1`` ones only by
float rounding (masked padding contributes exactly zero). ``compute_s`` of a stream is its equal share of
the batched call's time.

Committed text never changes: every token is written once and never revised (nothing is re-encoded).
``committed`` is the text of complete words; ``partial`` is a word still being written (its next token
could continue it), which is usually empty because ``<wait>`` falls between words.

Input conversions (documented): integer PCM is scaled to [-1, 1] (int16 by 1/32768, int32 by 1/2^31);
2-D input of shape (N, C) is averaged over channels; NaN or infinite samples raise ``ValueError``.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from encoders.constants import SAMPLE_RATE
from speech_common.endpoint import DecoderRules, SegmentingStream, after_chunk_step, stream_endpointer
from speech_common.export_dir import is_export_dir
from speech_common.pcm import to_mono_float
from speech_common.results import Result, SegmentResult, Word, stream_result
from speech_common.write_caps import nonblank_allowance
from speech_llm.config import DecodeConfig
from speech_llm.decoding.resample import StreamingResampler
from speech_llm.lm.framing import word_start_table
from speech_llm.lm.group_lm import GroupStreamingSession, WriteResult
from speech_llm.model.projector import VocabProjector
from speech_llm.model.speech_model import SpeechLLM


@dataclass
class _Written:
    token: int
    audio_s: float
    wall_s: float


@dataclass
class _Step:
    """One step of a segment's LLM work: read ``source`` (n, D) (``n_audio`` of them audio tokens), then
    write: ``None`` (no write), ``"chunk"`` (until ``<wait>``) or ``"final"`` (until eos)."""

    source: torch.Tensor
    n_audio: int
    write: str | None


class _Segment:
    """One segment's decoding state: front end, audio-side state, LLM session and what was written."""

    def __init__(self, rec: Recognizer, stream: Stream, index: int, start_sample: int):
        m = rec.model
        self.stream, self.index, self.start_sample = stream, index, start_sample
        self.end_sample: int | None = None
        self.reason = ""
        self.frontend = m.encoder.make_frontend()
        self.feats: list[torch.Tensor] = []
        self.audio_state = m.init_audio_state(rec.chunk_frames)
        self.audio = next(m.parameters()).new_zeros(0, m.glm.hidden_size)   # audio tokens not read yet
        self.session: GroupStreamingSession | None = None
        self.pending = torch.tensor([m.tokens.bos_id])
        self.context_ids: list[int] | None = None
        self.written: list[_Written] = []
        self.num_complete = 0
        self.tokens_read = 0
        self.num_samples = 0
        self.input_done = self.finished = self.truncated = False
        self.rules = DecoderRules(rec.config.endpoint, start_sample, rec.chunk_samples, rec.chunk_s) \
            if stream.decoder_ends else None
        """Decoder endpointing (streaming, ``endpoint.mode = "decoder"``), None otherwise."""

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.num_samples / SAMPLE_RATE

    def push(self, x: np.ndarray) -> None:
        """16 kHz float32 samples (numpy, from the stream's energy gate)."""
        if x.size:
            self.num_samples += x.size
            self.feats.append(self.frontend.accept_waveform(torch.from_numpy(np.ascontiguousarray(x))))
            if self.rules is not None:
                self.rules.keep(x)

    def end_by_rule(self, end_sample: int, reason: str) -> None:
        """The decoder rules end the segment at ``end_sample`` (a chunk end): what was not read is dropped;
        the samples after it stay with :attr:`rules` for the next segment."""
        self.feats, self.audio = [], self.audio[:0]
        self.num_samples = end_sample - self.start_sample
        self.end_sample, self.reason, self.input_done = end_sample, reason, True

    def close(self, end_sample: int, reason: str) -> None:
        self.feats.append(self.frontend.input_finished())
        self.end_sample, self.reason, self.input_done = end_sample, reason, True

    def take_feats(self) -> torch.Tensor:
        f = torch.cat(self.feats) if self.feats else torch.zeros(0, self.audio_state.feats.size(1))
        self.feats = []
        return f

    def has_work(self, batch_mode: bool) -> bool:
        if self.finished:
            return False
        if batch_mode:
            return self.input_done
        return self.input_done or any(f.numel() for f in self.feats)


class Stream(SegmentingStream):
    """One input's decoding state (a file, a microphone, a client connection). Create with
    :meth:`Recognizer.create_stream`."""

    trace_max_tokens = 4096
    """How many generated tokens :attr:`trace` keeps (the newest; minutes of speech)."""

    def __init__(self, rec: Recognizer):
        self.rec = rec
        self.endpointer, self.decoder_ends = stream_endpointer(rec.config.endpoint, rec.config.mode, SAMPLE_RATE)
        """The energy gate (None: endpointing off); whether the decoder rules end segments (streaming,
        ``endpoint.mode = "decoder"``; the gate only opens them)."""
        self.resampler: StreamingResampler | None = None
        self.num_samples = 0
        self.input_done = False
        self.t0: float | None = None
        self.input_end_wall: float | None = None
        self.compute_s = 0.0
        self.segments: list[SegmentResult] = []
        self.open: list[_Segment] = []
        """Segments not finalised yet, in order (the last one may still be receiving audio)."""
        self.tokens_read = 0
        self.trace: deque[tuple[int, int]] = deque(maxlen=self.trace_max_tokens)
        """The last :attr:`trace_max_tokens` generated tokens, <wait>/eos included, each with the source tokens
        its row saw when it was chosen (bounded: a stream may run for days)."""

    @property
    def finished(self) -> bool:
        """The input has ended and every segment is decoded."""
        return self.input_done and not self.open

    @property
    def duration_s(self) -> float:
        """Seconds of (16 kHz) audio accepted so far."""
        return self.num_samples / SAMPLE_RATE

    @property
    def session(self) -> GroupStreamingSession | None:
        """The LLM session of the segment being decoded (None between segments)."""
        return self.open[-1].session if self.open else None

    def accept_waveform(self, sample_rate: int, samples) -> None:
        """Append audio: ``samples`` (N,) or (N, C), float in [-1, 1] or integer PCM, at ``sample_rate``.

        Integer PCM is scaled by its full scale: signed ``x / 2**(bits-1)``; unsigned is offset binary as in
        8-bit WAV (``(x - 2**(bits-1)) / 2**(bits-1)``: uint8 128 is silence)."""
        if self.input_done:
            raise RuntimeError("accept_waveform() after input_finished()")
        x = _to_mono_float(samples)
        if self.t0 is None:
            self.t0 = time.monotonic()
        if self.resampler is None:
            self.resampler = StreamingResampler(int(sample_rate), SAMPLE_RATE)
        elif int(sample_rate) != self.resampler.orig_rate:
            raise ValueError(f"sample rate changed within a stream: {self.resampler.orig_rate} -> {sample_rate}")
        self._push(self.resampler.accept(x))

    def input_finished(self) -> None:
        """No more audio will come: the open segment ends (reason ``end``)."""
        if self.input_done:
            return
        if self.resampler is not None:
            self._push(self.resampler.flush())
        self._close_input()
        self.input_done = True
        self.input_end_wall = self.wall_s()

    def wall_s(self) -> float:
        """Wall-clock seconds since the first audio arrived."""
        return 0.0 if self.t0 is None else time.monotonic() - self.t0

    def _push(self, x: torch.Tensor) -> None:
        if not x.numel():
            return
        self._route(x.numpy())
        self.num_samples += x.numel()

    def _new_segment(self, start_sample: int) -> None:
        self.open.append(_Segment(self.rec, self, len(self.segments) + len(self.open), start_sample))


class Recognizer:
    """A speech LLM shared by many streams.

    Args:
        model: a :class:`SpeechLLM` (eval mode is set here; ``config.dtype`` / ``config.quantize`` are
            applied to its LLM).
        tokenizer: the LLM tokenizer (``decode``).
        config: :class:`~speech_llm.config.DecodeConfig` (default: its defaults).
    """

    @classmethod
    def from_checkpoint(cls, exp_dir_or_checkpoint: str | os.PathLike, config: DecodeConfig | None = None,
                        device: str = "cpu", overrides: Sequence[str] = ()) -> Recognizer:
        """Rebuild the model from a checkpoint (or the best one in an exp dir) alone and wrap it.

        ``config`` None: the checkpoint config's ``decode`` section, with ``overrides`` applied to it
        (``["chunk_ms=320", "endpoint.silence_s=0.5"]``: keys of :class:`DecodeConfig`, checked strictly).
        The experiment config is kept as :attr:`experiment`.
        """
        from speech_llm.model.checkpoint import load_model
        from speech_llm.typed_config import apply_overrides

        model, tokenizer, cfg = load_model(exp_dir_or_checkpoint, device=device)
        config = apply_overrides(config if config is not None else cfg.decode, overrides, source="decode")
        rec = cls(model, tokenizer, config)
        rec.experiment = cfg
        return rec

    def __init__(self, model: SpeechLLM, tokenizer, config: DecodeConfig | None = None):
        from speech_llm.model.build import prepare_for_inference

        self.experiment = None
        """The experiment config the model was trained with, when built by :meth:`from_checkpoint`."""
        self.config = config or DecodeConfig()
        self.model = prepare_for_inference(model.eval(), self.config.dtype, self.config.quantize)
        self.tokenizer = tokenizer
        self._word_starts: list[bool] = word_start_table(tokenizer).tolist()
        self.token_s = model.token_s
        self.chunk_frames = model.chunk_frames if self.config.chunk_ms is None else \
            model.frames_for_chunk(self.config.chunk_ms)
        self.tokens_per_chunk = self.chunk_frames // model.projector.stack
        self.chunk_samples = round(self.chunk_s * SAMPLE_RATE)

    @property
    def chunk_s(self) -> float:
        return self.tokens_per_chunk * self.token_s

    def with_config(self, config: DecodeConfig) -> Recognizer:
        """A recognizer of the same model (no weight copied) with another decode config (the server's per-session
        options)."""
        rec = Recognizer(self.model, self.tokenizer, config)
        rec.experiment = self.experiment
        return rec

    def create_stream(self) -> Stream:
        return Stream(self)

    def decode(self, stream: Stream) -> None:
        """Advance ``stream`` as far as its input allows (see the module docstring for the policy)."""
        self.decode_streams([stream])

    @torch.no_grad()
    def decode_streams(self, streams: Sequence[Stream]) -> None:
        """Advance several streams as far as their inputs allow, in one batch (see the module docstring).

        Each stream gets the tokens, text and emission audio times that :meth:`decode` on it alone gives.
        """
        todo = [s for s in dict.fromkeys(streams) if not s.finished]
        if not todo:
            return
        t = time.perf_counter()
        batch_mode = self.config.mode == "batch"
        try:
            # one round: the first unfinished segment of every stream (a stream whose block closed several
            # segments decodes them in order, one per round; only the last segment can still be open)
            while work := [s.open[0] for s in todo if s.open and s.open[0].has_work(batch_mode)]:
                self._advance(work, batch_mode)
                for s in todo:
                    self._collect(s)
        finally:
            share = (time.perf_counter() - t) / len(todo)
            for s in todo:
                s.compute_s += share

    def get_result(self, stream: Stream) -> Result:
        """Text so far: committed words never change; ``partial`` is a word still being written."""
        return stream_result(stream.segments, [self._segment_words(seg) for seg in stream.open], stream.finished)

    # ------------------------------------------------------------------ internals
    def _advance(self, segs: list[_Segment], batch_mode: bool) -> None:
        """Audio side, then the LLM steps, of one segment per stream."""
        audio = self.model.stream_audio([g.audio_state for g in segs], [g.take_feats() for g in segs],
                                        [g.input_done for g in segs])
        for g, a in zip(segs, audio):
            g.audio = torch.cat([g.audio, a.to(g.audio.dtype)])
        self._run_steps({id(g): self._plan(g, batch_mode) for g in segs}, segs)
        for g in segs:
            if g.rules is not None:                          # keep only the samples after the last chunk end
                g.rules.drop_decided()

    def _collect(self, stream: Stream) -> None:
        """Finished segments leave their text and words; their state is dropped (bounded memory)."""
        while stream.open and stream.open[0].finished:
            seg = stream.open.pop(0)
            words, _ = self._segment_words(seg)
            stream.segments.append(SegmentResult(
                index=seg.index, start_s=seg.start_s, end_s=seg.end_sample / SAMPLE_RATE,
                text=" ".join(w.word for w in words), words=words, reason=seg.reason, truncated=seg.truncated))
            if seg.rules is not None and seg.rules.ended:
                stream._restart(seg.end_sample, seg.rules.rest())

    def _context(self, seg: _Segment) -> list[int]:
        """Prompt context of a segment: the last ``context_words`` words of the stream's finished segments."""
        n = self.config.context_words
        if not n:
            return []
        words = [w.word for s in seg.stream.segments for w in s.words][-n:]
        return self.tokenizer(" " + " ".join(words), add_special_tokens=False)["input_ids"] if words else []

    def _plan(self, seg: _Segment, batch_mode: bool) -> list[_Step]:
        """Turn the segment's new audio tokens (and input end) into its LLM steps (see the module docstring)."""
        m, k = self.model, self.tokens_per_chunk
        audio = seg.audio
        steps: list[_Step] = []
        read = seg.tokens_read
        if not batch_mode:
            while audio.size(0) >= k:
                read += k
                write = "chunk" if read > self.config.read_ahead_chunks * k else None
                steps.append(_Step(audio[:k], k, write))
                audio = audio[k:]
        if seg.input_done:
            end = self._end_step(audio.dtype)
            if batch_mode:
                steps.append(_Step(torch.cat([audio, end.source]), audio.size(0), "final"))
            else:
                if audio.size(0):
                    steps.append(_Step(audio, audio.size(0), "chunk"))
                steps.append(end)
            seg.audio = audio[:0]
        else:
            seg.audio = audio  # less than a chunk: waits for more
        if steps and seg.session is None:
            seg.context_ids = self._context(seg)
            prompt = m.token_embeds([*m.tokens.prompt_ids, *seg.context_ids])[0].to(audio.dtype)
            first = steps[0]
            steps[0] = _Step(torch.cat([prompt, first.source]), first.n_audio, first.write)
        return steps

    def _end_step(self, dtype: torch.dtype) -> _Step:
        """Read the source end marker, then write until eos."""
        m = self.model
        return _Step(m.token_embeds(m.tokens.end_ids)[0].to(dtype), 0, "final")

    def _endpoint(self, seg: _Segment, step: _Step, wrote: bool) -> bool:
        """After a whole chunk of a segment under the decoder rules (:class:`speech_common.endpoint.DecoderRules`):
        True when the rules end the segment at this chunk's end (then marked with :meth:`_Segment.end_by_rule`).
        ``wrote``: the model wrote a word for this chunk. Chunks where the model could not write (read-ahead
        before the first write, or the segment's token cap used up: ``truncated``) count for the length only."""
        return after_chunk_step(seg, step.write != "final" and step.n_audio == self.tokens_per_chunk, wrote,
                                step.write is not None and not seg.truncated)

    def _run_steps(self, plans: dict[int, list[_Step]], segs: list[_Segment]) -> None:
        """Run step i of every segment together: one forward reads and feeds the pending tokens, then
        batched greedy writes. A segment the decoder rules end after step i reads the end marker next."""
        group = [g for g in segs if plans[id(g)]]
        if not group:
            return
        sess = GroupStreamingSession.merge([g.session or self.model.glm.start(1) for g in group])
        i = 0
        while group:
            steps = [plans[id(g)][i] for g in group]
            embeds = torch.nn.utils.rnn.pad_sequence([st.source for st in steps], batch_first=True)
            lens = torch.tensor([st.source.size(0) for st in steps])
            for g, st in zip(group, steps):
                g.tokens_read += st.n_audio
                g.stream.tokens_read += st.n_audio
            before = [len(g.written) for g in group]
            self._read_and_write(sess, group, steps, embeds, lens)
            for g, st, n in zip(group, steps, before):
                if self._endpoint(g, st, len(g.written) > n):
                    plans[id(g)][i + 1:] = [self._end_step(st.source.dtype)]
            i += 1
            done = [b for b, g in enumerate(group) if len(plans[id(g)]) == i]
            if done:
                keep = [b for b in range(len(group)) if b not in done]
                for b in done:
                    group[b].session = sess.select([b])
                    if steps[b].write == "final":
                        group[b].finished = True
                        group[b].session = None      # the segment is over: drop its KV cache now
                sess = sess.select(keep) if keep else sess
                group = [group[b] for b in keep]

    def _read_and_write(self, sess: GroupStreamingSession, group: list[_Segment], steps: list[_Step],
                        embeds: torch.Tensor, lens: torch.Tensor) -> None:
        """Read every segment's step source and run the greedy writes of the segments whose step writes,
        batched. The read and the first written token (the pending ``<wait>`` of the previous chunk, or bos)
        share ONE forward, so a chunk that writes nothing but its ``<wait>`` costs one LLM forward."""
        tk, cfg = self.model.tokens, self.config
        active, caps, stops, suppress = [], [], [], []
        for g, st in zip(group, steps):
            left = cfg.max_tokens_per_segment - len(g.written)
            final = st.write == "final"
            if st.write is not None and left <= 0:
                g.truncated = True
            heard = self._nonblank_allowance(g)
            if heard is not None:
                left = min(left, heard - len(g.written))
            active.append(st.write is not None and left > 0)
            caps.append(max(1, left if final else min(left, cfg.max_tokens_per_read)))
            stops.append([tk.eos_id] if final else [tk.wait_id])
            suppress.append([tk.wait_id] if final else [tk.eos_id])
        if not any(active):
            sess.read(embeds, lens=lens)
            return
        visible = (sess.num_source + lens.to(sess.device)).tolist()
        pending = torch.cat([g.pending for g in group])
        res = self.write_step(sess, group, pending, stops, caps, torch.tensor(active), suppress, embeds, lens)
        for b, (g, st) in enumerate(zip(group, steps)):
            if active[b]:
                self._record(g, res.tokens[b], res.pending[b:b + 1], bool(res.stopped[b]), visible[b],
                             final=st.write == "final")

    def _nonblank_allowance(self, seg: _Segment) -> int | None:
        """``decode.nonblank_cap``: the tokens the segment may have written after the audio it has read, or None
        (off, or a projector without CTC classes)."""
        cfg, mass = self.config, seg.audio_state.nonblank
        if not isinstance(self.model.projector, VocabProjector):
            return None
        return nonblank_allowance(cfg.nonblank_cap, cfg.nonblank_slack, float(mass[:seg.tokens_read].sum()))

    def write_step(self, sess: GroupStreamingSession, segments: Sequence[_Segment], pending: torch.Tensor,
                   stops: list[list[int]], caps: list[int], active: torch.Tensor, suppress: list[list[int]],
                   source: torch.Tensor, source_lens: torch.Tensor) -> WriteResult:
        """The decode step: the one place the Recognizer asks the LLM what to write. Row ``b`` is
        ``segments[b]``: read ``source[b, :source_lens[b]]`` (its ``tokens_read`` already counts the audio
        of it), feed ``pending[b]``, then where ``active[b]`` write greedily until a token of ``stops[b]`` or
        ``caps[b]`` tokens, never choosing ``suppress[b]``
        (:meth:`~speech_llm.lm.group_lm.GroupStreamingSession.greedy_write`, which this calls).

        Everything downstream -- text, word times, the decoder endpoint rules -- reads only the returned
        :class:`~speech_llm.lm.group_lm.WriteResult`. Tests that must control what the model writes override
        this method with a scripted stand-in that feeds the scripted tokens through ``sess``
        (``tests/speech_llm/decoding/scripted_writer.py``)."""
        return sess.greedy_write(pending, stops, caps, active=active, suppress_ids=suppress, source=source,
                                 source_lens=source_lens)

    def _record(self, seg: _Segment, tokens: list[int], pending: torch.Tensor, stopped: bool, visible: int,
                final: bool) -> None:
        tk = self.model.tokens
        seg.stream.trace.extend((t, visible) for t in tokens)
        read_s = seg.duration_s if final else min(seg.tokens_read * self.token_s, seg.duration_s)
        audio_s, wall = seg.start_s + read_s, seg.stream.wall_s()
        for t in tokens:
            if t not in (tk.wait_id, tk.eos_id):
                seg.written.append(_Written(t, audio_s, wall))
        seg.pending = pending
        if final and not stopped:
            seg.truncated = True            # the cap ended the segment before eos
        toks = [w.token for w in seg.written]
        # A write that ended on <wait>/eos closed its last word; one cut by a cap may be mid-word.
        seg.num_complete = len(toks) if stopped or final else self._word_boundary(toks)

    def _segment_words(self, seg: _Segment) -> tuple[list[Word], str]:
        """Committed words of a segment (with their times) and its partial word."""
        toks = [w.token for w in seg.written]
        n_done = seg.num_complete
        words: list[Word] = []
        start = 0
        for i in range(1, n_done + 1):
            if i == n_done or self._starts_word(toks[i]):
                text = self.tokenizer.decode(toks[start:i], skip_special_tokens=True).strip()
                if text:
                    last = seg.written[i - 1]
                    words += [Word(w, last.audio_s, last.wall_s) for w in text.split()]
                start = i
        return words, self.tokenizer.decode(toks[n_done:], skip_special_tokens=True).strip()

    def _starts_word(self, token: int) -> bool:
        return token < len(self._word_starts) and self._word_starts[token]

    def _word_boundary(self, toks: list[int]) -> int:
        """Index where the last (possibly unfinished) word starts."""
        for i in range(len(toks) - 1, 0, -1):
            if self._starts_word(toks[i]):
                return i
        return 0


def load_recognizer(exp_dir_or_checkpoint: str | os.PathLike, config: DecodeConfig | None = None,
                    device: str = "cpu", overrides: Sequence[str] = ()) -> Recognizer:
    """:meth:`Recognizer.from_checkpoint` (exported as ``speech_llm.load_recognizer``). An export dir
    (``speech-llm export``) gives a ``speech_runtime`` recognizer on onnxruntime with the same API."""
    if is_export_dir(exp_dir_or_checkpoint):
        import speech_runtime

        return speech_runtime.load_recognizer(exp_dir_or_checkpoint, overrides=list(overrides))
    return Recognizer.from_checkpoint(exp_dir_or_checkpoint, config, device, overrides)


def _to_mono_float(samples) -> torch.Tensor:
    """:func:`speech_common.pcm.to_mono_float` of numpy or torch samples, as a tensor."""
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    return torch.from_numpy(to_mono_float(samples))
