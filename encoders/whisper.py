"""Whisper's encoder as a chunked streaming encoder: chunk attention masks and caches, each frame encoded
once, with the Conformer's interface (:class:`encoders.conformer.ConformerEncoder`).

The weights are an HF Whisper checkpoint's encoder (by hub name such as ``openai/whisper-tiny.en`` or by
local path, e.g. a dir written by ``speech-llm convert-whisper``). Its modules are reused as they are
(``embed.conv1``, ``embed.conv2``, ``embed_positions``, ``layers.i.self_attn.{q,k,v,out}_proj``,
``layers.i.{self_attn_layer_norm,fc1,fc2,final_layer_norm}``, ``layer_norm``), so peft/LoRA targets them by
their usual names; the forward is ours::

    h = GELU(conv1(mel))            k3 s1 p1 over 10 ms log-mel frames (encoders.whisper_frontend)
    x = GELU(conv2(h)) + pos        k3 s2 p1 -> 20 ms frames; learned (sinusoid-initialised) positions
    x = x + MHSA(LN(x))             chunk attention mask (encoders.attention), q pre-scaled as in HF
    x = x + FFN(LN(x))              fc1, GELU, fc2
    out = LN(x)

**Convolutions at the edges.** Encoder frame ``j`` depends on conv1 outputs ``2j-1, 2j, 2j+1``, i.e. on
mel frames ``2j-2 .. 2j+2``: one conv1 output and one mel frame from before the chunk, two mel frames of
look-ahead. Positions before the start and from the end on are zero padding (``h[-1] = 0``,
``mel[-1] = 0``, ``mel[T] = 0``, ``h[T] = 0``), as in Whisper. Streaming keeps the last consumed mel frame
and the last conv1 output as caches (both zeros at the start, which *is* the padding), so a chunk of ``c``
frames needs ``2 (c - 1) + 3`` new mel frames and consumes ``2 c``: ``embed.stride = 2``,
``embed.receptive_field = 3``. In a padded batch, features at and after each length are treated as zeros,
so the padding of a short utterance is the same as its end; ``T`` mel frames give ``ceil(T / 2)`` encoder
frames (1500 for Whisper's 3000).

**Positions past 30 s.** Whisper has ``max_source_positions`` (1500) positions. Frame ``t`` gets position
``min(t, 1499)`` (``long_positions="clamp"``, the default), or, with ``long_positions="extend"``,
Whisper's sinusoid formula continued past the table (only for tables that are those sinusoids, which
Whisper's are: it never trains them). Either way a frame's position depends on its index only, so
streaming equals the masked forward at any length, but frames past 30 s are outside what Whisper was
trained on, and its output depends strongly on the absolute position: on espeak-ng speech, Whisper's own
decoder reading the frames of the 16 s after 30 s of audio gives ~100 % WER with either scheme, while the
same 16 s as a fresh stream gives 8.5 % (640 ms chunks, 8 left chunks). So the Recognizer must cut input
into segments of at most ~20-30 s by endpointing and start each segment from :meth:`init_states`; the
schemes only keep longer streams defined.

Streaming states (:meth:`WhisperStreamingEncoder.init_states`), plain tensors; ``B`` streams, ``N`` layers,
``H`` heads, ``Dh`` head dim:

============  ======================  ==========================================================
key           shape                   meaning
============  ======================  ==========================================================
feats         (B, L, F)               features received but not yet consumed
offset        (B,)                    encoder frames emitted so far (position of the next)
chunk_size    (B,)                    chunk size in encoder frames
left_chunks   (B,)                    left context in chunks (-1 = unlimited)
mel           (B, 1, F)               the last consumed mel frame (zeros at the start)
conv          (B, D, 1)               the last conv1 output (zeros at the start)
att_k, att_v  (N, B, H, C, Dh)        keys and values of the last C frames, right-aligned; the last
                                      ``min(offset, C)`` slots are real. C = ``left_chunks *
                                      chunk_size``, or grows with the stream when unlimited.
============  ======================  ==========================================================

The chunk loop, the states common to the streaming encoders and their stacking live in
:mod:`encoders.streaming_state`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from encoders import streaming_state
from encoders.constants import FRAME_SHIFT_MS
from encoders.streaming_state import ChunkedStreamingEncoder, States
from encoders.whisper_frontend import DEFAULT_CEILING, StreamingLogMel
from speech_common.hf import quiet_transformers

LONG_POSITIONS = ("clamp", "extend")
_SINUSOID_TOLERANCE = 1e-3  # fp16-stored tables differ from the formula by ~3e-4


def output_lengths(feat_lens: torch.Tensor | int) -> torch.Tensor | int:
    """Encoder frames for ``T`` mel frames: ``ceil(T / 2)`` ((B,) tensor or int)."""
    if isinstance(feat_lens, torch.Tensor):
        return (feat_lens.clamp_min(0) + 1) // 2
    return (max(int(feat_lens), 0) + 1) // 2


class WhisperConvEmbed(nn.Module):
    """Whisper's two convolutions as a streaming input layer: (B, T, F) mel -> (B, ceil(T/2), D).

    ``stride`` and ``receptive_field`` follow the Recognizer's arithmetic: a chunk of ``c`` frames needs
    ``stride * (c - 1) + receptive_field`` features (with the caches) and consumes ``stride * c``.
    """

    stride = 2
    receptive_field = 3

    def __init__(self, conv1: nn.Conv1d, conv2: nn.Conv1d) -> None:
        super().__init__()
        if (conv1.kernel_size, conv1.stride, conv1.padding) != ((3,), (1,), (1,)) or \
                (conv2.kernel_size, conv2.stride, conv2.padding) != ((3,), (2,), (1,)):
            raise ValueError("expected Whisper's convolutions: conv1 k3 s1 p1, conv2 k3 s2 p1")
        self.conv1, self.conv2 = conv1, conv2

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded batch: feats (B, T, F), feat_lens (B,) -> (B, ceil(T/2), D), lens (B,)."""
        t = feats.size(1)
        if t == 0:
            return feats.new_zeros(feats.size(0), 0, self.conv2.out_channels), output_lengths(feat_lens)
        valid = torch.arange(t, device=feats.device).unsqueeze(0) < feat_lens.unsqueeze(1)  # (B, T)
        x = feats.transpose(1, 2) * valid.unsqueeze(1).to(feats.dtype)  # (B, F, T)
        h = F.gelu(self.conv1(x)) * valid.unsqueeze(1).to(feats.dtype)
        return F.gelu(self.conv2(h)).transpose(1, 2), output_lengths(feat_lens)

    def forward_chunk(self, feats: torch.Tensor, mel: torch.Tensor, conv: torch.Tensor, final: bool
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One chunk against the caches.

        Args:
            feats: (B, n, F): ``n = 2c + 1`` for a whole chunk of c frames, or the last ``n <= 2c`` features
                when ``final`` (zeros follow them).
            mel: (B, 1, F) the mel frame before ``feats``; conv: (B, D, 1) the conv1 output before them.

        Returns:
            (B, c, D) frames (``c = ceil(n / 2)`` when final), the new mel and conv caches (those of the
            ``2c`` consumed features; unchanged when final).
        """
        b, n, _ = feats.shape
        if final and n == 0:
            return feats.new_zeros(b, 0, self.conv2.out_channels), mel, conv
        if final:  # the last features, then Whisper's zero padding as their right context (mel[T] = 0)
            out, _, _ = self.forward_lookahead(F.pad(feats, (0, 0, 0, 1)), mel, conv)
            return out, mel, conv
        return self.forward_lookahead(feats, mel, conv)

    def forward_lookahead(self, feats: torch.Tensor, mel: torch.Tensor, conv: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The branch-free form of :meth:`forward_chunk` (the one the ONNX export traces).

        ``feats`` (B, m + 1, F) are ``m`` features to encode and, last, their right context only (the next
        feature, or zeros after the input end). Out: the ``ceil(m / 2)`` frames (B, ceil(m/2), D) of
        conv1 over ``[mel, feats]`` and conv2 over ``[conv, h, 0]`` (``h[T] = 0`` after the end: for even
        ``m`` that zero is never read), and the caches after the ``m`` features, ``feats[:, m-1]`` and
        ``h[:, :, m-1]``. A whole chunk is ``m = 2c``; the final partial one is its ``n`` features + zeros.
        """
        x = torch.cat([mel, feats], dim=1).transpose(1, 2)  # (B, F, m + 2)
        h = F.gelu(F.conv1d(x, self.conv1.weight, self.conv1.bias))  # (B, D, m): conv1 outputs of the m features
        y = F.pad(torch.cat([conv, h], dim=2), (0, 1))
        out = F.gelu(F.conv1d(y, self.conv2.weight, self.conv2.bias, stride=2)).transpose(1, 2)
        m = feats.size(1) - 1
        return out, feats[:, m - 1:m], h[:, :, m - 1:m]


def _whisper_sinusoids(positions: torch.Tensor, channels: int) -> torch.Tensor:
    """Whisper's fixed position table, ``[sin(p / 10000^(i / (C/2 - 1))), cos(...)]``, for any positions
    (..., ) -> (..., channels) float64."""
    increment = math.log(10000.0) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float64, device=positions.device))
    angles = positions.to(torch.float64).unsqueeze(-1) * inv
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class WhisperStreamingEncoder(ChunkedStreamingEncoder):
    """Streaming Whisper encoder: (B, T, n_mels) log-mel -> (B, ceil(T/2), d_model).

    Args:
        encoder: an HF ``WhisperEncoder`` (its modules are taken over) or a ``WhisperConfig`` (random
            weights, for tests); :meth:`from_pretrained` loads one by hub name or path.
        dynamic_chunk: in training mode, ignore the ``chunk_size`` given to :meth:`forward` and draw one
            per batch: full attention with probability ``full_attention_prob``, else uniform in
            ``[1, max_dynamic_chunk]`` (WeNet's dynamic chunk training, as the Conformer).
        dynamic_left_chunks: with ``dynamic_chunk``, also draw ``left_chunks`` in ``[0, max_left_chunks]``.
        long_positions: ``"clamp"`` or ``"extend"``, positions past the table (see the module docstring).
        log_mel_ceiling: the fixed normalisation ceiling of the front end :meth:`make_frontend` builds.
    """

    STATE_BATCH_DIM = {**streaming_state.COMMON_BATCH_DIM, "mel": 0, "conv": 0}  # each key's batch dimension

    def __init__(self, encoder, dynamic_chunk: bool = False, max_dynamic_chunk: int = 25,
                 full_attention_prob: float = 0.5, dynamic_left_chunks: bool = False, max_left_chunks: int = 8,
                 long_positions: str = "clamp", log_mel_ceiling: float = DEFAULT_CEILING) -> None:
        super().__init__(dynamic_chunk, max_dynamic_chunk, full_attention_prob, dynamic_left_chunks, max_left_chunks)
        from transformers import WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        if isinstance(encoder, WhisperConfig):
            encoder = WhisperEncoder(encoder)
        if not isinstance(encoder, WhisperEncoder):
            raise TypeError(f"expected a WhisperEncoder or WhisperConfig, got {type(encoder).__name__}")
        if long_positions not in LONG_POSITIONS:
            raise ValueError(f"long_positions must be one of {LONG_POSITIONS}, got {long_positions!r}")
        config = encoder.config
        self.config = config
        self.input_dim = config.num_mel_bins
        self.output_dim = config.d_model
        self.num_heads = config.encoder_attention_heads
        self.subsampling_rate = WhisperConvEmbed.stride
        self.embed = WhisperConvEmbed(encoder.conv1, encoder.conv2)
        self.embed_positions = encoder.embed_positions.requires_grad_(False)  # fixed in Whisper (a buffer)
        self.layers = encoder.layers
        self.layer_norm = encoder.layer_norm
        self.dropout = config.dropout
        self.long_positions = long_positions
        self.log_mel_ceiling = log_mel_ceiling
        if long_positions == "extend":
            self._check_sinusoid_table()

    @classmethod
    def from_pretrained(cls, path_or_name: str, dtype: torch.dtype = torch.float32,
                        config_overrides: dict | None = None, **kwargs) -> WhisperStreamingEncoder:
        """The encoder weights of an HF Whisper checkpoint (hub name or local dir); the decoder's are skipped.

        Args:
            path_or_name: e.g. ``openai/whisper-tiny.en`` or a dir from ``speech-llm convert-whisper``.
            dtype: parameter dtype.
            config_overrides: ``WhisperConfig`` fields to change, e.g. ``{"dropout": 0.1}``.
            **kwargs: the constructor's options.

        Raises:
            ValueError: an encoder weight is missing from the checkpoint, or it holds unknown tensors.
        """
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        with quiet_transformers():
            encoder, info = WhisperEncoder.from_pretrained(
                str(path_or_name), key_mapping={r"^model\.encoder\.": ""}, dtype=dtype, output_loading_info=True,
                **(config_overrides or {}))
        missing = sorted(info["missing_keys"])
        unknown = sorted(k for k in info["unexpected_keys"]
                         if not (k.startswith("model.decoder.") or k.startswith("proj_out.")))
        mismatched = sorted(str(k) for k in info.get("mismatched_keys", []))
        if missing or unknown or mismatched:
            raise ValueError(f"{path_or_name}: not a Whisper checkpoint this encoder loads strictly: "
                             f"missing {missing[:5]}, unexpected {unknown[:5]}, mismatched {mismatched[:5]}")
        return cls(encoder, **kwargs)

    @property
    def frame_shift_s(self) -> float:
        """Seconds between two encoder frames (0.02: 10 ms mel frames, ×2)."""
        return self.subsampling_rate * FRAME_SHIFT_MS / 1000.0

    @property
    def max_positions(self) -> int:
        return self.embed_positions.num_embeddings

    def output_lengths(self, feat_lens: torch.Tensor | int) -> torch.Tensor | int:
        """Encoder frames for feature lengths (B,) or int: ``ceil(T / 2)``."""
        return output_lengths(feat_lens)

    def make_frontend(self) -> StreamingLogMel:
        """A new streaming front end that gives this encoder's features (Whisper log-mel, fixed ceiling)."""
        return StreamingLogMel(n_mels=self.input_dim, ceiling=self.log_mel_ceiling)

    # ---------------------------------------------------------------- layers
    def position_embeddings(self, positions: torch.Tensor) -> torch.Tensor:
        """(...,) long frame indices since the stream start -> (..., D) position embeddings."""
        table = self.embed_positions.weight
        last = self.max_positions - 1
        out = table[positions.clamp_max(last)]
        if self.long_positions == "extend" and (torch.jit.is_tracing() or bool((positions > last).any())):
            extra = _whisper_sinusoids(positions, self.output_dim).to(table.dtype)
            out = torch.where((positions > last).unsqueeze(-1), extra, out)
        return out

    def _check_sinusoid_table(self) -> None:
        table = self.embed_positions.weight.detach()
        formula = _whisper_sinusoids(torch.arange(table.size(0), device=table.device), table.size(1))
        diff = float((table.double() - formula).abs().max())
        if diff > _SINUSOID_TOLERANCE:
            raise ValueError(f"long_positions='extend' needs Whisper's sinusoid position table; this one differs "
                             f"from it by up to {diff:.3g}")

    def _attention(self, layer, x: torch.Tensor, mask: torch.Tensor, k_cache: torch.Tensor | None,
                   v_cache: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention of the T new frames over ``cache ++ new``: x (B, T, D), mask broadcastable to
        (B, H, T, C + T) -> out (B, T, D), keys and values (B, H, C + T, Dh)."""
        attn = layer.self_attn
        b, t, _ = x.shape
        heads = (b, t, attn.num_heads, attn.head_dim)
        q = (attn.q_proj(x) * attn.scaling).view(heads).transpose(1, 2)
        k = attn.k_proj(x).view(heads).transpose(1, 2)
        v = attn.v_proj(x).view(heads).transpose(1, 2)
        if k_cache is not None:
            k, v = torch.cat([k_cache, k], dim=2), torch.cat([v_cache, v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0,
                                           dropout_p=attn.dropout if self.training else 0.0)
        return attn.out_proj(y.transpose(1, 2).reshape(b, t, -1)), k, v

    def _layer(self, layer, x: torch.Tensor, mask: torch.Tensor, k_cache: torch.Tensor | None = None,
               v_cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One pre-norm Whisper layer (as HF's WhisperEncoderLayer, with our mask and cache)."""
        y, k, v = self._attention(layer, layer.self_attn_layer_norm(x), mask, k_cache, v_cache)
        x = x + F.dropout(y, layer.dropout, self.training)
        y = F.dropout(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))), layer.activation_dropout,
                      self.training)
        x = x + F.dropout(layer.fc2(y), layer.dropout, self.training)
        if x.dtype == torch.float16:
            bound = torch.finfo(x.dtype).max - 1000
            x = x.clamp(-bound, bound)
        return x, k, v

    def _embed_frames(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = x + self.position_embeddings(positions).to(x.dtype)  # no embed_scale: HF's encoder has none
        return F.dropout(x, self.dropout, self.training)

    # ---------------------------------------------------------------- hooks of forward / _forward_chunk
    # (forward(feats, feat_lens, chunk_size, left_chunks): the padding of feats is treated as zeros;
    # out (B, ceil(T/2), D))
    def _embed(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed(feats.to(self.embed.conv1.weight.dtype), feat_lens.to(feats.device))

    def _embed_chunk(self, feats: torch.Tensor, states: States, final: bool) -> tuple[torch.Tensor, States]:
        x, mel, conv = self.embed.forward_chunk(feats, states["mel"], states["conv"], final)
        return x, {"mel": mel, "conv": conv}

    def _positions(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self._embed_frames(x, positions), None

    def _layer_step(self, i: int, x: torch.Tensor, pos: None, mask: torch.Tensor,
                    states: States | None) -> tuple[torch.Tensor, States]:
        if states is None:
            x, _, _ = self._layer(self.layers[i], x, mask)
            return x, {}
        x, k, v = self._layer(self.layers[i], x, mask, states["att_k"][i], states["att_v"][i])
        return x, {"att_k": k, "att_v": v}

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(x)

    # ---------------------------------------------------------------- streaming
    def init_states(self, batch_size: int, chunk_size: int, left_chunks: int = -1) -> States:
        """Empty states of ``batch_size`` new streams (see the module docstring)."""
        p = self.embed.conv1.weight
        states = self._new_states(batch_size, chunk_size, left_chunks, p)
        states["mel"] = p.new_zeros(batch_size, 1, self.input_dim)
        states["conv"] = p.new_zeros(batch_size, self.output_dim, 1)
        return states


# Module-level, as the encoders are used: ``stack_states(list_of_states)``, ``unstack_states(states)``.
stack_states = WhisperStreamingEncoder.stack_states
unstack_states = WhisperStreamingEncoder.unstack_states


def build_whisper_encoder(path_or_name: str, pretrained: bool = True, dropout: float | None = None,
                          dynamic_chunk: bool = False, max_dynamic_chunk: int = 25, full_attention_prob: float = 0.5,
                          dynamic_left_chunks: bool = False, max_left_chunks: int = 8,
                          long_positions: str = "clamp",
                          log_mel_ceiling: float = DEFAULT_CEILING) -> WhisperStreamingEncoder:
    """The registry's ``"whisper"`` builder.

    Args:
        path_or_name: an HF Whisper checkpoint (hub name or local dir).
        pretrained: load its weights; False builds the same architecture from its config alone with random
            weights (for a checkpoint whose state dict is loaded next).
        dropout: Whisper's residual dropout (None keeps the checkpoint's, 0.0 for OpenAI's models).
        The rest: :class:`WhisperStreamingEncoder`'s options.
    """
    options = dict(dynamic_chunk=dynamic_chunk, max_dynamic_chunk=max_dynamic_chunk,
                   full_attention_prob=full_attention_prob, dynamic_left_chunks=dynamic_left_chunks,
                   max_left_chunks=max_left_chunks, long_positions=long_positions, log_mel_ceiling=log_mel_ceiling)
    overrides = {} if dropout is None else {"dropout": dropout}
    if pretrained:
        return WhisperStreamingEncoder.from_pretrained(path_or_name, config_overrides=overrides, **options)
    from transformers import WhisperConfig

    config = WhisperConfig.from_pretrained(str(path_or_name), **overrides)
    return WhisperStreamingEncoder(config, **options)
