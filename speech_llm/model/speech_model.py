"""SpeechLLM: chunked streaming encoder -> MLP projector -> group-streaming LLM (DESIGN.md §2).

The source of an utterance is ``[prompt tokens][audio tokens][end marker tokens]`` (the framing of
:mod:`speech_llm.lm.framing`, audio chunks as its units) and the target is built by
:mod:`speech_llm.lm.targets`. The encoder always runs with the chunk mask of the streaming chunk
(``chunk_frames`` encoder frames, ``left_chunks`` of left context), so the audio tokens seen in training are
exactly those produced chunk by chunk at inference; each chunk gives ``chunk_frames / stack`` LLM tokens.

Training: :meth:`SpeechLLM.forward` takes a collated batch (features + per-utterance target rows) and
returns the cross-entropy on target tokens only. Inference lives in :mod:`speech_llm.decoding.recognizer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from speech_common.chunking import chunk_frames_of
from speech_llm.lm.framing import SpecialTokens, source_group_ends
from speech_llm.lm.group_lm import GroupStreamingLM
from speech_llm.lm.masks import lengths_to_valid
from speech_llm.model.projector import Projector


@dataclass
class AudioState:
    """One stream's streaming state on the audio side (:meth:`SpeechLLM.stream_audio`).

    feats: (T, F) feature frames (fbank or Whisper log-mel; CMVN applied) not yet given to the encoder.
    enc: the encoder's streaming states (``init_states`` of one stream; plain tensors).
    proj: the projector's state (:meth:`Projector.init_state`): (1, k, D_enc) encoder frames not yet stacked,
        or with context layers a dict of plain tensors (those frames, the layers' keys and values).
    nonblank: (N,) per audio token emitted so far, the projector's non-blank CTC mass ``1 - p(blank)`` (a
        :class:`~speech_llm.model.projector.VocabProjector`; empty for other projectors): about how many text tokens
        the CTC head hears in it (the recognizer's ``decode.nonblank_cap`` reads it).
    """

    feats: torch.Tensor
    enc: dict
    proj: torch.Tensor | dict
    nonblank: torch.Tensor = field(default_factory=lambda: torch.zeros(0))


@dataclass
class SpeechLLMOutput:
    loss: torch.Tensor          # scalar mean cross-entropy over target tokens
    logits: torch.Tensor        # (B, T, V)
    num_tokens: int             # target tokens in the loss


class SpeechLLM(nn.Module):
    """Encoder + projector + group-streaming LLM.

    Args:
        encoder: a streaming encoder (``forward(feats, lens, chunk_size, left_chunks)``,
            ``init_states``/``streaming_forward``) with ``output_dim``.
        projector: :class:`Projector` from ``encoder.output_dim`` to the LLM hidden size.
        llm: a Hugging Face causal LM (or a peft model around one).
        tokens: :class:`SpecialTokens`.
        chunk_frames: encoder frames per streaming chunk (a multiple of ``projector.stack``).
        left_chunks: encoder left context in chunks (-1 = unlimited).
        phi: target group start position.
        cmvn: optional global CMVN module applied to the features.
    """

    def __init__(self, encoder: nn.Module, projector: Projector, llm: nn.Module, tokens: SpecialTokens,
                 chunk_frames: int, left_chunks: int = -1, phi: int = 0, cmvn: nn.Module | None = None):
        super().__init__()
        if chunk_frames < 1 or chunk_frames % projector.stack:
            raise ValueError(f"chunk_frames ({chunk_frames}) must be a positive multiple of the projector "
                             f"stack ({projector.stack})")
        self.encoder = encoder
        self.projector = projector
        self.glm = GroupStreamingLM(llm, phi=phi)
        self.cmvn = cmvn
        self.tokens = tokens
        self.chunk_frames = chunk_frames
        self.left_chunks = left_chunks

    @property
    def token_s(self) -> float:
        """Seconds of audio per LLM input token (encoder frame shift x projector stack)."""
        return self.encoder.frame_shift_s * self.projector.stack

    def frames_for_chunk(self, chunk_ms: float) -> int:
        """Encoder frames in a decoding chunk of ``chunk_ms`` (:func:`chunk_frames_of`)."""
        return chunk_frames_of(chunk_ms, self.encoder.frame_shift_s * 1000.0, self.projector.stack)

    @property
    def tokens_per_chunk(self) -> int:
        return self.chunk_frames // self.projector.stack

    @property
    def prompt_len(self) -> int:
        return len(self.tokens.prompt_ids)

    def audio_embeds(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                     chunk_frames: torch.Tensor | None = None,
                     encoded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T, F) -> audio tokens (B, N, D_llm) and their lengths (B,). The encoder runs with
        the chunk mask of ``chunk_frames`` (B,) encoder frames per utterance (default: the model's chunk).
        ``encoded``: ``feats`` are the encoder's output already (B, T', D_enc) (a frozen encoder's cached
        frames, computed with the model's chunk), so only the projector runs."""
        chunk = self.chunk_frames if chunk_frames is None else chunk_frames
        if encoded:
            return self.projector(feats, feat_lens, chunk // self.projector.stack)
        if self.cmvn is not None:
            feats = self.cmvn(feats)
        enc, enc_lens = self.encoder(feats, feat_lens, chunk, self.left_chunks)
        return self.projector(enc, enc_lens, chunk // self.projector.stack)

    # ------------------------------------------------------------------ streaming audio side
    def init_audio_state(self, chunk_frames: int | None = None) -> AudioState:
        """A fresh :class:`AudioState` for one stream (chunks of ``chunk_frames`` encoder frames, default the
        model's own)."""
        p = next(self.parameters())
        chunk = chunk_frames or self.chunk_frames
        return AudioState(feats=p.new_zeros(0, self.encoder.input_dim),
                          enc=self.encoder.init_states(1, chunk, self.left_chunks),
                          proj=self.projector.init_state(1, self.encoder.output_dim, p.device, p.dtype,
                                                         chunk // self.projector.stack))

    @torch.no_grad()
    def stream_audio(self, states: Sequence[AudioState], feats: Sequence[torch.Tensor],
                     final: Sequence[bool]) -> list[torch.Tensor]:
        """CMVN -> encoder -> projector for several streams at once; returns each stream's new audio tokens
        ``(n_b, D_llm)``.

        ``feats[b]`` (T_b, F) are stream b's new feature frames (fbank or Whisper log-mel); ``final[b]`` says
        its input has ended (the last partial chunk is encoded too and the state is spent). Every whole chunk is
        encoded once, and the streams that have one go through the encoder together: the encoder says how many
        features its next chunk needs (``features_needed``), streams needing the same number stack their
        states (``stack_states``) and take one ``streaming_forward``. The rest of each stream's features waits
        in ``AudioState.feats`` for the next call, so the output does not depend on how the features were cut.
        """
        for st, f in zip(states, feats):
            if f.numel():
                f = self.cmvn(f) if self.cmvn is not None else f
                st.feats = torch.cat([st.feats, f.to(st.feats.dtype)])
        out: list[list[torch.Tensor]] = [[] for _ in states]
        while True:
            groups: dict[int, list[int]] = {}
            for b, st in enumerate(states):
                need = self.encoder.features_needed(st.enc)
                if st.feats.size(0) >= need:
                    groups.setdefault(need, []).append(b)
            if not groups:
                break
            for need, idx in groups.items():
                self._encode([states[b] for b in idx], need, False, [out[b] for b in idx])
        ends: dict[tuple[int, int], list[int]] = {}     # streams whose input ended, by what they still hold
        for b, (st, fin) in enumerate(zip(states, final)):
            if fin:
                ends.setdefault((st.feats.size(0), self.encoder.features_needed(st.enc)), []).append(b)
        for idx in ends.values():
            self._encode([states[b] for b in idx], states[idx[0]].feats.size(0), True, [out[b] for b in idx])
        return [torch.cat(o) if o else states[b].feats.new_zeros(0, self.glm.hidden_size)
                for b, o in enumerate(out)]

    def _encode(self, group: list[AudioState], n: int, final: bool, outs: list[list[torch.Tensor]]) -> None:
        """Feed the first ``n`` buffered features of every stream of ``group`` to the encoder in one batch."""
        enc = self.encoder
        x = torch.stack([st.feats[:n] for st in group])
        states = group[0].enc if len(group) == 1 else enc.stack_states([st.enc for st in group])
        frames, states = enc.streaming_forward(x, states, final=final)
        proj_state = group[0].proj if len(group) == 1 else self.projector.stack_states([st.proj for st in group])
        with_mass = getattr(self.projector, "streaming_forward_mass", None)
        if with_mass is not None:
            proj, mass, proj_state = with_mass(frames, proj_state, final=final)
        else:
            proj, proj_state = self.projector.streaming_forward(frames, proj_state, final=final)
            mass = None
        per_stream = [states] if len(group) == 1 else enc.unstack_states(states)
        per_proj = [proj_state] if len(group) == 1 else self.projector.unstack_states(proj_state)
        for b, (st, es, ps) in enumerate(zip(group, per_stream, per_proj)):
            st.feats, st.enc, st.proj = st.feats[n:], es, ps
            outs[b].append(proj[b].to(st.feats.dtype))
            if mass is not None:
                st.nonblank = torch.cat([st.nonblank, mass[b].float().cpu()])

    def token_embeds(self, ids: Sequence[int], batch: int = 1) -> torch.Tensor:
        """Token ids -> (batch, len(ids), D_llm) embeddings."""
        dev = next(self.glm.lm.parameters()).device
        return self.glm.embed(torch.tensor([list(ids)], device=dev)).expand(batch, -1, -1)

    def source_batch(self, audio: torch.Tensor, audio_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[prompt][audio][end]`` per utterance, right-padded: (B, S, D), source lengths (B,)."""
        b = audio.size(0)
        prompt = self.token_embeds(self.tokens.prompt_ids, b).to(audio.dtype)
        end = self.token_embeds(self.tokens.end_ids, b).to(audio.dtype)
        n_end = end.size(1)
        src = torch.cat([prompt, audio, audio.new_zeros(b, n_end, audio.size(2))], dim=1)
        rows = torch.arange(b, device=audio.device).unsqueeze(1)
        cols = self.prompt_len + audio_lens.unsqueeze(1) + torch.arange(n_end, device=audio.device)
        src[rows, cols] = end  # end marker right after each utterance's own audio
        return src, self.prompt_len + audio_lens + n_end

    def chunk_source_ends(self, num_audio_tokens: int, tokens_per_chunk: int | None = None) -> list[int]:
        """Source tokens visible after each chunk (prompt included) for one utterance, with chunks of
        ``tokens_per_chunk`` audio tokens (default the model's)
        (:func:`speech_llm.lm.framing.source_group_ends` without the prompt's and the end marker's groups)."""
        k = tokens_per_chunk or self.tokens_per_chunk
        chunks = [min(k, num_audio_tokens - i) for i in range(0, num_audio_tokens, k)]
        return source_group_ends(self.prompt_len, chunks, len(self.tokens.end_ids))[1:-1]

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor,
                target_lens: torch.Tensor, source_visible: torch.Tensor,
                chunk_frames: torch.Tensor | None = None, encoded: bool = False) -> SpeechLLMOutput:
        """Teacher-forced loss.

        Args:
            feats: (B, T, F) features (fbank or Whisper log-mel), feat_lens: (B,); with ``encoded`` the
                encoder's cached output (B, T', D_enc) and its lengths.
            input_ids, labels, source_visible: (B, U) target rows (see :class:`speech_llm.lm.targets.Target`),
                right-padded; target_lens: (B,).
            chunk_frames: (B,) encoder frames per chunk of each utterance (the chunk its target was built
                for); default the model's chunk for all.
        """
        audio, audio_lens = self.audio_embeds(feats, feat_lens, chunk_frames, encoded)
        src, src_lens = self.source_batch(audio, audio_lens)
        logits = self.glm(src, src_lens, input_ids, target_lens, source_visible).logits
        valid = lengths_to_valid(target_lens, labels.size(1))
        loss = F.cross_entropy(logits[valid].float(), labels[valid], reduction="mean")
        return SpeechLLMOutput(loss=loss, logits=logits, num_tokens=int(valid.sum()))
