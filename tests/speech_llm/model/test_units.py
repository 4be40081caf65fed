"""CTC units: characters and BPE, encoding, alignment pieces, files."""

from __future__ import annotations

import pytest

from speech_common.errors import UserError
from speech_llm.model.units import BLANK_ID, UNK_ID, build_units, load_units, units_file_name

TEXTS = ["HELLO WORLD", "THE CAT SAT ON THE MAT", "A DOG AND A CAT"]


def test_char_units_encode_decode_and_separator():
    units = build_units("char", TEXTS)
    assert units.symbols[:3] == ["<blank>", "<unk>", "|"]
    ids = units.encode("HELLO  WORLD")  # repeated spaces collapse
    assert units.decode(ids) == "HELLO WORLD"
    assert ids.count(units.sep_id) == 1 and BLANK_ID not in ids
    assert units.encode("HÉ") == [units.symbols.index("H"), UNK_ID]


def test_char_word_pieces_interleave_separators():
    units = build_units("char", TEXTS)
    pieces, where = units.word_pieces(["A", "CAT"])
    assert pieces == [units.encode("A"), [units.sep_id], units.encode("CAT")]
    assert where == [0, 2]
    # the pieces joined are exactly the CTC target the model was trained on
    assert [u for p in pieces for u in p] == units.encode("A CAT")


def test_bpe_units_words_encode_the_same_alone_and_in_context():
    units = build_units("bpe", TEXTS * 10, bpe_vocab_size=60)
    assert units.vocab_size <= 60
    pieces, where = units.word_pieces(["THE", "CAT", "SAT"])
    assert [u for p in pieces for u in p] == units.encode("THE CAT SAT")
    assert where == [0, 1, 2]
    assert units.decode(units.encode("THE CAT SAT")) == "THE CAT SAT"


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_units_file_round_trip(tmp_path, kind):
    units = build_units(kind, TEXTS * 10, bpe_vocab_size=60)
    path = tmp_path / units_file_name(kind)
    units.save(path)
    again = load_units(path, kind)
    assert again.vocab_size == units.vocab_size
    assert again.encode("THE DOG SAT") == units.encode("THE DOG SAT")


def test_units_file_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="units file not found: .*nope.txt"):
        load_units(tmp_path / "nope.txt", "char")
    bad = tmp_path / "bad.txt"
    bad.write_text("a\nb\n")
    with pytest.raises(UserError, match="bad.txt: not a char units file"):
        load_units(bad, "char")
    with pytest.raises(UserError, match="bad.txt: not a BPE units file"):
        load_units(bad, "bpe")
