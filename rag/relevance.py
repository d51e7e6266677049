"""Whether the knowledge has anything about a question: a decision calibrated per knowledge base and per
question, taken before any passage is handed to a model.

A fixed score floor cannot tell a visitor's real question from "What is the capital of Australia?": on the
bundled knowledge off-topic questions reached 0.15-0.18, as high as some real ones, and the level moves with
every knowledge base. This decision weighs, per question:

1. How similar the best passage is, against what unrelated questions reach on *this* knowledge: a fixed set
   of general questions (`UNRELATED_PROBES`) is searched once per knowledge version; the bar is what all
   but `unrelated_rate` of such questions stay under (from their median and spread, so that the few probes
   that happen to be on a knowledge base's topic move it little).
2. What the question asks about that the knowledge never mentions. Its content words (not function words;
   a misspelling of a word the knowledge uses counts as that word) are weighed by BM25's IDF over this
   knowledge, so a word no passage holds weighs most. The larger the share of the question's weight that
   is foreign to the knowledge, the closer its best passage must come to the similarity the knowledge's own
   sentences reach when searched against it (their `foreign_quantile`, measured once per version too):
   "Do you build Magento stores?" must look almost as much like the knowledge as the knowledge itself
   does; "How much is the Growth package?" only has to beat the unrelated questions.
3. Whether the passages found hold any of the question's known content words at all.

Everything a knowledge version needs is measured lazily, on its first question, once (about a second on two
quiet cores), and kept until the knowledge changes; a question then costs a tokenization of itself and of
its passages (about a millisecond beside the retrieval). Blocking: call from a worker thread.
"""

from __future__ import annotations

import math
import re
import statistics
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import structlog

from rag.chunking import indexed_text
from rag.embedder import Embedder, resolve_model_path
from rag.lexical import TermStatistics
from rag.retriever import Found, Passage, Retriever
from rag.settings import DEFAULT_FOREIGN_QUANTILE, DEFAULT_UNRELATED_RATE

log = structlog.get_logger(__name__)

# Passages sampled for the knowledge's own sentences; the unrelated probes are the fixed list below.
KNOWLEDGE_PROBES = 60
_MAD_TO_SD = 1.4826  # the median absolute deviation of a normal distribution, in standard deviations
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

# A word this short that is neither the knowledge's nor the dictionary's is shorthand or an unreadable typo.
_SHORTHAND = 3
# The words of bm25s's tokenizer: runs of two or more word characters.
_WORD = re.compile(r"(?u)\b\w\w+\b")

# Words that carry no topic: a question is not out of scope because the knowledge never says "much" or
# "whats". Pronouns, determiners, auxiliaries, prepositions, conjunctions, question words, common adverbs
# and light verbs, contractions written without an apostrophe, and chat shorthand.
_FUNCTION_WORDS = """
    a an the this that these those some any each every either neither no all both few many much more most
    other another such own same several
    i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself she
    her hers herself it its itself they them their theirs themselves one ones someone something anyone
    anything everyone everything nobody nothing somebody anybody everybody
    what which who whom whose when where why how whatever whenever wherever however
    am is are was were be been being have has had having do does did doing done can could will would shall
    should may might must
    not nor don doesn didn isn aren wasn weren hasn haven hadn won wouldn shouldn couldn cannot ll ve re
    about above across after against along among around at before behind below beside between beyond by
    down during except for from in inside into near of off on onto out outside over past per since than
    through till to toward towards under until up upon via with within without
    and but or so yet because although though while whereas if unless whether as then also
    very really quite just only too still even ever never always often sometimes usually again already
    almost here there now soon well rather perhaps maybe please thanks thank hello hi ok okay actually
    long far ago
    get gets got getting make makes made making want wants like tell know let say go goes going went come
    take give think see look need
    whats thats hows wheres whos dont doesnt didnt cant wont isnt arent im ive youre theyre lets
    u ur r n y pls plz thx wat wot
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())

# General questions about everything but a business: what unrelated visitors' questions look like. Some
# will be on topic for some knowledge (a medical library answers the vitamins one); the bar takes an upper
# quantile, so a few such probes move it little.
UNRELATED_PROBES = (
    "What is the longest river in Africa?",
    "Who composed the Four Seasons?",
    "How many legs does a spider have?",
    "What year did the Titanic sink?",
    "How do I make pancakes without eggs?",
    "What is the best time of year to visit Iceland?",
    "How do you knit a scarf?",
    "Which team won the last Super Bowl?",
    "What causes thunder?",
    "How far away is Mars?",
    "Who invented the telephone?",
    "What is the recipe for a classic margarita?",
    "How often should I water a cactus?",
    "What is the plot of Hamlet?",
    "How do I get red wine out of a carpet?",
    "What is the difference between a crocodile and an alligator?",
    "How many strings does a violin have?",
    "When is the next solar eclipse?",
    "What is the largest ocean on Earth?",
    "How do I tie a bow tie?",
    "Who is the lead singer of Coldplay?",
    "How do I bleed a radiator?",
    "Why is the sky blue?",
    "What is the national animal of Scotland?",
    "How do I look after a goldfish?",
    "What language is spoken in Brazil?",
    "How many calories are in a banana?",
    "What's a good name for a black cat?",
    "How long does it take to walk the Great Wall of China?",
    "Which is the smallest country in the world?",
    "How do I clean a cast iron pan?",
    "What is the rule for offside in football?",
    "How do bees make honey?",
    "Who was the first emperor of Rome?",
    "What should I pack for a skiing holiday?",
    "How do I stop my dog barking at night?",
    "What does photosynthesis produce?",
    "How do I iron a shirt properly?",
    "What is the highest score in ten-pin bowling?",
    "Which vitamins are in oranges?",
    "How many moons does Jupiter have?",
    "What is origami?",
    "How do I defrost a freezer?",
    "Who wrote the Odyssey?",
    "What are the rules of rugby?",
    "How do I sharpen a kitchen knife?",
    "What temperature does glass melt at?",
    "Is it going to snow at Christmas?",
    "How do volcanoes form?",
    "What is the tallest animal?",
    "Can you tell me a joke about penguins?",
    "How do I learn to juggle?",
    "What's the plural of octopus?",
    "How do you play the ukulele?",
    "What is the life cycle of a butterfly?",
    "Where do kangaroos live?",
    "How do I make my houseplants grow faster?",
    "What is the best way to learn French?",
    "Which metal is the best conductor of electricity?",
    "How long do tortoises live?",
)


@dataclass(frozen=True, slots=True)
class Calibration:
    """What one knowledge version's questions are measured against."""

    build: str
    unrelated: float  # the similarity unrelated questions reach here, at most (but for `unrelated_rate`)
    related: float  # the similarity the knowledge's own sentences reach (their `foreign_quantile`)
    lexicon: Lexicon | None  # None: no keyword index (dense retrieval without one): similarity alone
    seconds: float


@dataclass(frozen=True, slots=True)
class Verdict:
    relevant: bool
    reason: str  # why not, for the log; "relevant" when relevant
    similarity: float  # the best passage's cosine similarity
    needed: float  # the similarity this question had to reach
    foreign: tuple[str, ...] = ()  # its content words the knowledge never uses (stemmed)
    foreign_share: float = 0.0  # their share of the question's content weight
    shared: float = 0.0  # the largest share of that weight one passage holds

    def log_fields(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "similarity": round(self.similarity, 4),
            "needed": round(self.needed, 4),
            "foreign": list(self.foreign),
            "foreign_share": round(self.foreign_share, 3),
            "shared": round(self.shared, 3),
        }


class RelevanceCheck:
    """Decides, per question, whether what retrieval found is about it; calibrated per knowledge version.

    `unrelated_rate`: the share of unrelated questions whose best passage may be similar enough to pass the
    similarity test (the foreign-word test catches most of those); lower is stricter.
    `foreign_quantile`: the quantile of the knowledge's own sentences' similarity that a question made only
    of words the knowledge never uses must reach; lower is more lenient."""

    def __init__(
        self,
        unrelated_rate: float = DEFAULT_UNRELATED_RATE,
        foreign_quantile: float = DEFAULT_FOREIGN_QUANTILE,
    ) -> None:
        if not 0 < unrelated_rate < 1:
            raise ValueError("unrelated_rate must be between 0 and 1")
        if not 0 <= foreign_quantile <= 1:
            raise ValueError("foreign_quantile must be between 0 and 1")
        self.unrelated_rate = unrelated_rate
        self.foreign_quantile = foreign_quantile
        self._calibration: Calibration | None = None
        self._lock = threading.Lock()

    def judge(self, retriever: Retriever, question: str, found: Found) -> Verdict:
        """Blocking on a knowledge version's first question (calibration): call from a worker thread."""
        if found.similarity is None or not found.passages:
            return Verdict(False, "nothing found", 0.0, 0.0)
        calibration = self.calibration(retriever)
        if calibration is None:  # the knowledge changed under us and is now empty
            return Verdict(False, "nothing found", found.similarity, 0.0)
        similarity = found.similarity
        if calibration.lexicon is None:
            return Verdict(
                similarity >= calibration.unrelated,
                "unlike the knowledge",
                similarity,
                calibration.unrelated,
            )
        terms = calibration.lexicon.content_terms(question)
        total = sum(t.weight for t in terms)
        foreign = [t for t in terms if t.known is None]
        foreign_share = sum(t.weight for t in foreign) / total if total else 0.0
        # Only the part of the question the knowledge knows can be found in a passage.
        shared = (
            max(
                sum(t.weight for t in terms if t.known is not None and t.known in words)
                for words in (
                    calibration.lexicon.passage_terms(indexed_text(p.title, p.headings, p.text))
                    for p in found.passages
                )
            )
            / total
            if total
            else 0.0
        )
        # From the unrelated questions' bar (nothing foreign) up to the knowledge's own sentences (all of it).
        span = max(0.0, calibration.related - calibration.unrelated)
        needed = calibration.unrelated + foreign_share * span
        names = tuple(t.stem for t in foreign)
        if similarity < calibration.unrelated:
            reason = "unlike the knowledge"
        elif similarity < needed and shared <= 0.5:
            # A passage that holds most of what the question asks is about it, whatever else the question
            # says in words the knowledge does not use ("Where *physically* are your servers?").
            reason = "asks about what the knowledge never mentions"
        elif total and foreign_share < 1 and shared == 0:
            reason = "the passages share none of its words"
        else:
            reason = "relevant"
        return Verdict(reason == "relevant", reason, similarity, needed, names, foreign_share, shared)

    def calibration(self, retriever: Retriever) -> Calibration | None:
        """This knowledge version's calibration, measured on its first question and kept until it changes."""
        build = retriever.build_name
        if build is None:
            return None
        known = self._calibration
        if known is not None and known.build == build:
            return known
        with self._lock:
            known = self._calibration
            if known is None or known.build != build:
                known = self._calibrate(retriever, build)
                self._calibration = known
        return known

    def _calibrate(self, retriever: Retriever, build: str) -> Calibration:
        started = time.perf_counter()
        embedder = retriever.embedder
        unrelated_scores = retriever.similarities(_probe_vectors(embedder))
        sentences = _sentences(retriever.sample_passages(KNOWLEDGE_PROBES))
        related_scores = retriever.similarities(embedder.embed(sentences)) if sentences else []
        statistics_ = retriever.term_statistics()
        calibration = Calibration(
            build=build,
            unrelated=_robust_upper(unrelated_scores, self.unrelated_rate),
            related=_quantile(related_scores, self.foreign_quantile) if related_scores else 1.0,
            lexicon=Lexicon(statistics_, _dictionary(retriever.embedder.model_name)) if statistics_ else None,
            seconds=time.perf_counter() - started,
        )
        log.info(
            "relevance_calibrated",
            build=build,
            unrelated=round(calibration.unrelated, 4),
            related=round(calibration.related, 4),
            terms=len(statistics_.frequency) if statistics_ else 0,
            seconds=round(calibration.seconds, 3),
        )
        return calibration


@dataclass(frozen=True, slots=True)
class Term:
    stem: str  # as the question spells it, stemmed
    known: str | None  # the knowledge's term it is (itself, or the word it misspells); None: foreign
    weight: float


@dataclass(frozen=True, slots=True)
class Lexicon:
    """One knowledge version's words, their IDF weights, and the real words of the language."""

    statistics: TermStatistics
    dictionary: frozenset[str]  # real words (the embedding model's vocabulary): never taken for typos

    def weight(self, term: str | None) -> float:
        """BM25's IDF (as bm25s computes it); a term no passage holds weighs most."""
        total = self.statistics.documents
        df = self.statistics.frequency.get(term, 0) if term else 0
        return math.log(1 + (total - df + 0.5) / (df + 0.5))

    def content_terms(self, text: str) -> list[Term]:
        """The question's content words, once each, with the knowledge's term each one is (or None)."""
        spelt = [w for w in _WORD.findall(text) if w.lower() not in FUNCTION_WORDS]
        words = [w.lower() for w in spelt]
        terms: dict[str, Term] = {}
        for as_written, word, stem in zip(spelt, words, _stem(words), strict=True):
            known: str | None = stem if stem in self.statistics.frequency else None
            if known is None:
                known = self._compound(word)
            if known is None and word not in self.dictionary:
                known = self._correction(stem)
                if known is None and self._misspelt_function_word(word):
                    continue
                if known is None and len(word) <= _SHORTHAND and not as_written.isupper():
                    # "ppl", "ful", "2am": shorthand or a typo too short to tell which word it is. One in
                    # capitals ("NDA", "ISO") is an acronym: it names something, and stays.
                    continue
            key = known or f"?{stem}"
            if key not in terms:
                terms[key] = Term(stem, known, self.weight(known))
        return list(terms.values())

    def passage_terms(self, text: str) -> set[str]:
        return set(_stem(_WORD.findall(text.lower())))

    def _correction(self, stem: str) -> str | None:
        """The knowledge's most common term one edit (a letter added, dropped, changed, or two neighbours
        swapped) from `stem`, if any. The edits are generated, not indexed: only unknown words that are not
        real words get here, and a few hundred lookups cost less than an index of the vocabulary's size."""
        if len(stem) < 4:  # a shorter word one edit from another is as likely another word
            return None
        frequency = self.statistics.frequency
        close = [t for t in _edits(stem) if len(t) >= 4 and t in frequency]
        return max(close, key=lambda t: (frequency[t], t)) if close else None

    def _compound(self, word: str) -> str | None:
        """The knowledge's term for a compound it writes apart or hyphenated and the question writes as one
        word ("email" for "e-mail", "website" for "web site"): its last part, when every part is known
        (a lone first letter, as in e-mail, is dropped by the tokenizer and so cannot be)."""
        frequency = self.statistics.frequency
        for cut in range(1, len(word) - 2):
            head, tail = word[:cut], word[cut:]
            if len(head) == 2 or head in FUNCTION_WORDS or tail in FUNCTION_WORDS:
                continue  # "turnover" is no turn and no over
            head_known = len(head) == 1 or _stem([head])[0] in frequency
            tail_stem = _stem([tail])[0]
            if head_known and tail_stem in frequency:
                return tail_stem
        return None

    def _misspelt_function_word(self, word: str) -> bool:
        return any(len(w) >= 3 and w in FUNCTION_WORDS for w in _edits(word))


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _edits(word: str) -> set[str]:
    """Every string one edit from `word`: a letter dropped, two neighbours swapped, a letter changed or
    added."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return {
        *(a + b[1:] for a, b in splits if b),
        *(a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1),
        *(a + c + b[1:] for a, b in splits if b for c in _LETTERS),
        *(a + c + b for a, b in splits for c in _LETTERS),
    }


_probes_lock = threading.Lock()
_probes: dict[str, list[list[float]]] = {}


def _probe_vectors(embedder: Embedder) -> list[list[float]]:
    """The unrelated probes, embedded once per model and process: a new knowledge version then only embeds
    its own sentences."""
    with _probes_lock:
        vectors = _probes.get(embedder.model_name)
        if vectors is None:
            vectors = _probes[embedder.model_name] = embedder.embed(list(UNRELATED_PROBES))
        return vectors


_stemmer_lock = threading.Lock()


def _stem(words: Sequence[str]) -> list[str]:
    """Snowball English, as the keyword index stems (a PyStemmer object caches its words, and is not
    thread-safe)."""
    with _stemmer_lock:
        stems: list[str] = _english_stemmer().stemWords(list(words))
        return stems


@lru_cache(maxsize=1)
def _english_stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=4)
def _dictionary(model_name: str) -> frozenset[str]:
    """Whole words of the embedding model's vocabulary: a word in it is a word, not a typo. Empty if the
    model has no word-piece vocabulary to read (then any unknown word may be read as a typo)."""
    try:
        vocabulary = resolve_model_path(model_name) / "vocab.txt"
        words = vocabulary.read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return frozenset()
    return frozenset(w for w in words if w.isalpha() and w.islower())


def _sentences(texts: Iterable[str]) -> list[str]:
    """One sentence per passage, as a visitor might quote it: its first line or sentence of six words or more
    that is not a table row."""
    sentences = []
    for text in texts:
        pieces = (p.strip(" -*#>") for line in text.splitlines() for p in _SENTENCE_END.split(line))
        sentence = next((p for p in pieces if "|" not in p and len(_WORD.findall(p)) >= 6), None)
        if sentence:
            sentences.append(sentence[:300])
    return sentences


def _robust_upper(scores: Sequence[float], rate: float) -> float:
    """The score all but `rate` of `scores` stay under, were they normal, from their median and median
    absolute deviation: a few probes that happen to be on the knowledge's topic move it little."""
    if not scores:
        return 0.0
    middle = statistics.median(scores)
    spread = _MAD_TO_SD * statistics.median(abs(s - middle) for s in scores)
    return middle + NormalDist().inv_cdf(1 - rate) * spread


def _quantile(scores: Sequence[float], quantile: float) -> float:
    """The `quantile` of `scores` (linear interpolation between the nearest ranks)."""
    if not scores:
        return 0.0
    ordered = sorted(scores)
    position = quantile * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Selection:
    """What a question is answered from: the passages kept (none: say "I don't know"), and why."""

    passages: list[Passage]
    found: int  # passages retrieval returned, before any was dropped
    best_score: float  # the best of their scores (0 when none)
    verdict: Verdict | None  # None: no calibrated check (RELEVANCE_FLOOR alone)


def select(retriever: Retriever, question: str, *, floor: float, check: RelevanceCheck | None) -> Selection:
    """Search, drop passages scoring below `floor` (a hard minimum; 0: none), then let `check` decide
    whether what is left is about the question. Blocking: call from a worker thread."""
    found = retriever.search(question)
    best = max((p.score for p in found.passages), default=0.0)
    kept = [p for p in found.passages if p.score >= floor]
    if not kept or check is None:
        return Selection(kept, len(found.passages), best, None)
    verdict = check.judge(retriever, question, Found(kept, found.similarity))
    return Selection(kept if verdict.relevant else [], len(found.passages), best, verdict)
