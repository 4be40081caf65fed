"""CTC output units: characters, or BPE pieces trained with ``tokenizers``; saved to and loaded from a file.

Both kinds reserve id 0 for the CTC blank and id 1 for unknown symbols.

* ``char`` (file: one unit per line, UTF-8): ``<blank>``, ``<unk>``, ``|`` (the word separator, spoken
  as the space between words), then every character of the training text, sorted. ``"HI YOU"`` ->
  ``H I | Y O U``.
* ``bpe`` (file: a ``tokenizers`` JSON): SentencePiece-style pieces, each word starting with ``▁``
  (Metaspace), so a word is encoded the same alone and in context; no separator unit is needed.

For forced alignment, :meth:`Units.word_pieces` gives the unit sequence split into pieces (the words,
and for ``char`` the separators between them) and which piece is which word, so the alignment follows
exactly the path the CTC model was trained on.

Usage:
    units = build_units("char", texts)          # or "bpe", vocab_size=256
    units.save("data/units.txt"); units = load_units("data/units.txt", "char")
    ids = units.encode("HELLO WORLD"); units.decode(ids) == "HELLO WORLD"
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from data_prep.fileutil import atomic_write_text
from speech_common.errors import UserError

BLANK = "<blank>"
UNK = "<unk>"
WORD_SEP = "|"
BLANK_ID = 0
UNK_ID = 1


class Units:
    """Base class: a unit inventory with ``blank = 0`` and ``<unk> = 1``."""

    kind: str = ""

    @property
    def blank(self) -> int:
        return BLANK_ID

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """A transcript -> unit ids (CTC targets)."""
        raise NotImplementedError

    def word_pieces(self, words: list[str]) -> tuple[list[list[int]], list[int]]:
        """Unit pieces of a word sequence for forced alignment, and the piece index of each word."""
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        """Unit ids (blanks already removed) -> text."""
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        raise NotImplementedError


class CharUnits(Units):
    """Characters plus the word separator ``|`` (see the module docstring)."""

    kind = "char"

    def __init__(self, symbols: list[str]):
        if symbols[:3] != [BLANK, UNK, WORD_SEP]:
            raise ValueError(f"char units must start with {BLANK}, {UNK}, {WORD_SEP}; got {symbols[:3]}")
        self.symbols = list(symbols)
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self.sep_id = self._index[WORD_SEP]

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharUnits:
        chars = {c for text in texts for c in text if not c.isspace()}
        chars.discard(WORD_SEP)
        return cls([BLANK, UNK, WORD_SEP, *sorted(chars)])

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def _word(self, word: str) -> list[int]:
        return [self._index.get(c, UNK_ID) if c != WORD_SEP else UNK_ID for c in word]

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for i, word in enumerate(text.split()):
            if i:
                ids.append(self.sep_id)
            ids += self._word(word)
        return ids

    def word_pieces(self, words: list[str]) -> tuple[list[list[int]], list[int]]:
        pieces: list[list[int]] = []
        where: list[int] = []
        for i, word in enumerate(words):
            if i:
                pieces.append([self.sep_id])
            where.append(len(pieces))
            pieces.append(self._word(word))
        return pieces, where

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            s = self.symbols[i] if 0 <= i < len(self.symbols) else UNK
            out.append(" " if i == self.sep_id else s)
        return " ".join("".join(out).split())

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, "".join(s + "\n" for s in self.symbols))

    @classmethod
    def load(cls, path: str | Path) -> CharUnits:
        symbols = Path(path).read_text(encoding="utf-8").splitlines()
        if symbols[:3] != [BLANK, UNK, WORD_SEP]:
            raise UserError(f"{path}: not a char units file "
                            f"(its first lines must be {BLANK}, {UNK}, {WORD_SEP})")
        return cls(symbols)


class BpeUnits(Units):
    """BPE pieces with a Metaspace pre-tokenizer (``▁`` marks a word start)."""

    kind = "bpe"

    def __init__(self, tokenizer):
        self.tok = tokenizer
        if tokenizer.token_to_id(BLANK) != BLANK_ID or tokenizer.token_to_id(UNK) != UNK_ID:
            raise ValueError(f"BPE units must have {BLANK} = {BLANK_ID} and {UNK} = {UNK_ID}")

    @classmethod
    def from_texts(cls, texts: Iterable[str], vocab_size: int) -> BpeUnits:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BLANK, UNK], show_progress=False)
        tok.train_from_iterator((t for t in texts if t.strip()), trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(" ".join(text.split())).ids

    def word_pieces(self, words: list[str]) -> tuple[list[list[int]], list[int]]:
        return [self.tok.encode(w).ids for w in words], list(range(len(words)))

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids if i != BLANK_ID]).strip()

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.tok.to_str())

    @classmethod
    def load(cls, path: str | Path) -> BpeUnits:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_str(Path(path).read_text(encoding="utf-8"))
        except Exception as e:  # tokenizers raises a bare Exception on bad JSON
            raise UserError(f"{path}: not a BPE units file (a tokenizers JSON): {e}") from None
        try:
            return cls(tok)
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None


def build_units(kind: str, texts: Iterable[str], bpe_vocab_size: int = 256) -> Units:
    """Units of ``kind`` (``char`` or ``bpe``) learned from ``texts``."""
    if kind == "char":
        return CharUnits.from_texts(texts)
    if kind == "bpe":
        return BpeUnits.from_texts(texts, bpe_vocab_size)
    raise UserError(f"ctc.units: unknown unit kind {kind!r} (choose 'char' or 'bpe')")


def load_units(path: str | Path, kind: str) -> Units:
    """Read units of ``kind`` from ``path`` (as written by :meth:`Units.save`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"units file not found: {path}")
    if kind == "char":
        return CharUnits.load(path)
    if kind == "bpe":
        return BpeUnits.load(path)
    raise UserError(f"ctc.units: unknown unit kind {kind!r} (choose 'char' or 'bpe')")


def units_file_name(kind: str) -> str:
    """File name of the units inside a checkpoint: ``units.txt`` (char) or ``units.json`` (bpe)."""
    return "units.json" if kind == "bpe" else "units.txt"

