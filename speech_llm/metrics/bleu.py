"""Corpus BLEU and chrF with sacrebleu (one reference per sentence, detokenized text as written).

sacrebleu's defaults apply: BLEU with its standard tokenizer for the target language (``13a`` for
French and most languages, ``zh``/``ja-mecab``/``ko-mecab`` for those), case-sensitive, exponential
smoothing; chrF2 (character 6-grams, beta 2). The signature strings say exactly what was computed, so
scores can be compared across papers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF


@dataclass(frozen=True)
class TranslationScores:
    """Corpus scores (0..100) with sacrebleu's signatures and BLEU's detail line."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    bleu_detail: str     # "BLEU = 31.2 62.0/38.1/25.3/17.0 (BP = 0.98 ratio = 0.98 hyp_len = ... )"

    def as_dict(self) -> dict:
        return {"bleu": round(self.bleu, 4), "chrf": round(self.chrf, 4), "bleu_detail": self.bleu_detail,
                "bleu_signature": self.bleu_signature, "chrf_signature": self.chrf_signature}


def translation_scores(hyps: Sequence[str], refs: Sequence[str],
                       lang: str | None = None) -> TranslationScores:
    """Corpus BLEU and chrF of ``hyps`` against ``refs`` (same order, one reference each).

    Args:
        hyps: system outputs; an empty string for a missing output.
        refs: references.
        lang: target language code (``"fr"``), picks sacrebleu's tokenizer for that language.
    """
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    bleu = BLEU(trg_lang=lang or "")
    chrf = CHRF()
    b = bleu.corpus_score(list(hyps), [list(refs)])
    c = chrf.corpus_score(list(hyps), [list(refs)])
    return TranslationScores(bleu=b.score, chrf=c.score, bleu_signature=str(bleu.get_signature()),
                             chrf_signature=str(chrf.get_signature()), bleu_detail=str(b))
