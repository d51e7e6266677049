"""Greetings, thanks, goodbyes and "who are you?": answered as small talk, without a knowledge lookup.

Only a message that is small talk and nothing else is recognised: "hi, what are your prices?" is a question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SmallTalkKind = Literal["greeting", "thanks", "goodbye", "identity", "wellbeing", "acknowledgement"]

_FILLER = (
    r"(?:\s+(?:there|all|everyone|again|guys|folks|team|bot|friend|mate|so much|a lot|a lot again|lots))*"
)
_PATTERNS: tuple[tuple[SmallTalkKind, str], ...] = (
    (
        "greeting",
        r"(?:hi+|hello+|hey+|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening|day)|"
        r"hola|bonjour|hallo|ciao|salut|ola)" + _FILLER,
    ),
    (
        "thanks",
        r"(?:(?:ok(?:ay)?|great|perfect|awesome|cool|nice|brilliant|lovely)\s+)?"
        r"(?:thanks?(?: you)?|thank u|thx|ty|cheers|much appreciated|appreciate it)" + _FILLER,
    ),
    (
        "goodbye",
        r"(?:(?:ok(?:ay)?|thanks?)\s+)?(?:bye+|goodbye|bye ?bye|see (?:you|ya)(?: later| soon)?|"
        r"have a (?:nice|good|great) (?:day|evening|one)|good ?night|take care)" + _FILLER,
    ),
    (
        "identity",
        r"(?:who|what) (?:are|r) (?:you|u)|what is your name|what'?s your name|"
        r"are you (?:a )?(?:bot|robot|human|real person|real|an? ai|chatgpt)|"
        # Not "what do you do?": on a company's site that asks what the company does.
        r"what can you do",
    ),
    ("wellbeing", r"how are (?:you|u)(?: doing| today)*|how'?s it going|how do you do|you ok|are you ok"),
    (
        "acknowledgement",
        r"(?:ok(?:ay)?|k|great|perfect|awesome|cool|nice|brilliant|lovely|got it|i see|alright|all right|"
        r"sounds good|understood|fine|good)(?:\s+(?:then|thanks?))?",
    ),
)
_SMALL_TALK = [(kind, re.compile(rf"^(?:{pattern})$")) for kind, pattern in _PATTERNS]
_GREETING_PREFIX = re.compile(r"^(?:hi+|hello+|hey+|good (?:morning|afternoon|evening))(?:\s+there)?\s+")
_PUNCTUATION = re.compile(r"[^\w\s']+")


DEFAULT_INTRO = (
    "I'm this website's virtual assistant. I answer questions from the company's own information, "
    "and tell you where each answer comes from. What would you like to know?"
)


@dataclass(frozen=True, slots=True)
class SmallTalkReplies:
    greeting: str = "Hello! How can I help you today?"
    thanks: str = "You're welcome! Is there anything else I can help you with?"
    goodbye: str = "Goodbye, and thanks for stopping by!"
    identity: str = DEFAULT_INTRO
    wellbeing: str = "I'm doing well, thank you for asking! What can I help you with?"
    acknowledgement: str = "Is there anything else I can help you with?"

    def reply(self, kind: SmallTalkKind) -> str:
        text: str = getattr(self, kind)
        return text


def recognise(message: str) -> SmallTalkKind | None:
    """The kind of small talk `message` is, or None when it asks for something."""
    text = " ".join(_PUNCTUATION.sub(" ", message.lower().replace("\u2019", "'")).split())
    if not text or len(text) > 60:
        return None
    for kind, pattern in _SMALL_TALK:
        if pattern.match(text):
            return kind
    # "Hi, who are you?" is the identity question, politely put.
    stripped = _GREETING_PREFIX.sub("", text)
    if stripped != text:
        for kind, pattern in _SMALL_TALK:
            if kind != "greeting" and pattern.match(stripped):
                return kind
    return None
