"""SpeechLLM: chunked streaming encoder -> MLP projector -> group-streaming LLM (DESIGN.md §2).

The source of an utterance is ``[prompt tokens][audio tokens][end marker tokens]`` (the framing of
:mod:`speech_llm.framing`, audio chunks as its units) and the target is built by
:mod:`speech_llm.targets`. The encoder always runs with the chunk mask of the streaming chunk
(``chunk_frames`` encoder frames, ``left_chunks`` of left context), so the audio tokens seen in training are
exactly those produced chunk by chunk at inference; each chunk gives ``chunk_frames / stack`` LLM tokens.

Training: :meth:`SpeechLLM.forward` takes a collated batch (features + per-utterance target rows) and
returns the cross-entropy on target tokens only. Inference lives in :mod:`speech_llm.recognizer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from speech_llm.framing import SpecialTokens, source_group_ends
from speech_llm.group_lm import GroupStreamingLM
from speech_llm.masks import lengths_to_valid
from speech_llm.projector import Projector


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
    def tokens_per_chunk(self) -> int:
        return self.chunk_frames // self.projector.stack

    @property
    def prompt_len(self) -> int:
        return len(self.tokens.prompt_ids)

    def audio_embeds(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T, F) -> audio tokens (B, N, D_llm) and their lengths (B,)."""
        if self.cmvn is not None:
            feats = self.cmvn(feats)
        enc, enc_lens = self.encoder(feats, feat_lens, self.chunk_frames, self.left_chunks)
        return self.projector(enc, enc_lens)

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

    def chunk_source_ends(self, num_audio_tokens: int) -> list[int]:
        """Source tokens visible after each chunk (prompt included) for one utterance
        (:func:`speech_llm.framing.source_group_ends` without the prompt's and the end marker's groups)."""
        k = self.tokens_per_chunk
        chunks = [min(k, num_audio_tokens - i) for i in range(0, num_audio_tokens, k)]
        return source_group_ends(self.prompt_len, chunks, len(self.tokens.end_ids))[1:-1]

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor,
                target_lens: torch.Tensor, source_visible: torch.Tensor) -> SpeechLLMOutput:
        """Teacher-forced loss.

        Args:
            feats: (B, T, F) fbank features, feat_lens: (B,).
            input_ids, labels, source_visible: (B, U) target rows (see :class:`speech_llm.targets.Target`),
                right-padded; target_lens: (B,).
        """
        audio, audio_lens = self.audio_embeds(feats, feat_lens)
        src, src_lens = self.source_batch(audio, audio_lens)
        logits = self.glm(src, src_lens, input_ids, target_lens, source_visible).logits
        valid = lengths_to_valid(target_lens, labels.size(1))
        loss = F.cross_entropy(logits[valid].float(), labels[valid], reduction="mean")
        return SpeechLLMOutput(loss=loss, logits=logits, num_tokens=int(valid.sum()))
