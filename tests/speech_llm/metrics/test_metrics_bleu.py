"""Corpus BLEU and chrF equal sacrebleu's own corpus functions."""

import pytest
import sacrebleu

from speech_llm.metrics.bleu import translation_scores

HYPS = ["le chat est assis sur le tapis", "il fait beau aujourd'hui", "vingt et un", ""]
REFS = ["le chat est assis sur le tapis .", "il fait très beau aujourd'hui", "vingt-et-un", "bonjour"]


def test_bleu_and_chrf_equal_sacrebleu():
    s = translation_scores(HYPS, REFS, lang="fr")
    assert s.bleu == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    assert s.chrf == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    assert 0 < s.bleu < 100
    assert "tok:13a" in s.bleu_signature and s.bleu_detail.startswith("BLEU = ")
    assert translation_scores(REFS, REFS).bleu == pytest.approx(100.0)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 hypotheses but 4 references"):
        translation_scores(HYPS[:3], REFS)
