"""A scripted stand-in for the Recognizer's decode step (:meth:`speech_llm.decoding.recognizer.Recognizer.write_step`,
the one place the Recognizer asks the LLM what to write): a test says which words the model writes after each
chunk, so it can control what the decoder endpoint rules see.

The script is a function of the stream time (seconds of stream audio read when the chunk's write happens) to
the words written for that chunk ("" = the model writes only ``<|wait|>``). The scripted tokens are fed
through the real LLM session (:meth:`~speech_llm.lm.group_lm.GroupStreamingSession.read_write` and ``write``),
so the KV cache, positions and pending tokens are what decoding those tokens would leave. The final write
of a segment (after the end marker) writes eos alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from speech_llm.decoding.recognizer import Recognizer
from speech_llm.lm.group_lm import WriteResult


class ScriptedRecognizer(Recognizer):
    def __init__(self, model, tokenizer, config, script: Callable[[float], str]):
        super().__init__(model, tokenizer, config)
        self.script = script
        self.calls: list[tuple[float, str]] = []
        """(stream time, words) of every scripted chunk write, in order."""

    def write_step(self, sess, segments, pending, stops, caps, active, suppress, source, source_lens):
        eos = self.model.tokens.eos_id
        rows: list[list[int]] = []
        for b, seg in enumerate(segments):
            if not bool(active[b]):
                rows.append([])
                continue
            words = ""
            if eos not in stops[b]:
                t = round(seg.start_s + seg.tokens_read * self.token_s, 6)
                words = self.script(t)
                self.calls.append((t, words))
            ids = self.tokenizer(" " + words, add_special_tokens=False)["input_ids"] if words else []
            rows.append((ids + [stops[b][0]])[:caps[b]])
        sess.read_write(source, source_lens, pending, active)
        feed = [r[:-1] for r in rows]
        n = max(map(len, feed))
        if n:
            sess.write(torch.tensor([f + [0] * (n - len(f)) for f in feed]), lens=torch.tensor([len(f) for f in feed]))
        return WriteResult(tokens=rows,
                           pending=torch.tensor([r[-1] if r else int(pending[b]) for b, r in enumerate(rows)]),
                           stopped=torch.tensor([bool(r) and r[-1] in stops[b] for b, r in enumerate(rows)]))
