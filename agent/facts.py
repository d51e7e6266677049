"""The checkable facts of a text, and which of an answer's facts its evidence does not support.

A generated answer can be fluent and still invent a price, a phone number or a person. This module reads
the facts a visitor could act on (money, percentages, other numbers, dates, times, e-mail addresses, phone
numbers, URLs and names) out of a text, and checks each fact of an answer against evidence: the retrieved
passages, the question and the conversation, which the caller passes as plain texts. It serves the answer
evaluation (count the answers that invent) and a grounding guard (withhold an answer whose facts are not in
what it was given). An invented fact let through is the worst error; a fact flagged that the evidence
holds in another surface form ("£12,500" against "12 500", "4" against "four") makes the bot fall back
needlessly, so each kind is normalised before it is compared.

Rules, per kind (the key is what is compared):

- money: an amount after a currency mark (`£12,500`, `$1,200.50`, `€ 99`) or before a currency code or
  word (`12,500 GBP`, `99 euros`); `k` (and, after a currency mark, `m`/`bn`) and the words thousand,
  million, billion multiply (`£12.5k` -> `money:12500`). Supported by the same amount anywhere in the
  evidence, with any currency mark or none, with or without separators.
- percent: `10%`, `10 percent`, `10 per cent`, `ten per cent` -> `percent:10`. Supported only by a
  percentage in the evidence: a bare 10 there is not a 10% discount.
- number: any other number with digits (`4`, `1,200`, `3.5`, `3rd`, `24/7`, `#48213`; a unit glued to it is
  dropped: `30GB` -> 30), a code of letters and digits (`P1`, `ZB481927` -> `number:zb481927`), and a
  spelled-out number in the answer only where it counts something: before a unit or a countable noun (days,
  hours, people, clients, pages, rounds, ...) in the same phrase, at most two words between and no function
  word ("two paid summer internships", "a four-hour call"), or before percent or a currency word. So "four
  weeks" is the fact 4, "one of our clients" and "no one" are not facts. Supported by the same value in
  digits or as a number word (0-20, the tens, their compounds, hundred and thousand). A list marker at the
  start of a line (`1.`) is not a fact.
- date: a year (1800-2100 alone: `2014`), `12 March 2021`, `March 12, 2021`, `12th of March`,
  `March 2021`, `2021-03-12`, `12/03/2021` (day first unless the month would be over 12). Day names and a
  month name alone are not facts. A full date is supported only by the same full date; one without a year
  by that day and month in any year; a month and year or a year also by a full date inside them.
- time: `9am`, `9 a.m.`, `9:00`, `09:00`, `5.30pm`, `17:30` -> `time:17:30`. A time written without
  am/pm and without a leading zero (`5:30`) may be morning or afternoon, in the answer and in the evidence.
- email: compared without case.
- phone: 7 to 15 digits in the usual groupings, with an optional `+` country code; key = the digits. An
  international number matches the national one it stands for (`+44 117 496 0738` == `0117 496 0738`,
  `+44 (0)117 ...` too). A run of digits that reads as a date, a range of years or a grouped amount
  (`1 250 000`) is not a phone number.
- url: with a scheme, from `www.`, or a bare host with a path or a common top-level domain
  (`example.com/pricing`, `help.example.co.uk`); lower-cased, scheme, `www.` and a trailing slash
  dropped. Supported by the same URL, or (for a bare host) by any URL or e-mail address on that host.
- name: a run of capitalised words separated by spaces only ("Sarah Chen", "Northwind Digital", "Growth
  Package", or one word: "Sofia"); in a hyphenated word a lower-case part ends the name ("UK-based" names the
  UK). Words that never name anything on their own (I, Yes, No, Hi, Thanks, Please, Our, We, day names, month
  names used alone, spelled-out numbers, single letters, ...) are dropped from both ends of a run. A run that
  opens a sentence (at the start of the text or of a line, so also after a bullet or a list number, or after
  `.`, `!`, `?`, `:` or a table bar) also loses the common sentence openers at its front ("The", "This",
  "Unfortunately", "Contact", "Book", ...). What is left is a name, even a single word that opens a sentence:
  this is stricter than skipping sentence-initial words altogether, because "Sarah will call you back" must
  not get an invented Sarah through; the price is that an unusual opener ("Honestly, ...") counts as a name
  unless the evidence holds the word in any case. A name is supported when every word of it is a word of the
  evidence (without case, possessive or plural: "Sarah's", "Packages") and each pair of neighbouring words
  stands side by side there, so "Tom Marsh" is not supported by "Eleanor Marsh and Tom Okafor". Generic last
  words (Plan, Package, Team, Service, Overview, ...) are left out of that check: "Starter Package" is
  supported by "Starter and Growth packages", "Care Plus Plan" by "Care Plus".

Facts that are in the question or the conversation are supported too: the caller passes those texts as
evidence (and, for a guard, whatever fixed text it trusts, such as the company's own name).

Known limits, taken knowingly: a number is supported by the same value anywhere in the evidence, whatever it
counts; day names and a month alone are not checked; a spelled-out number that counts nothing is not
checked ("we have eleven"); a name written in lower case is not seen; a two-digit year (`12/03/21`) is
read as 20xx; noon and midnight in words are not times; a run of digits with spaces may read as one number
("in 2015 25 projects" is not, "page 3 100 times" is).

Out of scope: meaning. "Not tax-deductible" against "tax-deductible", a true price attached to the wrong
package, a number used in the wrong place ("4 hours" where the evidence says "4 days"), a relation
between true facts: these need understanding, not string facts. Unsupported means "not in the evidence",
never "false".

Texts are compared as a reader sees them: look-alike forms are folded (NFKC: full-width digits, no-break
spaces) and invisible characters dropped, so a zero-width space cannot hide "£1\u200b2,500"; a fact's
`text` is taken from that folded text.

Every pattern here runs in linear time on hostile input: each is anchored where it is used, or built from
character classes that cannot overlap (so a failed attempt never re-reads what it read); the text is split
once into tokens (numbers and phrases) that the rest walks with bounded look-ahead. An `Evidence` reads its
texts once (and remembers recent passages, which come back question after question); checking a fact is a
few set look-ups.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

FactKind = Literal["money", "percent", "number", "date", "time", "email", "phone", "url", "name"]


@dataclass(frozen=True, slots=True)
class Fact:
    kind: FactKind
    text: str  # as written in the text (after invisible characters are dropped and look-alikes folded)
    key: str  # normalized form used for comparison, e.g. "money:12500", "name:sarah chen"


# --- Patterns (each linear: see the module docstring) ---

# Zero-width spaces, joiners, soft hyphens and direction marks: dropped, so none of them can split a number
# or a name and slip it past the check ("£1\u200b2,500").
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)+")  # what follows an e-mail address's `@`, matched there only
# An `@` before what may be a domain: the look-ahead reads one label and a dot, and no `@` can be in a label,
# so each character is read by one look-ahead at most.
_AT_DOMAIN = re.compile(r"@(?=[\w-]+\.[\w-])")
_WWW = re.compile(r"www\.", re.IGNORECASE)
_BARE_URL = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+(?:[/?#]\S*)?", re.IGNORECASE)  # fullmatch on a chunk
# Digits at most two separators apart: where a phone number can be, read in one pass (as in rag.logs).
_DIGIT_RUN = re.compile(r"[0-9](?:[ ().\-]{0,2}[0-9])*")
_PHONE_PARTS = re.compile(r"[0-9]+|[^0-9]+")
_PARTS = re.compile(r"[0-9]+|[^0-9]")
# A word: letters, perhaps joined by apostrophes or hyphens (Sarah's, e-mail, twenty-five).
_WORD_PATTERN = r"[^\W\d_]+(?:['\u2019\-][^\W\d_]+)*"
_WORD = re.compile(_WORD_PATTERN)
# The tokens: a number (digit groups joined by single separators, then perhaps a glued unit: 9am, 3rd,
# 12.5k); a phrase, words separated by spaces on one line (where a name or "four working days" can be),
# perhaps ending in digits glued to its last word (a code such as P1). Punctuation is no token: what lies
# between two tokens is read where it matters (a sentence's end, "March 12, 2021"). The alternatives
# start with disjoint classes; within each, neighbouring quantifiers are separated by a character the one
# before cannot match.
_TOKEN = re.compile(
    r"(?P<n>[0-9]+(?:[.,:/\-\u2013][0-9]+)*)(?P<u>[^\W\d_][^\W_]*)?"
    rf"|(?P<w>{_WORD_PATTERN}(?:[ \t]+{_WORD_PATTERN})*)(?P<c>[0-9][^\W_]*)?"
)
_KINDS = (
    "",
    "n",
    "u",
    "w",
    "c",
)  # a token's kind by the number of the last group it matched (faster than names)
# What may follow a number: each alternative is a short fixed word, matched only right after the number.
_AFTER = re.compile(
    r" ?(?:(?P<pct>%|per ?cent\b)|(?P<cur>gbp|usd|eur|pounds?|dollars?|euros?)\b"
    r"|(?P<mult>thousand|million|billion|bn)\b|(?P<ampm>[ap]\.?m\b\.?))",
    re.IGNORECASE,
)
_AFTER_FIRST = frozenset("%pPgGuUeEdDtTmMbBaA")  # how what `_AFTER` matches after a space can start

_URL_LEAD = "([{<\"'*_`\u2018\u201c"
_URL_TRAIL = ".,;:!?)]}>\"'*_`\u2019\u201d"
_NUMBER_CHARS = "0123456789.,:/-\u2013"


def _set(words: str) -> frozenset[str]:
    """A set of words written as one string (long lists read better that way)."""
    return frozenset(words.split())


_PHONE_SEPS = frozenset({" ", "  ", "-", " -", "- ", ".", "(", ")", " (", ") ", ")-", "-(", ")("})

_TLDS = _set(
    "com org net edu gov mil int io co uk ai app dev info biz me us eu de fr nl es it ie ca au nz in tv ly "
    "gg sh xyz online site tech store shop cloud digital agency example test local invalid"
)
# A bare `name.ext` is a file or a framework (Next.js, index.html), not a web address.
_FILE_EXTENSIONS = _set(
    "js ts jsx tsx py rb php html htm css md txt pdf doc docx xls xlsx csv json xml yml yaml png jpg "
    "jpeg gif svg webp zip exe"
)

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12,
}  # fmt: skip
_MONTH_ABBREVIATIONS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10,
    "nov": 11, "dec": 12,
}  # fmt: skip
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_WEEKDAYS = (
    "monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun"
)

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "dozen": 12,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
# What a spelled-out number counts when it is a fact (compared after `_stem`: "hours" is "hour").
_COUNTED = _set(
    "second minute hour day week fortnight month year decade time people person staff employee member "
    "client customer user visitor tenant patient student intern internship project page round revision "
    "integration office clinic location site website app store shop designer developer engineer manager "
    "specialist lead director researcher plan package service step stage phase session meeting call "
    "workshop option tier level language seat licence license account product feature ticket backup "
    "concept draft payment instalment installment invoice team group award partner brand branch city "
    "country region server job role vacancy word character item point book floor room desk laptop "
    "computer device screen"
)
# Words between a spelled-out number and what it counts that end the search ("one of our clients").
_FUNCTION_WORDS = _set(
    "of the a an and or but to in on at for with by from is are was were be as than that this these those "
    "another other others off more less"
)
# Last words of a name that its check leaves out: "Care Plus Plan" is Care Plus.
_GENERIC = _set(
    "plan package service team website site page policy app project office programme program tier option "
    "product department portal line account contract agreement guarantee warranty discount rate fee "
    "price pricing bundle subscription membership overview summary detail information info feature "
    "benefit highlight step point note tip requirement cost hour time"
)
# Capitalised words that never name anything on their own, wherever they stand.
_NEVER_NAMES = (
    _set(
        "i i'm i'd i'll i've yes no hi hello hey dear thanks thank please ok okay our we you your the a an "
        "and or am pm gbp usd eur mr mrs ms dr sir madam note re fyi etc"
    )
    | set("abcdefghijklmnopqrstuvwxyz")  # a single letter: Plan B, the letter of a list
    | _set(_WEEKDAYS)
    | {day + "s" for day in _WEEKDAYS.split()[:7]}
    | set(_MONTHS)
    | set(_MONTH_ABBREVIATIONS)
    | set(_UNITS)
    | set(_TENS)
    | set(_SCALES)
)
# Common words that open a sentence: capitalised there because they open it. A sentence-initial word not in
# this list is checked as a possible name (against the evidence, without case: "Refunds" is supported by
# "refund"), so an invented "Sarah will call you" is caught.
_OPENERS = _set(
    """
    a an the this that these those there here it its it's we we're we've we'll our ours us you you're
    you'll you've your yours they they're their them he she his her him my me some any all each every both
    either neither no none not nothing many most much more few several other another such what what's which
    who whom whose when where why how whether if unless although though because since so and but or nor yet
    also as at by for from in into of on onto to with without within after before during until till about
    above below under over between among through across around along against per via like unlike plus then
    than just only even still already always never often usually typically generally normally currently now
    today tomorrow yesterday tonight soon later again once twice first second third fourth fifth finally
    lastly next additionally alternatively however therefore otherwise instead meanwhile moreover
    furthermore unfortunately fortunately sadly luckily absolutely certainly definitely sure yeah great
    good perfect sorry welcome tip important remember basically essentially simply clearly overall
    altogether approximately roughly nearly almost exactly according based depending regarding following
    including excluding whatever whoever wherever whenever can could will would shall should may might must
    do does did don't doesn't didn't is isn't are aren't was wasn't were weren't has hasn't have haven't had
    hadn't be being been let let's ask call contact email e-mail mail phone ring text message write visit
    book see check read find try use get go head speak talk reach send choose pick select sign log click
    open join meet tell keep make take give learn share start follow fill submit raise report include
    provide expect pay cancel request reply respond there's here's that's who's where's how's why's
    please kindly feel hope in-person online wait add
    attach describe explain remove update change set create enter type explore compare consider review
    confirm ensure allow avoid bring browse download upload install leave look mention order plan prepare
    print put reset return run save schedule search show stop sure switch tap turn view watch yours
    honestly hopefully ideally indeed alright awesome lovely brilliant happy glad sounds nice cool
    fantastic excellent wonderful naturally obviously regardless anyway besides thankfully interestingly
    importantly specifically similarly likewise accordingly consequently hence thus
    understood noted got done agreed confirmed correct right true
    """
)


_NEVER_NAMES_OR_OPENERS = _NEVER_NAMES | _OPENERS
# The words that may start a date or a spelled-out number (folded; `_stem` leaves them as they are).
_TRIGGERS = frozenset(_MONTHS) | frozenset(_MONTH_ABBREVIATIONS) | frozenset(_UNITS) | frozenset(_TENS)
_MINUTES = frozenset(f"{minute:02d}" for minute in range(60))
_ORDINAL_OR_NONE = ("", "st", "nd", "rd", "th")
_CURRENCY_MARKS = frozenset("£$€¥")
_CURRENCY_ENDS = frozenset("£$€¥pPdDrR")  # how a currency mark or code (GBP, USD, EUR) before a space ends
_SENTENCE_MARK = re.compile(r"[.!?:|\u2022]")  # searched for between two tokens: the next opens a sentence
_LINE_SPACE = ("", " ", "\t", "\n", "\r")
_CURRENCY_WORDS = frozenset(("pounds", "pound", "dollars", "dollar", "euros", "euro"))
_ASCII_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- Small helpers ---


def _clean(text: str) -> str:
    """Look-alike forms folded (full-width digits, no-break spaces) and invisible characters dropped."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with the spans (in order, not overlapping) replaced by spaces: read once, read no further."""
    if not spans:
        return text
    pieces: list[str] = []
    done = 0
    for start, end in spans:
        pieces += (text[done:start], " " * (end - start))
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def _fold(word: str) -> str:
    """A word without case or possessive: "Sarah's" -> "sarah"."""
    word = word.casefold()
    return word[:-2] if word.endswith(("'s", "\u2019s")) else word


@functools.lru_cache(maxsize=8192)  # the same words come back in every passage and answer
def _stem(word: str) -> str:
    """`_fold`, and a plural made singular, the same way on both sides ("Packages" -> "package")."""
    word = _fold(word)
    if len(word) <= 3:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _value(whole: str, fraction: str = "") -> str:
    """A decimal number as one string, without leading or trailing zeros: ("012", "50") -> "12.5"."""
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def _shift(whole: str, fraction: str, places: int) -> tuple[str, str]:
    """The number times 10**places, by moving its point: no int() on an unbounded digit string."""
    padded = fraction.ljust(places, "0")
    return whole + padded[:places], padded[places:]


def _month(word: str) -> int | None:
    """The month a word names. Lower case counts only for full names other than "may" and "march"."""
    folded = word.casefold()
    if word[:1].isupper():
        return _MONTHS.get(folded) or _MONTH_ABBREVIATIONS.get(folded)
    return None if folded in ("may", "march") else _MONTHS.get(folded)


def _date_key(year: int | None, month: int, day: int | None) -> str | None:
    if not 1 <= month <= 12 or (day is not None and not 1 <= day <= _DAYS_IN_MONTH[month]):
        return None
    if year is None:
        return f"date:--{month:02d}-{day:02d}"
    if day is None:
        return f"date:{year:04d}-{month:02d}"
    return f"date:{year:04d}-{month:02d}-{day:02d}"


def _numeric_date(groups: list[str], seps: list[str]) -> list[str]:
    """The date keys `2021-03-12`, `12/03/2021`, `12.03.2021` may mean: the first is the reading taken
    (day first, as in the UK, unless the month would be over 12); an ambiguous day and month add the other."""
    if len(groups) != 3 or seps[0] != seps[1] or seps[0] not in "/-." or any(len(g) > 4 for g in groups):
        return []
    first, second, third = (int(g) for g in groups)
    if len(groups[0]) == 4 and len(groups[1]) <= 2 and len(groups[2]) <= 2:
        key = _date_key(first, second, third)
        return [key] if key else []
    if len(groups[0]) > 2 or len(groups[1]) > 2 or len(groups[2]) not in ((2, 4) if seps[0] == "/" else (4,)):
        return []
    year = third if len(groups[2]) == 4 else 2000 + third
    readings = [_date_key(year, second, first), _date_key(year, first, second)]
    return [key for key in dict.fromkeys(readings) if key]


def _phone_variants(digits: str, international: bool) -> tuple[str, ...]:
    """The national numbers an international one may stand for: `+44 117 ...` -> `0117 ...` (country codes
    have one to three digits)."""
    if not international:
        return ()
    return tuple(
        rest if rest.startswith("0") else "0" + rest for rest in (digits[1:], digits[2:], digits[3:])
    )


# --- Reading a text ---

# A token: its kind (n: a number, u: a number with a glued unit, w: a phrase, c: a phrase ending in a code)
# and where it starts and ends.
_Token = tuple[str, int, int]


class _Reader:
    """Reads the facts of one text. `lenient` (for evidence) also records every other reading a fact may
    have, the values of all numbers and number words, and the words and word pairs names are checked
    against; otherwise (for an answer) it records the facts, each once, first reading first."""

    def __init__(self, text: str, lenient: bool) -> None:
        self.text = _clean(text)
        self.lenient = lenient
        self.facts: dict[str, tuple[int, Fact]] = {}  # by key: where it first appears, and the fact
        self.keys: set[str] = set()
        self.words: set[str] = set()
        self.pairs: set[tuple[str, str]] = set()
        # E-mail addresses and URLs first, then phone numbers: each is blanked once found, so that the
        # digits of a URL are not a number and the words of an address are not a name.
        self.work = self._phones(self._urls(self._emails(self.text)))
        self.tokens: list[_Token] = [
            (_KINDS[m.lastindex or 3], *m.span()) for m in _TOKEN.finditer(self.work)
        ]
        if lenient:
            self._read_evidence()
        else:
            self._read_answer()

    def _emit(self, kind: FactKind, start: int, end: int, key: str) -> None:
        if self.lenient:
            self.keys.add(key)
        elif key not in self.facts:
            self.facts[key] = (start, Fact(kind, self.text[start:end].strip(), key))

    def _also(self, key: str) -> None:
        """Another reading, recorded for evidence only."""
        if self.lenient:
            self.keys.add(key)

    # E-mail addresses, URLs and phone numbers

    def _emails(self, work: str) -> str:
        """Each address read leftwards from its `@` (never past the `@` before) and rightwards once."""
        spans: list[tuple[int, int]] = []
        done = 0
        for candidate in _AT_DOMAIN.finditer(work):
            at = candidate.start()
            if at < done:
                continue
            start = at
            while start > done and (work[start - 1].isalnum() or work[start - 1] in "_.+-"):
                start -= 1
            while start < at and work[start] == ".":
                start += 1
            domain = _DOMAIN.match(work, at + 1) if start < at else None
            if domain is None:
                continue
            self._emit("email", start, domain.end(), "email:" + work[start : domain.end()].casefold())
            self._also("url:" + domain.group().casefold())  # the address's host supports a bare host
            spans.append((start, domain.end()))
            done = domain.end()
        return _blank(work, spans)

    def _urls(self, work: str) -> str:
        spans: list[tuple[int, int]] = []
        position = 0
        for chunk in work.split():
            if "://" not in chunk and ("." not in chunk or "." not in chunk.rstrip(_URL_TRAIL)):
                continue  # no URL: no dot but at the end ("costs £95.")
            # A chunk passed over holds no "://" and no dot before something other than closing
            # punctuation, so this one (which does) cannot be found inside it.
            offset = work.find(chunk, position)
            position = offset + len(chunk)
            found = _url_in(chunk)
            if found is None:
                continue
            start, end = offset + found[0], offset + found[1]
            key = _url_key(work[start:end])
            self._emit("url", start, end, key)
            if self.lenient:
                # A page's URL supports its host, and the page without its query or fragment.
                self.keys.add(key.split("/", 1)[0])
                self.keys.add(key.split("?", 1)[0].split("#", 1)[0])
            spans.append((start, end))
        return _blank(work, spans)

    def _phones(self, work: str) -> str:
        spans: list[tuple[int, int]] = []
        for run in _DIGIT_RUN.finditer(work):
            start, end = run.span()
            if end - start < 7:
                continue
            parts = _PHONE_PARTS.findall(run.group())
            groups, seps = parts[0::2], parts[1::2]
            digits = "".join(groups)
            if start > 0 and work[start - 1] == "(":
                start -= 1
            international = start > 0 and work[start - 1] == "+"
            if international:
                start -= 1
                if "(0)" in run.group():
                    digits = _drop_trunk_zero(run.group())
            elif digits.startswith("00"):  # 0044 117 ...: the international prefix dialled
                digits, international = digits[2:], True
            if self.lenient and 7 <= len(digits) <= 17:
                # Every long run, phone number or not: the evidence cannot be too generous with its digits.
                self.keys.add("phone:" + digits)
                self.keys.update("phone~" + national for national in _phone_variants(digits, international))
            if start > 0 and (work[start - 1].isalnum() or work[start - 1] in ".,"):
                continue
            if end < len(work) and work[end].isalnum():
                continue
            if _is_phone(groups, seps, digits, international):
                self._emit("phone", start, end, "phone:" + digits)
                spans.append((start, end))
        return _blank(work, spans)

    # Walking the tokens

    def _read_evidence(self) -> None:
        """The words and the pairs of words side by side in a phrase (for names), then the numbers, and the
        phrases that may hold a date, a code or a spelled-out number: other words hold no fact."""
        tokens, work, words, pairs = self.tokens, self.work, self.words, self.pairs
        interesting: list[int] = []
        for i, (kind, start, end) in enumerate(tokens):
            if kind in "wc":
                text = work[start:end]
                phrase = text.split()
                if kind == "c":
                    phrase.pop()  # a code, not a word
                if "-" in text:
                    # e-mail, Co-founder: the whole word and its parts, and the parts side by side.
                    words.update(map(_stem, phrase))
                    phrase = [part for word in phrase for part in word.split("-")]
                stems = list(map(_stem, phrase))
                words.update(stems)
                pairs.update(itertools.pairwise(stems))
                if kind == "c" or not _TRIGGERS.isdisjoint(stems):
                    interesting.append(i)
            else:
                interesting.append(i)
        done = 0
        for i in interesting:
            if i >= done:
                done = self._phrase(i, False) if tokens[i][0] in "wc" else self._number(i, False)

    def _read_answer(self) -> None:
        tokens, work = self.tokens, self.work
        initial = True  # the next word opens a sentence
        line_start = True  # nothing but symbols since the start of the line
        previous_end = 0
        i = 0
        while i < len(tokens):
            kind, start, _ = tokens[i]
            if work.find("\n", previous_end, start) != -1:
                initial = line_start = True
            elif _SENTENCE_MARK.search(work, previous_end, start):
                initial = True
            if kind in "nu":
                following = self._number(i, line_start)
                if following < 0:  # a list marker: the sentence has not started yet
                    following = -following
                else:
                    initial = line_start = False
            else:
                following = self._phrase(i, initial)
                initial = line_start = False
            previous_end = tokens[following - 1][2]
            i = following

    def _gap(self, i: int) -> str:
        """What lies between token i - 1 and token i."""
        return self.work[self.tokens[i - 1][2] : self.tokens[i][1]]

    def _is(self, i: int, kinds: str, gaps: tuple[str, ...] = (" ",)) -> bool:
        """Whether token i exists, is of one of these kinds, and follows the token before after one of
        these gaps."""
        return i < len(self.tokens) and self.tokens[i][0] in kinds and self._gap(i) in gaps

    def _text(self, i: int) -> str:
        return self.work[self.tokens[i][1] : self.tokens[i][2]]

    # Numbers

    def _number(self, i: int, line_start: bool) -> int:
        """The facts of the number at token i; the index after what it used (negative for a list marker)."""
        tokens, work = self.tokens, self.work
        kind, start, end = tokens[i]
        main = work[start:end]
        unit = ""
        if kind == "u":
            unit = main.lstrip(_NUMBER_CHARS)
            main = main[: len(main) - len(unit)]
            unit = unit.casefold()
        following = i + 1
        if (
            line_start
            and len(main) <= 3
            and main.isdigit()
            and not unit
            and work[end : end + 1] in (".", ")")
            and work[end + 1 : end + 2] in _LINE_SPACE
        ):
            return -(i + 1)  # "1." or "1)" opening a line: a list marker
        before = work[start - 1] if start else ""
        currency = None
        if before in _CURRENCY_MARKS or (before == " " and start > 1 and work[start - 2] in _CURRENCY_ENDS):
            currency = _currency_before(work, start)
        digits = main.isdigit()
        if digits and following < len(tokens):
            next_kind, next_start, next_end = tokens[following]
            if next_kind == "w" and len(main) <= 2 and unit in _ORDINAL_OR_NONE and currency is None:
                date = self._day_first(i, int(main))
                if date is not None:
                    return date
            elif (
                next_kind == "n"
                and next_end - next_start == 3
                and next_start == end + 1
                and work[end] == " "
                and not unit
                and len(main) <= 3
                and main[0] != "0"
            ):
                # Thousands grouped with spaces: 12 500, 1 250 000 (for the evidence, also the parts).
                groups = [main]
                while (
                    self._is(following, "n")
                    and len(self._text(following)) == 3
                    and self._text(following).isdigit()
                ):
                    groups.append(self._text(following))
                    following += 1
                if len(groups) > 1:
                    for group in groups:
                        self._also("number:" + _value(group))
                    end = tokens[following - 1][2]
                    main = "".join(groups)
        after = None
        behind = work[end : end + 2]
        if behind[:1] == "%" or (behind[:1] == " " and behind[1:] in _AFTER_FIRST):
            after = _AFTER.match(work, end)
        if digits and not unit and currency is None and after is None:
            # The common case, kept short: a plain number, or a year.
            key = "number:" + (main.lstrip("0") or "0")
            if len(main) == 4 and "1800" <= main <= "2100":
                self._date(start, end, "date:" + main)
            elif self.lenient:
                self.keys.add(key)
            elif key not in self.facts:
                self.facts[key] = (start, Fact("number", main, key))
            return following
        context = _Context(unit, currency, after, end)
        if digits:
            self._item(start, end, main, "", context, first=True, last=True, final=True, plain=True)
        else:
            self._items(start, main, context)
        return following

    def _day_first(self, i: int, day: int) -> int | None:
        """12 March, 12th of March 2021: the day at token i, the month opening the phrase after it. The
        index after what the date used: the phrase and a year after it when the month ends the phrase."""
        j = i + 1
        if not self._is(j, "w"):
            return None
        phrase = self._text(j)
        words = phrase.split(maxsplit=2)
        at = 1 if words[0].casefold() == "of" and len(words) > 1 else 0
        month = _month(words[at])
        if month is None:
            return None
        if len(words) == at + 1:  # the month ends the phrase: a year may follow
            year, following = self._year_after(j + 1)
            end = self.tokens[following - 1][2]
        else:
            year, following = None, i + 1
            end = self.tokens[j][1] + phrase.index(words[at]) + len(words[at])
        key = _date_key(year, month, day)
        if key is None:
            return None
        self._date(self.tokens[i][1], end, key)
        return following

    def _year_after(self, j: int) -> tuple[int | None, int]:
        """A year at token j (after a month, perhaps after a comma): the year and the index after it, or
        None and j."""
        if self._is(j, "n", (" ", ", ")) and len(self._text(j)) == 4 and self._text(j).isdigit():
            return int(self._text(j)), j + 1
        return None, j

    def _date(self, start: int, end: int, key: str) -> None:
        self._emit("date", start, end, key)
        if self.lenient:
            # A full date supports the same day and month, its month and its year; all support the numbers.
            rest = key[5:]
            if rest.startswith("--"):
                self.keys.add("number:" + str(int(rest[5:])))
                return
            year = rest[:4]
            self.keys.update(("date:" + year, "number:" + str(int(year))))
            if len(rest) > 7:
                self.keys.update(("date:" + rest[:7], "date:--" + rest[5:], "number:" + str(int(rest[8:]))))

    def _items(self, start: int, main: str, context: _Context) -> None:
        """A number token with separators: a date (2021-03-12), or items (a time 9:00, a fraction 24/7, a
        number 1,200.50) that what lies between joins into a range (4-6) or a list (1,2,3)."""
        parts = _PARTS.findall(main)
        groups, seps = parts[0::2], parts[1::2]
        dates = _numeric_date(groups, seps)
        if dates and not context.unit:
            self._date(start, start + len(main), dates[0])
            for key in dates[1:]:
                self._also(key)
            return
        offsets = [start]
        for part in parts:
            offsets.append(offsets[-1] + len(part))
        items: list[tuple[str, str, str, int, int]] = []  # kind, whole or hour, fraction or minutes, span
        joins: list[str] = []
        k = 0
        while k < len(groups):
            group, first = groups[k], k
            sep = seps[k] if k < len(seps) else ""
            if sep == ":" and len(group) <= 2 and int(group) <= 24 and groups[k + 1] in _MINUTES:
                items.append(("time", group, groups[k + 1], offsets[2 * k], offsets[2 * k + 3]))
                k += 2
            elif sep == "/":
                items.append(("fraction", group, groups[k + 1], offsets[2 * k], offsets[2 * k + 3]))
                k += 2
            else:
                grouped = [group]
                k += 1
                if len(group) <= 3:
                    while k < len(groups) and seps[k - 1] == "," and len(groups[k]) == 3:
                        grouped.append(groups[k])
                        k += 1
                fraction = ""
                if k < len(groups) and seps[k - 1] == ".":
                    fraction = groups[k]
                    k += 1
                kind = "number" if len(grouped) == 1 else "grouped"  # 2,014 is no year
                items.append((kind, "".join(grouped), fraction, offsets[2 * first], offsets[2 * k - 1]))
            if k < len(groups):
                joins.append(seps[k - 1])
        # In a range the currency, the % and the unit belong to every item: £10-20, 10-15%.
        ranged = bool(joins) and all(join in "-\u2013" for join in joins)
        for index, (kind, whole, fraction, item_start, item_end) in enumerate(items):
            first_item, last_item = index == 0 or ranged, index == len(items) - 1 or ranged
            final = index == len(items) - 1
            if kind == "fraction":
                self._emit("number", item_start, item_end, f"number:{_value(whole)}/{_value(fraction)}")
                self._also("number:" + _value(whole))
                self._also("number:" + _value(fraction))
            elif kind == "time":
                end = context.tail if final else item_end
                self._time(item_start, end, whole, fraction, context.ampm if last_item else "")
            else:
                self._item(
                    item_start,
                    item_end,
                    whole,
                    fraction,
                    context,
                    first=first_item,
                    last=last_item,
                    final=final,
                    plain=kind == "number",
                )

    def _item(
        self,
        start: int,
        end: int,
        whole: str,
        fraction: str,
        context: _Context,
        *,
        first: bool,
        last: bool,
        final: bool,
        plain: bool,
    ) -> None:
        """One number: money, a percentage, a time (9am, 5.30pm), a year or a plain number. `first` and
        `last`: whether what stands before and after the token applies to it; `final`: whether its text
        runs to the token's end; `plain`: written without a thousands separator."""
        if final:
            end = context.tail
        if last and context.ampm and len(whole) <= 2 and (not fraction or fraction in _MINUTES):
            self._time(start, end, whole, fraction, context.ampm)
            return
        if last and context.shift:
            whole, fraction = _shift(whole, fraction, context.shift)
        value = _value(whole, fraction)
        self._also("number:" + value)  # whatever it is, its value supports the same number
        currency = context.currency if first else None
        if currency is not None or (last and context.money_after):
            self._emit("money", start if currency is None else currency, end, "money:" + value)
        elif last and context.percent:
            self._emit("percent", start, end, "percent:" + value)
        elif (
            plain
            and len(whole) == 4
            and not fraction
            and context.unit in ("", "s")
            and "1800" <= whole <= "2100"
        ):
            self._date(start, end, "date:" + whole)
        else:
            self._emit("number", start, end, "number:" + value)

    def _time(self, start: int, end: int, hour_text: str, minutes: str, ampm: str) -> None:
        hour = int(hour_text)
        minutes = minutes or "00"
        if ampm and 1 <= hour <= 12:
            hour = hour % 12 + (12 if ampm == "p" else 0)
        if hour > 24:
            return
        self._emit("time", start, end, f"time:{hour:02d}:{minutes}")
        if not ampm and 1 <= hour <= 11 and not hour_text.startswith("0"):
            self._also(f"time:{hour + 12:02d}:{minutes}")  # 5:30 may be half past five in the afternoon

    # Phrases: words separated by spaces

    def _phrase(self, i: int, initial: bool) -> int:
        """The facts of the phrase at token i: a code at its end (P1), a date it ends with (March 2021, with
        the tokens after it), spelled-out numbers and, in an answer, names."""
        kind, start, end = self.tokens[i]
        work = self.work
        text = work[start:end]
        folded = text.casefold().split()
        last = max(text.rfind(" "), text.rfind("\t")) + 1  # where the last word starts
        following = i + 1
        if kind == "c":
            # The letters the code's digits are glued to are part of it, not a word.
            self._emit("number", start + last, end, "number:" + text[last:].casefold())
            folded.pop()
            end = start + last
        else:
            month = _month(text[last:])
            if month is not None:
                following = self._month_first(i, month, start + last) or following
        spelled = not _TRIGGERS.isdisjoint(folded) or "-" in text
        names = not self.lenient and not text.islower()
        if spelled or names:
            words = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(work, start, end)]
            if spelled:
                self._spelled(words, folded)
            if names:
                self._names(words, initial)
        return following

    def _month_first(self, i: int, month: int, start: int) -> int | None:
        """March 12, March 12th, 2021, March 2021: the month ends the phrase at token i and starts at
        `start`; the index after what the date used."""
        j = i + 1
        if not self._is(j, "nu", (" ", ". ")):  # March 12, Sept. 12
            return None
        text = self._text(j)
        main = text.rstrip(_ASCII_LETTERS)
        if not main.isdigit() or text[len(main) :].casefold() not in _ORDINAL_OR_NONE:
            return None
        if len(main) == 4 and main == text:
            key, following = _date_key(int(main), month, None), j + 1
        elif len(main) <= 2:
            year, following = self._year_after(j + 1)
            key = _date_key(year, month, int(main))
        else:
            return None
        if key is None:
            return None
        self._date(start, self.tokens[following - 1][2], key)
        return following

    def _spelled(self, words: list[tuple[str, int, int]], folded: list[str]) -> None:
        """Spelled-out numbers: each value counts for the evidence; in an answer one is a fact only before
        what it counts (four weeks, two working days, a four-hour call), percent or a currency word."""
        k = 0
        while k < len(folded):
            parsed = _spelled_number(folded, k)
            if parsed is None:
                k += 1
                continue
            value, used, tail = parsed
            self._also(f"number:{value}")
            rest = [tail, *folded[k + used : k + used + 3]] if tail else folded[k + used : k + used + 3]
            extra = 0 if tail else 1  # words after the number that name what it is
            if rest[:1] == ["percent"] or rest[:2] == ["per", "cent"]:
                extra *= 1 if rest[0] == "percent" else 2
                self._emit("percent", words[k][1], words[k + used - 1 + extra][2], f"percent:{value}")
            elif rest[:1] and rest[0] in _CURRENCY_WORDS:
                self._emit("money", words[k][1], words[k + used - 1 + extra][2], f"money:{value}")
            elif not self.lenient and _counts(rest):
                self._emit("number", words[k][1], words[k + used - 1][2], f"number:{value}")
            k += used

    def _names(self, words: list[tuple[str, int, int]], initial: bool) -> None:
        """The runs of capitalised words, less the words that name nothing (see the module docstring)."""
        k = 0
        while k < len(words):
            if not words[k][0][0].isupper():
                k += 1
                continue
            run: list[tuple[str, int, int]] = []
            while k < len(words) and words[k][0][0].isupper():
                word, start, end = words[k]
                k += 1
                if "-" in word and not all(part[:1].isupper() for part in word.split("-")):
                    # UK-based, AI-powered, Co-founder: the capitalised parts name something, and the
                    # lower-case part ends the name.
                    parts = word.split("-")
                    kept = next(n for n, part in enumerate(parts) if not part[:1].isupper())
                    word = "-".join(parts[:kept])
                    run.append((word, start, start + len(word)))
                    break
                run.append((word, start, end))
            folded = [_fold(word) for word, _, _ in run]
            drop = _NEVER_NAMES_OR_OPENERS if initial and run[0][1] == words[0][1] else _NEVER_NAMES
            first, final = 0, len(folded)
            while first < final and folded[first] in drop:
                first += 1
            while final > first and folded[final - 1] in _NEVER_NAMES:
                final -= 1
            if first < final:
                key = "name:" + " ".join(folded[first:final])
                self._emit("name", run[first][1], run[final - 1][2], key)


def _spelled_number(words: list[str], k: int) -> tuple[int, int, str] | None:
    """The spelled-out number starting at words[k] (folded): its value, how many words it spans, and what
    a hyphen glues to it that is not part of it ("hour" of "four-hour")."""
    head, _, tail = words[k].partition("-")
    value = _UNITS.get(head, _TENS.get(head))
    if value is None:
        return None
    used = 1
    if head in _TENS:  # twenty-five, twenty five
        if 0 < _UNITS.get(tail, 0) < 10:
            value, tail = value + _UNITS[tail], ""
        elif not tail and k + 1 < len(words) and 0 < _UNITS.get(words[k + 1], 0) < 10:
            value, used = value + _UNITS[words[k + 1]], 2
    if not tail and k + used < len(words) and words[k + used] in _SCALES:
        value, used = value * _SCALES[words[k + used]], used + 1
    return value, used, tail


def _counts(words: list[str]) -> bool:
    """Whether the words after a spelled-out number name what it counts: a countable noun within three
    words ("two paid summer internships"), before any function word ("one of our clients")."""
    for word in words:
        stem = _stem(word)
        if stem in _COUNTED:
            return True
        if stem in _FUNCTION_WORDS:
            return False
    return False


class _Context:
    """What stands around a number token: its glued unit, a currency mark before it, and what follows."""

    __slots__ = ("ampm", "currency", "money_after", "percent", "shift", "tail", "unit")

    def __init__(self, unit: str, currency: int | None, after: re.Match[str] | None, end: int) -> None:
        self.unit = unit  # the letters glued to it, folded: "am", "k", "rd", "gb"
        self.currency = currency  # where a currency mark or code just before it starts
        pct, cur, mult, ampm = after.group("pct", "cur", "mult", "ampm") if after else (None,) * 4
        self.percent = bool(pct)
        self.money_after = bool(cur)
        self.ampm = unit[0] if unit in ("am", "pm") else (ampm[0].lower() if ampm else "")
        # The power of ten a multiplier stands for: 12.5k, £1.2m, 3 million (but 5m is minutes or metres).
        shift = {"k": 3, "m": 6, "mn": 6, "b": 9, "bn": 9}.get(unit, 0)
        self.shift = (shift if shift <= 3 or currency is not None else 0) + (
            {"t": 3, "m": 6}.get(mult[0].lower(), 9) if mult else 0
        )
        # Where the number's text ends: after its glued unit, and after what follows it that counts.
        self.tail = after.end() if after and (pct or cur or mult or ampm) else end


def _currency_before(text: str, start: int) -> int | None:
    """Where a currency mark or code just before position `start` begins (£12, £ 12, GBP 12), if any."""
    mark = start - 1 if start and text[start - 1] == " " else start
    if mark and text[mark - 1] in _CURRENCY_MARKS:
        return mark - 1
    if mark >= 3 and text[mark - 3 : mark].casefold() in ("gbp", "usd", "eur"):
        return mark - 3 if mark == 3 or not text[mark - 4].isalnum() else None
    return None


def _drop_trunk_zero(run: str) -> str:
    """The digits of `+44 (0)117 ...` without the `(0)` that is dialled only from inside the country."""
    return "".join(ch for ch in run.replace("(0)", "", 1) if ch.isdigit())


def _is_phone(groups: list[str], seps: list[str], digits: str, international: bool) -> bool:
    if not 7 <= len(digits) <= 15 or any(sep not in _PHONE_SEPS for sep in seps):
        return False
    if "." in seps and (len(seps) < 2 or any(sep != "." for sep in seps)):
        return False  # one dot is a decimal point
    if _numeric_date(groups, seps):
        return False
    if international:
        return True
    if not seps:
        return digits[0] == "0"  # 01174960738 is a phone number, 1000000 a number
    if (
        groups[0][0] != "0"
        and len({len(group) for group in groups}) == 1
        and all(a < b for a, b in itertools.pairwise(groups))
    ):
        return False  # 2019-2024, 1000-2000: a range or a list
    spaced_thousands = all(sep == " " for sep in seps) and all(len(g) == 3 for g in groups[1:])
    return not (spaced_thousands and len(groups[0]) <= 3 and groups[0][0] != "0")


def _url_in(chunk: str) -> tuple[int, int] | None:
    """Where a URL lies in a chunk of text without spaces, if it holds one."""
    scheme = chunk.find("://")
    if scheme > 0:
        start = scheme
        while start > 0 and chunk[start - 1].isascii() and chunk[start - 1].isalpha():
            start -= 1
        end = _url_end(chunk, scheme + 3)
        return (start, end) if start < scheme and end > scheme + 3 else None
    www = _WWW.search(chunk)
    if www is not None and (www.start() == 0 or not chunk[www.start() - 1].isalnum()):
        end = _url_end(chunk, www.start())
        return (www.start(), end) if end > www.end() and "." in chunk[www.end() : end] else None
    start = len(chunk) - len(chunk.lstrip(_URL_LEAD))
    end = _url_end(chunk, start)
    core = chunk[start:end]
    if not _BARE_URL.fullmatch(core):
        return None
    cut = min((core.find(mark) for mark in "/?#" if mark in core), default=len(core))
    labels = core[:cut].split(".")
    tld = labels[-1]
    if not (tld.isalpha() and len(tld) >= 2) or tld.casefold() in _FILE_EXTENSIONS:
        return None
    # Without a path a bare host needs a lower-case, common top-level domain ("Bristol.It" is a typo).
    if cut < len(core) or len(labels) >= 3 or (tld in _TLDS):
        return start, end
    return None


def _url_end(chunk: str, start: int) -> int:
    """The end of a URL starting at `start`: closing punctuation dropped, a `)` the URL opened kept."""
    core = chunk[start:].rstrip(_URL_TRAIL)
    end = start + len(core)
    if end < len(chunk) and chunk[end] == ")" and core.count("(") > core.count(")"):
        end += 1
    return end


def _url_key(url: str) -> str:
    key = url.lower()
    scheme = key.find("://")
    if scheme != -1:
        key = key[scheme + 3 :]
    if key.startswith("www."):
        key = key[4:]
    return "url:" + key.rstrip("/")


# --- The evidence ---

_Reading = tuple[frozenset[str], frozenset[str], frozenset[tuple[str, str]]]  # keys, words, word pairs
_CACHED_CHARS = 8_000  # a passage; longer texts are read each time, so the cache stays small


def _read(text: str) -> _Reading:
    reader = _Reader(text, lenient=True)
    return frozenset(reader.keys), frozenset(reader.words), frozenset(reader.pairs)


# The same passages come back for question after question: each is read once.
_read_cached = functools.lru_cache(maxsize=512)(_read)


class Evidence:
    """The texts an answer may draw its facts from (passages, the question, the conversation), read once:
    check any number of facts or answers against it."""

    __slots__ = ("_keys", "_pairs", "_words")

    def __init__(self, texts: Iterable[str]) -> None:
        if isinstance(texts, str):  # one text, not its characters
            texts = (texts,)
        self._keys: set[str] = set()
        self._words: set[str] = set()
        self._pairs: set[tuple[str, str]] = set()
        for text in texts:
            keys, words, pairs = _read(text) if len(text) > _CACHED_CHARS else _read_cached(text)
            self._keys |= keys
            self._words |= words
            self._pairs |= pairs

    def supports(self, fact: Fact) -> bool:
        keys = self._keys
        if fact.key in keys:
            return True
        kind, _, rest = fact.key.partition(":")
        if kind == "money":
            return "number:" + rest in keys  # the same amount, with any currency mark or none
        if kind == "date":
            return len(rest) == 4 and "number:" + rest in keys  # a year written as a plain number
        if kind == "time":
            hour, minutes = int(rest[:2]), rest[3:]
            unmarked = not any(ch.isalpha() for ch in fact.text) and not fact.text.startswith("0")
            return unmarked and 1 <= hour <= 11 and f"time:{hour + 12:02d}:{minutes}" in keys
        if kind == "phone":
            # An international number written nationally in the evidence, or the other way round.
            if fact.text.lstrip("(").startswith(("+", "00")):
                return any("phone:" + national in keys for national in _phone_variants(rest, True))
            return "phone~" + rest in keys
        if kind == "name":
            return self._name(rest.split(" "))
        return False

    def _name(self, words: list[str]) -> bool:
        # Hyphenated words by their parts, as the evidence's pairs are ("Response-Time Targets").
        stems = [_stem(part) for word in words for part in word.split("-")]
        core = len(stems)
        while core > 1 and stems[core - 1] in _GENERIC:
            core -= 1  # "Care Plus Plan": the plan is no part of the name
        if any(stem not in self._words for stem in stems[:core]):
            return False
        return all((stems[k], stems[k + 1]) in self._pairs for k in range(core - 1))

    def unsupported(self, answer: str) -> list[Fact]:
        """The answer's facts that this evidence does not support, each once, in the order they appear."""
        return [fact for fact in checkable_facts(answer) if not self.supports(fact)]


def checkable_facts(text: str) -> list[Fact]:
    """The facts of a text a reader could check, each once (by key), in the order they first appear."""
    # E-mail addresses, URLs and phone numbers are read before the rest: put every fact back in its place.
    return [fact for _, fact in sorted(_Reader(text, lenient=False).facts.values(), key=lambda item: item[0])]


def unsupported(answer: str, evidence: Iterable[str] | Evidence) -> list[Fact]:
    """The answer's facts that none of the evidence texts supports (pass the question and the conversation
    as evidence too). Build an `Evidence` once to check several answers against the same texts."""
    index = evidence if isinstance(evidence, Evidence) else Evidence(evidence)
    return index.unsupported(answer)
