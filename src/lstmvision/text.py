"""Text for video captioning: the PTB tokenizer that caption metrics assume, and the vocabulary that
turns captions into token ids and back.

:func:`tokenize` splits a caption into lower-case PTB words with the punctuation removed, as
pycocoevalcap's PTBTokenizer does before scoring. :class:`Vocabulary` is built from training captions
and turns captions into token ids (:meth:`Vocabulary.encode`, :func:`encode_captions`) and back
(:meth:`Vocabulary.decode`). Used by the captioning data (:mod:`lstmvision.data`), metrics and task.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["Vocabulary", "encode_captions", "tokenize"]

# The PTB tokenizer (CoreNLP 3.4.1, as pycocoevalcap runs it) on ordinary English text, as one regex over
# the original-case text: the first alternative that matches at a position wins, so the special cases
# come before the generic word. Some rules are case-sensitive because CoreNLP's are.
_ABBREVIATIONS = (
    "mr|mrs|ms|drs?|profs?|sens?|reps?|gov|lt|col|gen|adm|rev|maj|sgt|capt|mt|st|ave|pres|jr|sr|rd|"
    "blvd|bros|inc|corp|cos?|ltd|etc|vs|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|mon|tue|tues|"
    "wed|thu|thurs|fri"
)
_PTB_TOKEN = re.compile(
    r"(?<!\w)[A-HJ-XZ]'[A-Za-z]{2,}"  # O'Neil, D'Arcy: kept whole (not after I or Y)
    r"|(?<!\w)[dlno]'[a-z]{2,}"  # o'clock, l'amour, d'oh
    r"|(?<!\w)[jyJY]'(?=[A-Za-z])"  # elisions split after the apostrophe: y'all -> y' all
    r"|(?<!\w)[a-z]*[aeiouy]'[aeiou][a-z]*"  # ma'am
    r"|'n'|'n(?![\w'])"  # rock'n'roll -> rock 'n' roll
    r"|(?i:'(?:s|re|ve|ll|d|m|em)(?![^\W_]))"  # clitics: man's -> man 's
    r"|(?i:'t(?=(?:is|was)\b))"  # 'tis -> 't is
    r"|'[2-9]0s"  # '90s
    r"|(?i:n't)(?!\w)"  # the n't of don't
    r"|(?i:(?<![\w.])ph\.d\.)"
    r"|(?<![\w.])[A-Za-z](?:\.[A-Za-z])+(?!\w)\.?"  # acronyms keep their periods: u.s., a.m.
    rf"|(?i:(?<![\w.])(?:{_ABBREVIATIONS})\.)"  # mr., st., etc.
    r"|(?i:(?<![\w.])nos?\.(?=\s*\d))"  # no. 5
    r"|[A-Z]+&[A-Z]+"  # AT&T (upper case only: at&t splits)
    r"|@[A-Za-z_]\w*|\#[A-Za-z]+"  # @user, #tag
    r"|\d+(?::\d+)+"  # 3:30, 10:30:45 (12:00pm -> 12:00 pm)
    r"|\w+(?=(?i:n't)(?!\w))"  # the do of don't, ca of can't
    # a word or number: letters/digits joined by - / . (and , between digits), maybe a sign or a
    # leading decimal point: t-shirt, cat/dog, 1/2, 2.5, 1,000, -5, .5, www.x.com
    r"|(?:(?<![\w.])-?\.(?=\d)|(?<![\w.])-(?=\d))?\w+(?:(?:[-/.]|(?<=\d),(?=\d))\w+)*"
    r"|[!?]{2,}"  # !!! and ?! are tokens pycocoevalcap keeps
    r"|\S"
)
# CoreNLP splits these words in two.
_SPLIT_WORDS = {
    "cannot": ["can", "not"],
    "gonna": ["gon", "na"],
    "gotta": ["got", "ta"],
    "wanna": ["wan", "na"],
    "lemme": ["lem", "me"],
    "gimme": ["gim", "me"],
}
# Single characters pycocoevalcap drops: its list (. ? ! , : ; - ' `) plus what CoreNLP turns into a
# dropped token first (" -> `` or '', ‘ “ ” -> quotes, – — -> --, … -> ...).
_PUNCTUATION = frozenset(".,?!:;-'\"`\u2018\u201c\u201d\u2026\u2013\u2014")
# CoreNLP writes brackets as -LRB- etc. and lower-cases them; pycocoevalcap's list holds the upper-case
# -LRB- -RRB- -LCB- -RCB- only, so after -lowerCase the brackets stay in the tokenized captions.
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'"})


def tokenize(text: str, *, keep_brackets: bool = False) -> list[str]:
    """Lower-case PTB words of ``text`` with the punctuation dropped, as pycocoevalcap's PTBTokenizer
    (Stanford CoreNLP 3.4.1 with ``-lowerCase``, then its punctuation removal) gives on ordinary English.

    ``"A man's riding a horse, isn't he?"`` -> ``["a", "man", "'s", "riding", "a", "horse", "is", "n't",
    "he"]``. Clitics split off as in the Penn Treebank (``'s 're 've 'll 'd 'm n't``: ``can't`` ->
    ``ca n't``; ``cannot gonna gotta wanna`` -> ``can not``, ``gon na`` ...); hyphenated and slashed
    words (``t-shirt``, ``cat/dog``), numbers (``2.5``, ``1,000``, ``-5``, ``1/2``, ``3:30``),
    acronyms and common abbreviations with their periods (``u.s.``, ``a.m.``, ``mr.``, ``etc.``) and
    ``o'clock``, ``AT&T`` stay whole. The tokens ``. , ? ! : ; - ' " `` (and curly quotes, dashes,
    ``…``) are dropped; ``!!!``, ``?!`` and symbols such as ``& $ % /`` are kept.

    Brackets are dropped unless ``keep_brackets``: pycocoevalcap keeps them, as ``-lrb- -rrb- -lsb-
    -rsb- -lcb- -rcb-`` (its punctuation list holds only the upper-case forms), so scoring uses
    ``keep_brackets=True`` while the vocabulary does without them.

    Known differences from CoreNLP, on unusual text: URLs, e-mail addresses and SGML tags (``<b>``) are
    split at their symbols; CoreNLP's longer abbreviation list (``Messrs.``, ``Esq.`` ...) and its
    sentence-boundary guess after an abbreviation followed by a capital (``etc. The``) are not
    reproduced; ``somethin'``, ``ol'``, ``c'mon``, ``li'l`` split at or lose their apostrophe; runs such as ``a..b`` and ``__init__``
    split differently.
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    tokens: list[str] = []
    for piece in _PTB_TOKEN.findall(text.translate(_APOSTROPHES)):
        if piece in _BRACKETS:
            if keep_brackets:
                tokens.append(_BRACKETS[piece])
            continue
        if len(piece) == 1 and piece in _PUNCTUATION:
            continue
        word = piece.lower()
        tokens.extend(_SPLIT_WORDS.get(word, [word]))
    return tokens


class Vocabulary:
    """Words <-> token ids: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3, then the words.

    Args:
        words: all entries in id order, the four specials first.
    """

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
    _FORMAT = "lstmvision.vocabulary"
    _VERSION = 1

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if tuple(words[: len(self.SPECIALS)]) != self.SPECIALS:
            raise ValueError(f"Vocabulary: the first words must be {list(self.SPECIALS)}, got {words[:4]}")
        bad = [
            word for word in words if not isinstance(word, str) or not word or any(c.isspace() for c in word)
        ]
        if bad:
            raise ValueError(f"Vocabulary: words must be non-empty strings without blanks, got {bad[:5]}")
        duplicated = [word for word, count in Counter(words).items() if count > 1]
        if duplicated:
            raise ValueError(f"Vocabulary: words listed twice: {duplicated[:5]}")
        self.words: list[str] = words
        self.index: dict[str, int] = {word: i for i, word in enumerate(words)}

    @classmethod
    def build(cls, captions: Iterable[str], *, min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """The vocabulary of the (training) ``captions``: the words seen at least ``min_count`` times, by
        descending count then alphabetically, at most ``max_size`` entries in all (the specials
        included)."""
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"Vocabulary.build: min_count must be an integer >= 1, got {min_count!r}")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 4
        ):
            raise ValueError(
                f"Vocabulary.build: max_size must be an integer >= 4 (the specials) or None, got {max_size!r}"
            )
        if isinstance(captions, str):
            raise ValueError("Vocabulary.build: captions must be a list of captions, got a single string")
        counts = Counter(token for caption in captions for token in tokenize(caption))
        for special in cls.SPECIALS:
            counts.pop(special, None)
        ranked = sorted(
            (word for word, count in counts.items() if count >= min_count), key=lambda w: (-counts[w], w)
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(cls.SPECIALS)]
        return cls([*cls.SPECIALS, *ranked])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container: equal by value, not hashable

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} entries)"

    def encode(self, caption: str, max_length: int | None = None) -> list[int]:
        """``<bos>``, the ids of ``tokenize(caption)`` (``<unk>`` for unknown words), ``<eos>``; cut to
        ``max_length`` (>= 2) ids keeping the final ``<eos>``."""
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2
        ):
            raise ValueError(
                f"Vocabulary.encode: max_length must be an integer >= 2 or None, got {max_length!r}"
            )
        ids = [self.BOS, *(self.index.get(token, self.UNK) for token in tokenize(caption)), self.EOS]
        if max_length is not None and len(ids) > max_length:
            ids = [*ids[: max_length - 1], self.EOS]
        return ids

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """The words of ``ids`` joined by spaces, up to the first ``<eos>``; ``<pad>`` and ``<bos>`` are
        skipped, ``<unk>`` is written as ``<unk>``."""
        if isinstance(ids, Tensor):
            if ids.dim() != 1:
                raise ValueError(
                    f"Vocabulary.decode expects one sequence of ids (L,), got shape {tuple(ids.shape)}"
                )
            ids = ids.tolist()
        words: list[str] = []
        for token_id in ids:
            token_id = int(token_id)
            if not 0 <= token_id < len(self.words):
                raise ValueError(f"Vocabulary.decode: id {token_id} is outside [0, {len(self.words) - 1}]")
            if token_id == self.EOS:
                break
            if token_id not in (self.PAD, self.BOS):
                words.append(self.words[token_id])
        return " ".join(words)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (for checkpoints loaded with ``torch.load(weights_only=True)``)."""
        return {"format": self._FORMAT, "version": self._VERSION, "words": list(self.words)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """The vocabulary written by :meth:`to_dict`; a ValueError names what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"Vocabulary.from_dict: expected a dict, got {type(data).__name__}")
        if data.get("format") != cls._FORMAT or data.get("version") != cls._VERSION:
            raise ValueError(
                f"Vocabulary.from_dict: expected format {cls._FORMAT!r} version {cls._VERSION}, got format "
                f"{data.get('format')!r} version {data.get('version')!r}"
            )
        words = data.get("words")
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise ValueError(
                f"Vocabulary.from_dict: 'words' must be a list of strings, got {type(words).__name__}"
            )
        return cls(words)


def encode_captions(vocab: Vocabulary, captions: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
    """Token ids of ``captions`` padded with ``<pad>`` to the longest of them.

    Returns:
        ``(ids, lengths)``: a LongTensor ``(N, L)`` with ``L <= max_length`` and the lengths ``(N,)``
        (``<bos>`` and ``<eos>`` counted).
    """
    if isinstance(captions, str):
        raise ValueError("encode_captions: captions must be a list of captions, got a single string")
    encoded = [vocab.encode(caption, max_length) for caption in captions]
    lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.long)
    width = max((len(ids) for ids in encoded), default=0)
    out = torch.full((len(encoded), width), vocab.PAD, dtype=torch.long)  # (N, L)
    for row, ids in enumerate(encoded):
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out, lengths
