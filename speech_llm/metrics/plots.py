"""Figures a person looks at to understand streaming (matplotlib, written as PNG files).

* :func:`plot_sweep` — WER against mean word emission delay, one point per decoding setting (chunk size,
  read-ahead), one curve per model, batch mode as a horizontal line; ideal delay on the left,
  computation-aware on the right.
* :func:`plot_emissions` — one utterance: its waveform with the reference word spans, and when each word
  was committed by each decoding (streaming at several chunk sizes, batch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, out_png: str | Path) -> Path:
    """Lay out, write ``out_png`` (120 dpi, parent dirs made) and close ``fig``; returns the path."""
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_sweep(curves: dict, out_png: str | Path, title: str = "") -> Path:
    """``curves``: model label -> list of :class:`speech_llm.decoding.sweep.SweepPoint`."""
    plt = _pyplot()
    asr = all(p.task == "asr" for ps in curves.values() for p in ps)
    scale, qname, dname = (100, "WER (%)", "mean word emission delay") if asr else (1, "BLEU", "average lagging")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (field, name) in zip(axes, (("delay_ideal_s", "ideal"), ("delay_ca_s", "computation-aware"))):
        for i, (label, points) in enumerate(curves.items()):
            color = colors[i % len(colors)]
            for ra, marker in ((0, "o"), (1, "s"), (2, "^")):
                pts = sorted((p for p in points if p.mode == "streaming" and p.read_ahead == ra
                              and getattr(p, field) is not None), key=lambda p: p.chunk_ms)
                if not pts:
                    continue
                x = [getattr(p, field) for p in pts]
                y = [scale * p.quality for p in pts]
                ax.plot(x, y, marker=marker, color=color, linestyle="-" if ra == 0 else "--",
                        label=f"{label}, read-ahead {ra}")
                for p, xi, yi in zip(pts, x, y):
                    ax.annotate(f"{p.chunk_ms}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8,
                                color=color)
            for p in points:
                if p.mode == "batch":
                    ax.axhline(scale * p.quality, color=color, linestyle=":", linewidth=1.2,
                               label=f"{label}, batch ({scale * p.quality:.1f})")
        ax.set_xlabel(f"{dname}, {name} (s)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(qname)
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(title or f"{qname} against latency: one checkpoint, decoded at several chunk sizes (ms)")
    return _save(plt, fig, out_png)


def _same_time_groups(words: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Consecutive words committed at the same moment as one label: ``[("call alice", 1.28), ...]``."""
    groups: list[tuple[str, float]] = []
    for w, s in words:
        if groups and groups[-1][1] == s:
            groups[-1] = (groups[-1][0] + " " + w.lower(), s)
        else:
            groups.append((w.lower(), s))
    return groups


def plot_emissions(samples: np.ndarray, sample_rate: int, ref_words: list[tuple[str, float, float]],
                   decodes: dict[str, list[tuple[str, float]]], out_png: str | Path, title: str = "") -> Path:
    """One utterance (``samples`` at ``sample_rate``), its reference words ``(word, start_s, end_s)``
    shaded over the waveform, and for each decoding (label -> ``(word, committed at s)``) a row of markers
    at the moment each word was committed, with the word written next to it."""
    plt = _pyplot()
    rows = len(decodes)
    fig, axes = plt.subplots(1 + rows, 1, figsize=(13, 2.2 + 1.1 * rows), sharex=True,
                             gridspec_kw={"height_ratios": [2.2] + [1] * rows})
    t = np.arange(len(samples)) / sample_rate
    duration = len(samples) / sample_rate
    wave = axes[0]
    wave.plot(t, samples, linewidth=0.4, color="0.3")
    for i, (w, start, end) in enumerate(ref_words):
        wave.axvspan(start, end, color="C0" if i % 2 else "C1", alpha=0.18)
        wave.text((start + end) / 2, 0.92, w.lower(), transform=wave.get_xaxis_transform(), ha="center",
                  fontsize=8, rotation=30)
    wave.set_ylabel("waveform")
    wave.set_yticks([])
    for ax, (label, words) in zip(axes[1:], decodes.items()):
        groups = _same_time_groups(words)
        ax.scatter([s for _, s in groups], [0.5] * len(groups), marker="v", color="C3", zorder=3)
        for k, (text, s) in enumerate(groups):
            ax.text(s, 0.62 if k % 2 else 0.2, text, fontsize=8, ha="right", rotation=0)
        for _, _, end in ref_words:
            ax.axvline(end, color="0.85", linewidth=0.8, zorder=1)
        ax.axvline(duration, color="k", linewidth=1.0)
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    axes[-1].set_xlabel("time (s): reference words shaded above; markers = when each word was committed")
    axes[-1].set_xlim(0, max([duration] + [s for ws in decodes.values() for _, s in ws]) + 0.2)
    fig.suptitle(title, fontsize=10)
    return _save(plt, fig, out_png)
