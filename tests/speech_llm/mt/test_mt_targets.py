"""Word groups and wait-k training targets of simultaneous text translation (speech_llm.mt)."""

import pytest
import torch

from speech_common.errors import UserError
from speech_llm.model.tiny_llm import train_tokenizer
from speech_llm.mt import (
    SourceGroups,
    collate_targets,
    make_framing,
    source_groups,
    split_words,
    target_word_tokens,
    wait_k_target,
    word_start_table,
    words_read,
)

TEXTS = ["TURN ON THE LIGHT IN THE KITCHEN", "Allume la lumière dans la cuisine",
         "OPEN THE BOX", "Ouvre la boîte"] * 10


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(TEXTS, vocab_size=300, out_dir=tmp_path_factory.mktemp("mt_tok"))


def test_source_groups_prompt_first_words_with_leading_space(tok):
    framing = make_framing(tok, "Translate:\n")
    src = source_groups(tok, framing, "OPEN  THE BOX")
    assert src.words == ["OPEN", "THE", "BOX"]
    assert src.ends[0] == len(framing.prompt_ids) and list(framing.prompt_ids) == src.ids[:src.ends[0]]
    assert len(src.ends) == 4 and src.ends[-1] == len(src.ids)
    pieces = [tok.decode(src.ids[a:b]) for a, b in zip(src.ends[:-1], src.ends[1:])]
    assert pieces == ["OPEN", " THE", " BOX" + tok.eos_token]           # the end marker comes with word n
    assert src.ids[-1] == framing.eos_id and framing.bos_id == framing.eos_id  # no bos: eos starts the target
    with pytest.raises(UserError, match="empty source"):
        source_groups(tok, framing, "   ")


def test_word_start_rule_finds_the_reference_words_again(tok):
    starts = word_start_table(tok)
    assert starts.shape == (len(tok),)
    assert bool(starts[tok.convert_tokens_to_ids("Ġ")]) and not starts[tok.eos_token_id]
    words = target_word_tokens(tok, "Allume la lumière  dans", starts)
    assert [tok.decode(w) for w in words] == ["Allume", " la", " lumière", " dans"]
    flat = [t for w in words for t in w]
    assert split_words(flat, starts) == words
    # the first written token always opens word 1, even with a leading space
    assert split_words(words[1] + words[2], starts) == [words[1], words[2]]


def test_words_read_is_pure_wait_k():
    assert [words_read(j, 2, 4) for j in range(1, 6)] == [2, 3, 4, 4, 4]
    assert [words_read(j, None, 4) for j in range(1, 3)] == [4, 4]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be"):
            words_read(1, bad, 4)


def test_wait_k_target_matches_the_documented_example():
    src = SourceGroups(ids=list(range(7)), ends=[2, 3, 5, 7], words=["a", "b", "c"])
    A1, A2, B1, C1, BOS, EOS = 11, 12, 13, 14, 1, 2
    t = wait_k_target(src, [[A1, A2], [B1], [C1]], 1, bos_id=BOS, eos_id=EOS)
    assert t.input_ids == [BOS, A1, A2, B1, C1]
    assert t.labels == [A1, A2, B1, C1, EOS]
    assert t.source_visible == [3, 3, 3, 5, 7]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_wait_k_rows_see_min_k_plus_j_minus_1_words_and_eos_sees_all(k):
    """Rule per input token: the bos row and the rows of word j see min(k + j - 1, n) words; the eos row all."""
    n = 4
    ends = [3, 5, 6, 9, 11]                                   # prompt 3 tokens; words of 2, 1, 3, 2 (+ end)
    src = SourceGroups(ids=list(range(ends[-1])), ends=ends, words=list("abcd"))
    words = [[100], [101, 102], [103], [104, 105, 106], [107]]  # 5 target words (longer than the source)
    t = wait_k_target(src, words, k, bos_id=1, eos_id=2)
    word_of_input = [1] + [j for j, w in enumerate(words, start=1) for _ in w]   # bos belongs to word 1
    want = [ends[min(k + j - 1, n)] for j in word_of_input[:-1]] + [ends[n]]
    assert t.source_visible == want
    assert t.labels[-1] == 2 and len(t.input_ids) == len(t.labels) == 9


def test_short_target_eos_still_sees_the_whole_source():
    src = SourceGroups(ids=list(range(8)), ends=[2, 3, 4, 5, 8], words=list("abcd"))
    t = wait_k_target(src, [[10], [11]], 1, bos_id=1, eos_id=2)
    assert t.source_visible == [3, 3, 8]                      # word 2 would see 2 words; its eos row sees all
    cut = wait_k_target(src, [[10], [11]], 1, bos_id=1, eos_id=2, add_eos=False)
    assert cut.labels == [10, 11] and cut.source_visible == [3, 3]


def test_k_at_least_source_length_is_batch_mode():
    src = SourceGroups(ids=list(range(6)), ends=[2, 4, 6], words=["a", "b"])
    words = [[10, 11], [12], [13]]
    batch = wait_k_target(src, words, None, bos_id=1, eos_id=2)
    assert batch.source_visible == [6] * 5
    assert wait_k_target(src, words, 2, bos_id=1, eos_id=2) == batch
    assert wait_k_target(src, words, 1, bos_id=1, eos_id=2) != batch


def test_collate_pads_sources_and_targets():
    s1 = SourceGroups(ids=[5, 6, 7], ends=[1, 3], words=["a"])
    s2 = SourceGroups(ids=[5, 8, 9, 9, 7], ends=[1, 3, 5], words=["a", "b"])
    t1 = wait_k_target(s1, [[10]], 1, bos_id=1, eos_id=2)
    t2 = wait_k_target(s2, [[10], [11], [12]], 1, bos_id=1, eos_id=2)
    b = collate_targets([s1, s2], [t1, t2])
    assert b["source_ids"].tolist() == [[5, 6, 7, 0, 0], [5, 8, 9, 9, 7]]
    assert b["source_lens"].tolist() == [3, 5] and b["target_lens"].tolist() == [2, 4]
    assert b["labels"].tolist() == [[10, 2, -100, -100], [10, 11, 12, 2]]
    assert b["input_ids"].tolist() == [[1, 10, 0, 0], [1, 10, 11, 12]]
    assert b["source_visible"].tolist() == [[3, 3, 0, 0], [3, 3, 5, 5]]
    assert b["labels"].dtype == torch.long
