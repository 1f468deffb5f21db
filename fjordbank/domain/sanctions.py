"""Screening against a sanctions list (EU Financial Sanctions Files): onboarding customers
(persons, with their birth dates) and the payers of payments from other banks (persons and
enterprises, by name only: `SanctionsList.screen_counterparty`).

Pure functions and value objects, standard library only: no network, no file system, no clock.

Input format: the EU consolidated financial sanctions list ("FSF", XML export v1.1), root
``export`` in namespace :data:`FSF_NS`. Per ``sanctionEntity`` (attribute ``logicalId``) this
module reads ``subjectType/@code`` (``"person"``, or ``"enterprise"`` when asked for),
every ``nameAlias`` (``@wholeName``, else ``@firstName @middleName @lastName``), every
``birthdate`` (``@birthdate`` as ``YYYY-MM-DD``, else ``@year`` alone) and the first
``regulation/@programme``. Parsing is defensive: input is limited to :data:`MAX_XML_BYTES`;
any DTD (DOCTYPE), entity or notation declaration aborts parsing before it takes effect (no
XXE, no "billion laughs", nothing fetched). Anything malformed raises
:class:`InvalidSanctionsList`.

Name normalisation (:func:`normalize_name`): NFKC, casefold, Norwegian/German letters mapped
first (``æ->ae``, ``ø->o``, ``å->a``, ``ß->ss``, plus a few letters NFKD cannot decompose
such as ``ł``, ``đ``, ``þ``, ``œ``), accents stripped (NFKD, combining marks dropped),
apostrophes and modifier letters (Unicode category Lm: ``ʼ``, ``ʻ``, ``ː``) dropped
(``O'Neil -> oneil``), every other non-letter/digit is a separator; then the ASCII spellings
of æ, ø, å, ü folded with them (``ae``/``aa -> a``, ``oe -> o``, ``ue -> u``: "Oedegaard"
is "Ødegård", "Mueller" "Müller"); tokens are sorted. Two names are *equal* when their
normalised forms are equal, i.e. their token multisets are equal: ``"Lastname, Firstname"``
equals ``"Firstname Lastname"``. Cyrillic and Greek letters that look like Latin ones are
read as those (``о -> o``, a skeleton in the sense of Unicode TR39), and so are digits
written for letters (``0 1 3 4 5 7 8 -> o i e a s t b``), on both sides, so a Latin name
spelled with a few of them is still equal to its alias. Other scripts (Arabic, ...) are
kept as they are (accents stripped); the list carries transliterated aliases for those.

A name is screened in several readings: its words broken at every mark (`written_words`:
spaces, hyphens, dots, any other punctuation), and those pieces joined again
(:func:`name_readings`: each word as written without its marks, each two neighbouring
pieces as one, all of them as one; and, by the screening, any runs of neighbouring pieces
that the list has a word for), so "Drazhen-ko", "Dra_zhenko", "Drazhen ko" and "Dra zhen
ko" are equal to "Drazhenko", and "Bori slav Drazh enko" to "Borislav Drazhenko". The
list's aliases are read so too. Each entry's best score over every reading counts.

Name similarity (:func:`name_similarity`, 0..1), on token multisets:

1. Tokens are aligned one-to-one, exact matches first; a remaining pair may align when its
   Damerau-Levenshtein distance is 1 (one substitution, insertion, deletion or adjacent
   transposition) and the longer token has at least 4 and the shorter at least 3 letters.
   Token similarity is ``1 - distance / len(longer token)``.
2. ``base = sum(token similarities) / max(len(query), len(alias))``.
   An initial (a one-letter token) left over on either side aligns to a left-over token
   of the other beginning with it, with a similarity of :data:`INITIAL_SIMILARITY` (0.8),
   when an equal token of three letters or more aligned too: "B. Drazhenko" is 0.9 of
   "Borislav Drazhenko", "K. A. Volkhantsev" 0.87 of "Kazimir Andreevich Volkhantsev".
3. Omitted middle name: when one side has exactly one token more, the shorter side has at
   least 2 tokens and *all* of them aligned, the score is also
   ``0.9 * sum / len(shorter)``; the higher of the two counts. The list's aliases are also
   read with their words run together and such a word left out (an enterprise's legal
   forms, a person's middle name: "NordkappPhantomTrading", "KazimirVolkhantsev"), and an
   enterprise's without its legal forms as written ("Glacierline" for "Glacierline AS"),
   each such reading scoring 0.9 of what it would as a name of its own; a legal form
   written onto a long word of the name screened ("...TradingLtd") is left out of it too.
4. A listed name within a longer name (:func:`contained_similarity`, the screening's and
   not :func:`name_similarity`'s): when the name screened holds every word of an alias's
   *core* (:func:`screening_core`), in any order and with any number of other words
   between or around them, the score is also ``0.9 * sum / len(core)`` (each core word
   aligned to a word of its own, as in 1.; one a letter off scores less). So
   "Ivan Sergeyevich Petrov Jr", "Kari Hansen c/o Ivan Petrov" and "Nordic Consulting
   Holding AS avd. Oslo" are reviewed against a listed "Ivan Petrov" and "Nordic
   Consulting Holding AS" (0.9). The core is the alias's words, but for an enterprise
   without its legal forms (:data:`LEGAL_FORMS`: AS, ASA, ANS, DA, Ltd, GmbH, OOO, ...) and
   single letters (the "A" and "S" of "A/S", "& Co"), so "Nordic Consulting Holding" and
   "... ASA" hold it too. A person's initial stays in the core and is held by any word
   beginning with it ("Oleg P. Strelnikov" by "Oleg Petrovich Strelnikov Trading"). An
   alias with fewer than :data:`MIN_CORE_WORDS` (2) core words of two letters or more
   (a one-word name, "Glacierline AS", "A. B. Gorlovka") has no core: it is not looked
   for within longer names, as a common word would otherwise match half the names paid.
   Filler in the name screened ("c/o", "v/", "avd.", "filial") needs no list: it is only
   more words around the listed ones. A name is looked for so only when it has every core
   word's index key (itself or a one-letter variant: a set test per candidate the index
   finds), so the rule costs no scan of the list.

So ``"Ivan Petrow"`` vs ``"Ivan Petrov"`` scores 0.92, ``"Ivan Petrov"`` vs
``"Ivan Sergeyevich Petrov"`` 0.9, a lone shared first name 0.5 at most.

Outcomes (:func:`screen_person`), per list entry using its best alias:

* ``hit``: a name equal to an alias (score 1.0) AND the birth date equal to one of the
  entry's dates, or its year equal to one of the entry's year-only birth records.
  When only the year is known to be true (``year_only``: a D-number), a listed date in
  that year counts as unknown birth data, not as a mismatch.
* ``review``: an equal name whose birth data differs or is unknown (the list entry has none,
  or the customer's date was not given); or a similarity >= :data:`REVIEW_THRESHOLD` (0.85)
  with matching or unknown birth data.
* ``clear`` otherwise; in particular a similar (not equal) name with a *different* birth
  date is clear, and a single shared token (a common first name) never scores above 0.5.

A listed name within a longer one (4.) scores below 1.0: a review at most, never a hit,
for a customer as for a payment's counterparty.

The outcome of a screening is the most severe one over all entries; ``matches`` lists the
entries that gave ``hit`` or ``review``, best first.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal, NamedTuple

from fjordbank.domain import safexml
from fjordbank.domain.errors import DomainError

FSF_NS = "http://eu.europa.ec/fpi/fsd/export"
MAX_XML_BYTES = 128 * 1024 * 1024
# The EU list has a few thousand entities of some tens of elements each; this bounds the
# tree to about 600 MB whatever the file holds (fjordbank.domain.safexml). Attributes
# count with the elements: the list has about 6.5 per element (the repository's sample:
# 412 on 63 elements), about 44 of both per kB, so a list of 25 MB about 1.1 million.
MAX_XML_ELEMENTS = 3_000_000
REVIEW_THRESHOLD = 0.85
PARTIAL_FACTOR = 0.9
MIN_FUZZY_LONGER = 4
MIN_FUZZY_SHORTER = 3
# An initial aligned to a word it begins with (`name_similarity`), only beside a word of three
# letters or more that is equal: "B. Drazhenko" is 0.9 of a listed "Borislav Drazhenko" (a
# review), "K. A. Volkhantsev" 0.87 of "Kazimir Andreevich Volkhantsev"; never 1 (a hit).
INITIAL_SIMILARITY = 0.8
# ... and only beside an equal word that fewer than this many of the list's entries have: an
# initial beside "Ali", "Ahmed", "Hassan" or "Mohammed" matched tens of listed names each, and
# every payee "M. Ali" was held for an officer (found in review, 2026-12-07, on a made-up
# list the EU's size). The bank's compliance officers tune it against the list they hold.
FREQUENT_WORD_ENTRIES = 20
# A legal form written onto a word is left out only when at least this much is left (and the
# list has the rest as a word: `SanctionsList._without_legal_forms`): "Thomas" is no "Thom".
MIN_STRIPPED_WORD = 8
MIN_CORE_WORDS = 2  # a listed name is looked for within longer names only with this many words
# Legal forms of enterprises (normalised), left out of a listed enterprise's name when it is
# looked for within a longer name: Norwegian and Nordic, English, German, Dutch, French,
# Spanish, Italian, Portuguese, Polish, Russian and Ukrainian (as the list transliterates
# them, or as Cyrillic reads through the look-alikes: ООО -> ooo, ТОВ -> tob), Asian.
LEGAL_FORMS = frozenset(
    """
    as asa ans da ks sa enk nuf iks sf kf ba bl
    ab hb kb oy oyj aps ivs amba
    ltd limited plc llc llp lp inc incorporated corp corporation co company
    gmbh mbh ag kg ohg ug ev se
    bv nv bvba vof
    sarl sas sasu sca snc srl spa sl sc sapa lda ltda
    sp zoo
    ooo oao zao pao ao jsc ojsc cjsc pjsc tov tob
    pte pty bhd sdn kk fze fzco fzc wll spc
    """.split()
)

PERSON, ENTERPRISE = "person", "enterprise"  # subjectType/@code
PERSONS = (PERSON,)  # what onboarding screens a customer against
EVERYONE = (PERSON, ENTERPRISE)  # what a payment's counterparty is screened against
Outcome = Literal["clear", "review", "hit"]
_SEVERITY: dict[str, int] = {"clear": 0, "review": 1, "hit": 2}


class InvalidSanctionsList(DomainError):
    """A sanctions list file is malformed, hostile (DTD/entities) or not an EU FSF export."""

    code = "invalid_sanctions_list"


# The screening rules' version: changed with any change to what a name and birth date are
# found to be (the thresholds, the containment rule, the alignment), and part of a list's
# `version`. A deploy with new rules then screens every customer again, against the whole
# list (fjordbank.service_layer.rescreening: the baseline's ``rules``): before, the list's
# version was its entries' alone, so customers screened clear under the old rules were never
# screened under the new ones against an entry that did not change (found in review,
# 2026-12-06, after the containment rule). tests/unit/test_sanctions_rules_version.py fails
# when the outcomes change and this does not.
# 2026-12-07: words split anywhere, modifier letters, oe/aa, digits for letters (found in review).
# 2026-12-07b: words run together with a legal form or a middle name left out, initials for
# names but beside the list's frequent words, an initial with a middle name left out (found
# in review).
RULES = "2026-12-07b"

MIN_KEPT = 0.5  # a new list with fewer entries than this share of the one in use is refused


def shrunk_too_far(entries: int, in_use: int) -> bool:
    """A new list of ``entries`` against one of ``in_use``: none, or under `MIN_KEPT` of
    it, is a truncated export or a wrong file, not the sanctions regime changing overnight
    (screening against it would pass those it lost)."""
    return entries == 0 or entries < MIN_KEPT * in_use


@dataclass(frozen=True)
class SanctionedEntity:
    """A listed person, or (``subject`` `ENTERPRISE`) an enterprise, which has no birth data."""

    entity_id: str
    names: tuple[str, ...]
    birth_dates: tuple[date, ...]
    birth_years: tuple[int, ...]
    programme: str | None
    subject: str = "person"


class ScreeningMatch(NamedTuple):
    entity_id: str
    alias: str
    score: float
    verdict: Outcome = "review"  # this entry's own: "hit" (the name and birth date) or "review"


@dataclass(frozen=True)
class ScreeningResult:
    outcome: Outcome
    matches: tuple[ScreeningMatch, ...] = ()


# ------------------------------------------------------------------ normalisation

_PRE_MAP = str.maketrans(
    {
        "æ": "ae",
        "ø": "o",
        "å": "a",
        "ß": "ss",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "œ": "oe",
        "ı": "i",
        "ħ": "h",
        "ŧ": "t",
        # letters of real names NFKD cannot decompose either (Sami ŋ, ʒ and ǥ, as in Skolt
        # Sami ǯ; Azerbaijani ə; Greenlandic ĸ): without them such a name could not be
        # screened, and onboarding refuses a Latin letter that is not read as a-z
        # (`reads_as_latin`)
        "ŋ": "n",
        "ʒ": "z",
        "ǥ": "g",
        "ə": "e",
        "ǝ": "e",
        "ĸ": "k",
        # the African reference alphabet's (Ewe, Akan, Hausa, Yoruba names)
        "ɛ": "e",
        "ɔ": "o",
        "ɖ": "d",
        "ƒ": "f",
        "ɣ": "g",
        "ʋ": "v",
        "ɓ": "b",
        "ɗ": "d",
        "ƙ": "k",
        "ƴ": "y",
    }
)
_APOSTROPHES = frozenset("'’ʼ`´‘")
# Cyrillic and Greek letters that look like Latin ones (after casefolding), read as the Latin
# letter they imitate: a skeleton in the sense of Unicode TR39, for the scripts a Latin name
# can be spelled in to pass for another. Both the list's aliases and the screened name are
# read through it, so a name written wholly in Cyrillic still equals its Cyrillic alias.
_LOOK_ALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a",
        "в": "b",
        "е": "e",
        "ѕ": "s",
        "і": "i",
        "ј": "j",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "п": "n",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "һ": "h",
        "ԁ": "d",
        "ӏ": "l",
        "ԛ": "q",
        "ԝ": "w",
        # Greek
        "α": "a",
        "β": "b",
        "ε": "e",
        "ι": "i",
        "κ": "k",
        "μ": "m",
        "ν": "n",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ζ": "z",
    }
)
# Digits written for the letters they look like ("B0r1slav Drazhenk0"), read as those letters
# on both sides, as the Cyrillic and Greek look-alikes are: kept as digits, two of them in a
# word were two edits, more than the one a word may be off, and the listed name was clear
# (found in review, 2026-12-07). 1 is read as i, not l: it stands for either (I and l), and i
# is the more common letter in names (Ivan, Ali, Ibrahim, Borislav); a 1 written for an l is
# then one letter off, which a word of four letters or more may be.
_DIGIT_LOOK_ALIKES = str.maketrans("0134578", "oieastb")
# The ASCII spellings of æ, ø, å, ä, ö, ü (ae, oe, aa, ae, oe, ue), folded with the letters
# themselves to one canonical letter on both sides: æ/ae -> a, ø/oe -> o, å/aa -> a, ü/ue -> u
# (ä, ö and ü lose their dots to NFKD). ø read as o and å as a while "oe" and "aa" stayed, a
# listed "Sølvi Marte Ødegård" written the usual ASCII way, "Soelvi Marte Oedegaard", was
# two and three letters off and screened clear (found in review, 2026-12-07). The rewriting
# has one result whatever the order (no pair begins with an e, and the pairs that overlap,
# "aaa" and "aae", fold to "a" either way), so the fold of a word's pieces joined is the fold
# of the word, however it was split.
_DIGRAPHS = re.compile(r"a[ae]|[ou]e")


def _fold(word: str) -> str:
    """``word`` with its digraphs folded (`_DIGRAPHS`) until none is left ("aae" -> "a")."""
    while True:
        folded = _DIGRAPHS.sub(lambda m: m.group()[0], word)
        if folded == word:
            return word
        word = folded


def _written_once(text: str) -> list[str]:
    """The normalised words of ``text`` in the order written (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_PRE_MAP)
    out: list[str] = []
    decomposed = unicodedata.normalize("NFKD", text).translate(_PRE_MAP)
    for ch in decomposed.translate(_LOOK_ALIKES).translate(_DIGIT_LOOK_ALIKES):
        # Modifier letters (category Lm: ː, ʻ, ʰ that NFKC left) are dropped, as accents
        # and apostrophes are: read as letters, "Boːrislav Draːzheːnko" was a name of its
        # own, and a listed person so written was approved (found in review, 2026-12-07).
        if unicodedata.combining(ch) or ch in _APOSTROPHES or unicodedata.category(ch) == "Lm":
            continue
        out.append(ch if unicodedata.category(ch)[0] in "LN" else " ")
    return [_fold(word) for word in "".join(out).split()]


def written_words(name: str) -> tuple[str, ...]:
    """The normalised words of ``name`` in the order written, broken at every character that
    is not a letter or a digit (spaces, hyphens, dots, any other punctuation): the pieces
    `name_readings` and the screening join again."""
    words = _written_once(name)
    # A few exotic code points normalise further on a second pass (e.g. NFKD yielding a
    # letter that casefolds again); repeat to a fixed point so normalisation is idempotent.
    for _ in range(3):
        again = _written_once(" ".join(words))
        if again == words:
            break
        words = again
    return tuple(words)


def reads_as_latin(letter: str) -> bool:
    """Whether the screening reads a Latin-script letter as one or more of a-z. A letter
    that it does not (the small capital ᴏ, the IPA ɑ: Latin letters that look like o and a)
    would let a listed name spelled with it pass for another name; onboarding refuses it."""
    return all(ch.isascii() for token in name_tokens(letter) for ch in token)


def name_tokens(name: str) -> tuple[str, ...]:
    """The sorted normalised tokens of ``name`` (see the module docstring)."""
    return tuple(sorted(written_words(name)))


def name_readings(name: str) -> tuple[tuple[str, ...], ...]:
    """The ways ``name`` is read whatever the list holds: its words broken at every mark
    (`written_words`); each word as written with the marks inside it left out; each two
    neighbouring pieces written as one; and all of them written as one. A listed name split
    or joined by a mark or a space ("Drazhen-ko", "Dra_zhenko", "Drazhen ko") is thus
    equal to its alias in one reading, and a name written as one word to an alias's all-in-one
    reading (the list's aliases are read so too: `SanctionsList`). Longer runs of pieces are
    joined by the screening where the list has a word they could be
    (`SanctionsList.screen`). At most ``len(pieces) + 2`` readings."""
    pieces = written_words(name)
    if not pieces:
        return ()
    readings = {pieces, (_fold("".join(pieces)),)}
    readings.add(tuple(word for part in name.split() if (word := _fold("".join(written_words(part))))))
    readings.update((*pieces[:i], _fold(pieces[i] + pieces[i + 1]), *pieces[i + 2 :]) for i in range(len(pieces) - 1))
    return tuple(sorted({tuple(sorted(reading)) for reading in readings}))


def normalize_name(name: str) -> str:
    """Canonical form of a person name: normalised tokens, sorted, joined by one space."""
    return " ".join(name_tokens(name))


# ------------------------------------------------------------------ similarity


def _edit_distance_le1(a: str, b: str) -> bool:
    """True when the Damerau-Levenshtein (optimal string alignment) distance is at most 1."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
        )
    if la > lb:
        a, b = b, a
    # b is one longer: deleting one character of b must give a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


def _token_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    longer, shorter = max(len(a), len(b)), min(len(a), len(b))
    if longer < MIN_FUZZY_LONGER or shorter < MIN_FUZZY_SHORTER or not _edit_distance_le1(a, b):
        return 0.0
    return 1.0 - 1.0 / longer


def name_similarity(query: tuple[str, ...], alias: tuple[str, ...], *, frequent: frozenset[str] = frozenset()) -> float:
    """Similarity in [0, 1] of two normalised token tuples (see the module docstring);
    ``frequent``: the list's words too common to carry an initial (`FREQUENT_WORD_ENTRIES`)."""
    if not query or not alias:
        return 0.0
    if query == alias:
        return 1.0
    left = Counter(query)
    right = Counter(alias)
    common = left & right
    total: float = sum(common.values())  # similarity score (exact parts count 1 each), not money
    aligned = sum(common.values())
    rest_q = list((left - common).elements())
    rest_a = list((right - common).elements())
    pairs = sorted(
        ((s, i, j) for i, q in enumerate(rest_q) for j, a in enumerate(rest_a) if (s := _token_similarity(q, a)) > 0),
        reverse=True,
    )
    used_q: set[int] = set()
    used_a: set[int] = set()
    for s, i, j in pairs:
        if i not in used_q and j not in used_a:
            used_q.add(i)
            used_a.add(j)
            total += s
            aligned += 1
    typed = 0  # the name screened's initials aligned (a listed name's: `listed`)
    if any(len(word) >= MIN_FUZZY_SHORTER and word not in frequent for word in common.elements()):
        typed = _initials(rest_q, rest_a, used_q, used_a)
        listed = _initials(rest_a, rest_q, used_a, used_q)
        total += INITIAL_SIMILARITY * (typed + listed)
        aligned += typed + listed
    shorter, longer = sorted((len(query), len(alias)))
    score = total / longer
    if longer - shorter == 1 and shorter >= 2 and aligned == shorter:
        # an initial typed for a name counts whole here: the rule's factor discounts the name
        # already, and "K. Volkhantsev" (0.81 of "Kazimir Andreevich Volkhantsev" with both)
        # was clear while "Kazimir Volkhantsev" was a review (found in review, 2026-12-07). A
        # listed initial does not: "Anna Berit Gorlovka Olsen" is no "A. B. Gorlovka".
        score = max(score, PARTIAL_FACTOR * (total + (1 - INITIAL_SIMILARITY) * typed) / shorter)
    return min(score, 1.0)


def _initials(ones: list[str], others: list[str], used_ones: set[int], used_others: set[int]) -> int:
    """Align each one-letter word of ``ones`` left unaligned to an unaligned word of
    ``others`` of two letters or more that begins with it (marking both used); returns how
    many were. An initial typed for a first or middle name ("B. Drazhenko", "K. A.
    Volkhantsev" for a listed "Borislav Drazhenko", "Kazimir Andreevich Volkhantsev") was
    aligned to nothing and screened clear (found in review, 2026-12-07); so is a listed
    initial held by a name written out ("Oleg P. Strelnikov" by "Oleg Petrovich ...")."""
    count = 0
    for i, one in enumerate(ones):
        if i in used_ones or len(one) != 1:
            continue
        j = next((j for j, w in enumerate(others) if j not in used_others and len(w) > 1 and w[0] == one), None)
        if j is not None:
            used_ones.add(i)
            used_others.add(j)
            count += 1
    return count


def could_be_like(query: tuple[str, ...], alias: tuple[str, ...]) -> bool:
    """Whether `name_similarity` could reach `REVIEW_THRESHOLD` for names of these lengths:
    it scores at most the shorter's words over the longer's, or `PARTIAL_FACTOR` when they
    differ by one word. Screening skips the rest, every one clear: the alignment of each word
    against each was almost all of a screening's time, and a payee name of 16 common words
    took about 2 s of CPU against a list the EU's size (found in review, 2026-12-06)."""
    shorter, longer = sorted((len(query), len(alias)))
    if not shorter:
        return False
    if longer - shorter == 1 and shorter >= 2:
        return PARTIAL_FACTOR >= REVIEW_THRESHOLD or shorter / longer >= REVIEW_THRESHOLD
    return shorter / longer >= REVIEW_THRESHOLD


def screening_core(tokens: tuple[str, ...], subject: str) -> tuple[str, ...]:
    """The words of a listed name (its normalised ``tokens``) a longer name must hold for the
    listed name to be found within it (see the module docstring), or ``()`` when the listed
    name is not looked for so: fewer than `MIN_CORE_WORDS` words of two letters or more.
    An enterprise's legal forms (`LEGAL_FORMS`) and single letters ("A/S", "S.A.", "& Co")
    are left out; a person's initials are kept (a word beginning with the letter holds one)."""
    if subject == ENTERPRISE:
        tokens = tuple(t for t in tokens if len(t) > 1 and t not in LEGAL_FORMS)
    if sum(1 for t in tokens if len(t) > 1) < MIN_CORE_WORDS:
        return ()
    return tokens


def contained_similarity(query: tuple[str, ...], core: tuple[str, ...]) -> float:
    """How well the normalised ``query`` holds every word of a listed name's ``core``
    (`screening_core`), whatever other words it has and in whatever order: 0 unless each
    word of the core is aligned to a word of its own in the query (equal; one letter off as
    in `name_similarity`; or, for a one-letter initial, a word beginning with it), else
    ``PARTIAL_FACTOR * sum(token similarities) / len(core)``."""
    if not core or len(query) < len(core):
        return 0.0
    left = Counter(query)
    right = Counter(core)
    common = left & right
    total: float = sum(common.values())
    rest_q = list((left - common).elements())
    rest_c = list((right - common).elements())
    if rest_c:
        pairs = sorted(
            (
                (s, i, j)
                for i, q in enumerate(rest_q)
                for j, c in enumerate(rest_c)
                if (s := _token_similarity(q, c)) > 0
            ),
            reverse=True,
        )
        used_q: set[int] = set()
        used_c: set[int] = set()
        for s, i, j in pairs:
            if i not in used_q and j not in used_c:
                used_q.add(i)
                used_c.add(j)
                total += s
        for j, c in enumerate(rest_c):
            if j in used_c or len(c) != 1:
                continue
            held = next((i for i, q in enumerate(rest_q) if i not in used_q and q.startswith(c)), None)
            if held is None:
                return 0.0
            used_q.add(held)
            used_c.add(j)
            total += 1.0
        if len(used_c) < len(rest_c):
            return 0.0
    return PARTIAL_FACTOR * total / len(core)


# ------------------------------------------------------------------ the list and its index


def _index_keys(token: str) -> set[str]:
    """Keys under which a token is indexed/looked up: itself and its one-deletion variants.

    Two tokens within Damerau-Levenshtein distance 1 always share a key (symmetric-delete
    scheme), so fuzzy candidates are found without scanning the list.
    """
    keys = {token}
    if len(token) >= MIN_FUZZY_LONGER:
        keys.update(token[:i] + token[i + 1 :] for i in range(len(token)))
    return keys


def _may_hold(core: tuple[str, ...], keys: set[str]) -> bool:
    """Whether a name whose index ``keys`` (`_index_keys` of its words) are these may hold
    every word of ``core`` (`contained_similarity`): each word of two letters or more is one
    of the keys, or one of its one-deletion variants is (two words a letter apart share a
    key). A set lookup per word, the variants only for a word the name does not have: no
    alignment for the many candidates the index finds by one common word."""
    for word in core:
        if len(word) < 2 or word in keys:
            continue
        if len(word) < MIN_FUZZY_LONGER or all(word[:i] + word[i + 1 :] not in keys for i in range(len(word))):
            return False
    return True


def entry_key(entry: SanctionedEntity) -> str:
    return hashlib.sha256(repr(entry).encode()).hexdigest()[:16]


class SanctionsList:
    """Sanctioned persons with an index from normalised token (and one-deletion variants) to aliases."""

    def __init__(self, entries: Iterable[SanctionedEntity]) -> None:
        self.entries: tuple[SanctionedEntity, ...] = tuple(entries)
        self._by_id = {e.entity_id: e for e in self.entries}
        # what the list says, whatever file it came from: the customers are screened again
        # once per version (fjordbank.service_layer.rescreening)
        self.version = hashlib.sha256((RULES + repr(sorted(self.entries, key=repr))).encode()).hexdigest()[:20]
        # (entry, alias as listed, its tokens, whole: a reading that counts only when the
        # name screened holds every one of its words, its core: the words a longer name
        # must hold for the alias to be found within it, `screening_core`: the alias's
        # tokens themselves for a person, and the factor its name similarity counts with:
        # below 1 for a reading with a word of the alias left out, `_shortened`)
        self._aliases: list[tuple[int, str, tuple[str, ...], bool, tuple[str, ...], float]] = []
        self._index: dict[str, set[int]] = defaultdict(set)
        entries_with: Counter[str] = Counter()  # word -> the entries that have it (`_frequent`)
        for entry_no, entry in enumerate(self.entries):
            its_words: set[str] = set()
            for alias in entry.names:
                tokens = name_tokens(alias)
                if not tokens:
                    continue
                its_words.update(tokens)
                self._add(entry_no, alias, tokens, whole=False)
                # The alias's other readings (`name_readings`: its words joined, its marks
                # left out), as the name screened is read: a listed "Quintanilla-Ébano" or
                # "Abd al-Zarqoon" typed as one word ("QuintanillaÉbano", "Alzarqoon") was
                # equal to no reading of it. Only their new words are indexed, each under
                # itself (no one-letter variants: the index grew sixfold with them), and
                # such a reading counts only when the name holds all its words (with fewer
                # words, the omitted-name rule made "Ali Hassan" a match of "Ali Hassan
                # al-Majid").
                added = {tokens}
                for reading in name_readings(alias):
                    if reading not in added:
                        added.add(reading)
                        self._add(entry_no, alias, reading, whole=True, keys=set(reading) - set(tokens))
                # The same, joined, with a word left out that the screening forgives when
                # the words are apart (an enterprise's legal forms, a person's middle name):
                # "NordkappPhantomTrading" and "Nordkapp'Phantom'Trading" for a listed
                # "Nordkapp Phantom Trading AS", "KazimirVolkhantsev" for "Kazimir Andreevich
                # Volkhantsev" were equal to no reading, and screened clear (found in review,
                # 2026-12-07). A review at most (`PARTIAL_FACTOR`), as the rules they stand
                # for give. An enterprise's is found within longer names too ("...Trading
                # Ltd"), as its core is (`screening_core`), when it had two words or more; a
                # person's is not: a name without a listed word holds no more than one more
                # (the omitted-name rule), so "Maria Costa Hansen" is no "Maria da Costa".
                enterprise = entry.subject == ENTERPRISE
                for shortened, pieces in _shortened(alias, entry.subject):
                    # a person's as one word only ("KazimirVolkhantsev"): each reading costs
                    # the list's build, and persons are most of the list (24,000 made-up
                    # aliases: 3.4 s before these readings, 6.0 s with every one, 4.8 s so)
                    all_in_one = (_fold("".join(pieces)),)
                    for reading in name_readings(shortened) if enterprise else (all_in_one,):
                        # joined (new words); an enterprise's also as written: "Glacierline" for
                        # a listed "Glacierline AS" was clear (found in review, 2026-12-07)
                        if reading not in added and (enterprise or len(reading) < len(pieces)):
                            added.add(reading)
                            self._add(
                                entry_no,
                                alias,
                                reading,
                                whole=True,
                                keys=set(reading),  # (one as written has only the alias's words: found by them too)
                                core=reading if enterprise and len(pieces) >= MIN_CORE_WORDS else (),
                                factor=PARTIAL_FACTOR,
                            )
            entries_with.update(its_words)
        self._frequent = frozenset(t for t, n in entries_with.items() if n >= FREQUENT_WORD_ENTRIES)
        # the longest word indexed, and the longest indexed with its one-letter variants: a
        # run of a name's pieces joined into a longer one is no listed word, nor one letter
        # off one (`_joined_readings`)
        self._longest = max(map(len, self._index), default=0)
        self._longest_fuzzy = max(
            (len(t) for _e, _a, tokens, whole, _c, _f in self._aliases if not whole for t in tokens), default=0
        )

    def _add(
        self,
        entry_no: int,
        alias: str,
        tokens: tuple[str, ...],
        *,
        whole: bool,
        keys: set[str] | None = None,
        core: tuple[str, ...] | None = None,
        factor: float = 1.0,
    ) -> None:
        alias_no = len(self._aliases)
        if core is None:
            core = screening_core(tokens, self.entries[entry_no].subject)
        self._aliases.append((entry_no, alias, tokens, whole, core, factor))
        for token in set(tokens) if keys is None else keys:
            for key in _index_keys(token) if keys is None else (token,):
                self._index[key].add(alias_no)

    @classmethod
    def from_xml(cls, xml: bytes, *, subjects: tuple[str, ...] = PERSONS) -> SanctionsList:
        return cls(parse_eu_fsf(xml, subjects=subjects))

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, entity_id: str) -> SanctionedEntity | None:
        return self._by_id.get(entity_id)

    def entry_keys(self) -> frozenset[str]:
        """One key per entry, changed by any change to it (a name, a birth date added)."""
        return frozenset(entry_key(e) for e in self.entries)

    def since(self, keys: frozenset[str]) -> SanctionsList:
        """The entries new or changed since a list whose `entry_keys` were ``keys``."""
        return SanctionsList(e for e in self.entries if entry_key(e) not in keys)

    def _candidates(self, keys: set[str]) -> set[int]:
        found: set[int] = set()
        for key in keys:
            found |= self._index.get(key, set())
        return found

    def _joined_readings(self, pieces: tuple[str, ...]) -> set[tuple[str, ...]]:
        """The readings of a name's ``pieces`` (`written_words`) with runs of neighbouring
        pieces joined where the list has a word they could be: per listed alias, the runs
        whose joined word is one of its words or one letter off one (exact ones first, then
        the longest), as many as do not overlap. `name_readings` joins only two pieces, or
        all of them: a listed name with two of its words split ("Bori slav Drazh enko"; from
        another bank, zero-width characters inside its words, which clearing shows, and
        screens, as spaces: fjordbank.domain.pacs.shown_text) or one split twice ("Dra zhen
        ko") was screened clear, and approved at onboarding (found in review, 2026-12-07).
        Every way of joining n pieces is 2^(n-1) readings; these are one per alias the runs
        find. A run is looked up only while its word is no longer than the longest the list
        has (`_longest`), and with its one-letter variants only while no longer than the
        longest the list has variants of (`_longest_fuzzy`; longer ones are an alias's words
        written as one, indexed as they are), so an ordinary name, whose joined pieces are
        no listed word, costs a few lookups per run and nothing more."""
        runs: list[tuple[int, int, str, set[int]]] = []
        for i in range(len(pieces)):
            for j in range(i + 2, len(pieces) + 1):
                word = _fold("".join(pieces[i:j]))
                if len(word) > self._longest + 1:
                    break
                keys = _index_keys(word) if len(word) <= self._longest_fuzzy + 1 else {word}
                if found := self._candidates(keys):
                    runs.append((i, j, word, found))
        if not runs:
            return set()
        by_alias: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        for i, j, word, found in runs:
            for alias_no in found:
                by_alias[alias_no].append((i, j, word))
        readings: set[tuple[str, ...]] = set()
        fitted: dict[tuple[tuple[str, ...], tuple[tuple[int, int, str], ...]], tuple[str, ...] | None] = {}
        for alias_no, its_runs in by_alias.items():
            alias_tokens = self._aliases[alias_no][2]
            key = (alias_tokens, tuple(its_runs))
            if key not in fitted:  # many aliases share a word (Mohammed): each set of runs once
                fitted[key] = _join_runs(pieces, its_runs, alias_tokens)
            if (reading := fitted[key]) is not None:
                readings.add(reading)
        return readings

    def _without_legal_forms(self, readings: tuple[tuple[str, ...], ...]) -> set[tuple[str, ...]]:
        """The readings with a legal form written onto a word's end or beginning left out,
        where what is left is a word the list has (an enterprise's name read as one word,
        `_shortened`): "NordkappPhantomTradingLtd" and "ASNordkappPhantomTrading" were clear
        while "NordkappPhantomTrading Ltd" was a review (found in review, 2026-12-07). A set
        lookup per legal form for each long word, so a name the list has no word for costs
        no more."""
        out: set[tuple[str, ...]] = set()
        for reading in readings:
            for i, word in enumerate(reading):
                if len(word) < MIN_STRIPPED_WORD + 2:
                    continue
                for form in LEGAL_FORMS:
                    for rest in (word.removesuffix(form), word.removeprefix(form)):
                        if rest != word and len(rest) >= MIN_STRIPPED_WORD and rest in self._index:
                            out.add(tuple(sorted((*reading[:i], rest, *reading[i + 1 :]))))
        return out

    def screen(self, full_name: str, birth_date: date | None, *, year_only: bool = False) -> ScreeningResult:
        """``year_only``: only the birth date's year is known to be true (a D-number may be
        dated on its registration day), so a listed date in that year is no mismatch."""
        readings = name_readings(full_name)
        if not readings:
            raise ValueError("name to screen has no letters or digits")
        best: dict[int, tuple[float, str]] = {}
        more = (self._joined_readings(written_words(full_name)) | self._without_legal_forms(readings)) - set(readings)
        for tokens in (*readings, *sorted(more)):
            keys = {key for token in set(tokens) for key in _index_keys(token)}
            for alias_no in self._candidates(keys):
                entry_no, alias, alias_tokens, whole, core, factor = self._aliases[alias_no]
                if whole and not set(alias_tokens) <= set(tokens):
                    continue
                like = could_be_like(tokens, alias_tokens)
                score = factor * name_similarity(tokens, alias_tokens, frequent=self._frequent) if like else 0.0
                if core and len(core) <= len(tokens) and score < 1.0 and _may_hold(core, keys):
                    score = max(score, contained_similarity(tokens, core))
                if entry_no not in best or score > best[entry_no][0]:
                    best[entry_no] = (score, alias)
        outcome: Outcome = "clear"
        matches: list[ScreeningMatch] = []
        for entry_no, (score, alias) in best.items():
            entry = self.entries[entry_no]
            verdict = _verdict(score, _birth_status(entry, birth_date, year_only=year_only))
            if verdict == "clear":
                continue
            matches.append(ScreeningMatch(entry.entity_id, alias, round(score, 4), verdict))
            if _SEVERITY[verdict] > _SEVERITY[outcome]:
                outcome = verdict
        matches.sort(key=lambda m: (-m.score, m.entity_id))
        return ScreeningResult(outcome, tuple(matches))

    def screen_counterparty(self, name: str) -> ScreeningResult:
        """A payment's counterparty, known by name only (a payer at another bank): with no
        birth data, a name equal or similar to an alias is ``review`` (never ``hit``: only
        a person decides that), and a name with no letters or digits to screen is
        ``review`` too, with no match: a payment is never let through unscreened."""
        try:
            return self.screen(name, None)
        except ValueError:
            return ScreeningResult("review")


def _shortened(alias: str, subject: str) -> list[tuple[str, tuple[str, ...]]]:
    """``alias`` with a word left out that the screening forgives when the words are apart,
    each with its pieces (`written_words`): an enterprise's name without its legal forms and
    single letters (`screening_core`), a person's of three words or more without one of its
    middle ones (the omitted-name rule of `name_similarity`; the first and the last are
    kept: "Ali Hassan" is no reading of a listed "Ali Hassan al-Majid")."""
    words = [(word, written_words(word)) for word in alias.split()]  # a space breaks as any mark does
    if subject == ENTERPRISE:
        kept = [(w, p) for w, p in words if any(len(piece) > 1 and piece not in LEGAL_FORMS for piece in p)]
        shortened = [kept] if len(kept) < len(words) else []
    else:
        shortened = [words[:i] + words[i + 1 :] for i in range(1, len(words) - 1)] if len(words) >= 3 else []
    out = []
    for kept in shortened:
        if pieces := tuple(piece for _w, p in kept for piece in p):
            out.append((" ".join(w for w, _p in kept), pieces))
    return out


def _join_runs(
    pieces: tuple[str, ...], runs: list[tuple[int, int, str]], alias_tokens: tuple[str, ...]
) -> tuple[str, ...] | None:
    """``pieces`` with those of the ``runs`` (start, end, joined word) that are a word of
    the alias (``alias_tokens``) or one letter off one joined, exact ones first, then the
    longest, none overlapping another (sorted, as a reading is); None when none is."""
    scored = []
    for i, j, word in runs:
        fit = max((1.0 if word == t else _token_similarity(word, t)) for t in alias_tokens)
        if fit > 0:
            scored.append((-fit, i - j, i, j, word))
    if not scored:
        return None
    taken = [False] * len(pieces)
    joined: list[str] = []
    for _fit, _span, i, j, word in sorted(scored):
        if not any(taken[i:j]):
            taken[i:j] = [True] * (j - i)
            joined.append(word)
    return tuple(sorted([*joined, *(piece for piece, used in zip(pieces, taken, strict=True) if not used)]))


def _birth_status(
    entry: SanctionedEntity, birth_date: date | None, *, year_only: bool = False
) -> Literal["match", "mismatch", "unknown"]:
    if birth_date is None or not (entry.birth_dates or entry.birth_years):
        return "unknown"
    if birth_date in entry.birth_dates or birth_date.year in entry.birth_years:
        return "match"
    if year_only and any(listed.year == birth_date.year for listed in entry.birth_dates):
        return "unknown"  # the same year: the day is not known to differ
    return "mismatch"


def _verdict(score: float, birth: str) -> Outcome:
    if score >= 1.0:
        return "hit" if birth == "match" else "review"
    if score >= REVIEW_THRESHOLD and birth != "mismatch":
        return "review"
    return "clear"


def screen_person(
    full_name: str, birth_date: date | None, entries: SanctionsList | Iterable[SanctionedEntity]
) -> ScreeningResult:
    """Screen one person (name as given, birth date) against a list; see the module docstring."""
    sanctions = entries if isinstance(entries, SanctionsList) else SanctionsList(entries)
    return sanctions.screen(full_name, birth_date)


# ------------------------------------------------------------------ EU FSF parsing


def _parse_xml(data: object) -> ET.Element:
    """Parse the list, refusing DTDs and entity declarations (fjordbank.domain.safexml)."""
    try:
        return safexml.parse(
            data,
            what="sanctions list",
            where="a sanctions list",
            max_bytes=MAX_XML_BYTES,
            max_elements=MAX_XML_ELEMENTS,
        )
    except safexml.UnsafeOrMalformedXml as exc:
        raise InvalidSanctionsList(str(exc)) from None


def _tag(name: str) -> str:
    return f"{{{FSF_NS}}}{name}"


def _alias_name(alias: ET.Element) -> str:
    whole = " ".join(alias.get("wholeName", "").split())
    if whole:
        return whole
    parts = (alias.get(key, "").strip() for key in ("firstName", "middleName", "lastName"))
    return " ".join(p for p in parts if p)


def _birth(element: ET.Element, entity_id: str) -> tuple[date | None, int | None]:
    full = element.get("birthdate", "").strip()
    if full:
        try:
            return date.fromisoformat(full), None
        except ValueError:
            raise InvalidSanctionsList(f"sanctionEntity {entity_id}: bad birthdate {full!r}") from None
    year = element.get("year", "").strip()
    if year:
        if not (year.isascii() and year.isdigit() and len(year) == 4):
            raise InvalidSanctionsList(f"sanctionEntity {entity_id}: bad birth year {year!r}")
        return None, int(year)
    return None, None


def _entity(entity: ET.Element, subjects: tuple[str, ...]) -> SanctionedEntity | None:
    entity_id = entity.get("logicalId", "").strip()
    if not entity_id:
        raise InvalidSanctionsList("sanctionEntity without logicalId")
    subject = entity.find(_tag("subjectType"))
    if subject is None or not subject.get("code"):
        raise InvalidSanctionsList(f"sanctionEntity {entity_id}: missing subjectType code")
    code = subject.get("code") or ""
    if code not in subjects:
        return None
    names: list[str] = []
    for alias in entity.findall(_tag("nameAlias")):
        name = _alias_name(alias)
        if name and name not in names:
            names.append(name)
    if not names:
        raise InvalidSanctionsList(f"sanctionEntity {entity_id}: {code} without any name")
    dates: list[date] = []
    years: list[int] = []
    for element in entity.findall(_tag("birthdate")):
        full, year = _birth(element, entity_id)
        if full is not None and full not in dates:
            dates.append(full)
        if year is not None and year not in years:
            years.append(year)
    regulation = entity.find(_tag("regulation"))
    programme = (regulation.get("programme") or "").strip() if regulation is not None else ""
    return SanctionedEntity(entity_id, tuple(names), tuple(dates), tuple(years), programme or None, code)


def parse_eu_fsf(xml: bytes, *, subjects: tuple[str, ...] = PERSONS) -> tuple[SanctionedEntity, ...]:
    """The entities of an EU FSF consolidated-list export whose ``subjectType/@code`` is one
    of ``subjects`` (persons only, by default)."""
    root = _parse_xml(xml)
    if root.tag != _tag("export"):
        raise InvalidSanctionsList(f"root element is {root.tag!r}, expected export in namespace {FSF_NS}")
    entities: list[SanctionedEntity] = []
    seen: set[str] = set()
    for element in root.findall(_tag("sanctionEntity")):
        entity = _entity(element, subjects)
        if entity is None:
            continue
        if entity.entity_id in seen:
            raise InvalidSanctionsList(f"duplicate sanctionEntity logicalId {entity.entity_id}")
        seen.add(entity.entity_id)
        entities.append(entity)
    return tuple(entities)
