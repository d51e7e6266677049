"""A visitor asking for a person ("can I talk to a human?"): answered at once, without a knowledge lookup,
with the way to reach one (the widget then offers its contact form).

As with small talk, only a message that asks for a person and nothing else is recognised: "can I talk to
someone about a refund for order 1234?" is a question the knowledge may answer.
"""

from __future__ import annotations

import re

_SOMEONE = (
    r"(?:a |an |some |the |your |one of your )?(?:real |live |actual )?"
    r"(?:human(?: being)?|person|people|someone|somebody|agent|representative|rep|operator|advisor|adviser|"
    r"staff|member of (?:staff|your team)|support(?: team| agent| person)?|customer (?:service|support)"
    r"(?: agent| representative| team)?|sales(?: team| person)?|team|manager)"
    r"(?: (?:from|at|of) (?:your|the) (?:team|company|shop|store|office))?"
)
_ASK = (
    r"(?:(?:can|could|may) i|i (?:want|wanna|would like|need|d like)(?: to)?|let me|please|pls|"
    r"i would prefer to|is it possible to|how (?:can|do) i)?\s*"
)
_VERB = (
    r"(?:(?:talk|speak|chat|get in touch) (?:to|with)|contact|reach|call|get|connect me (?:to|with)|"
    r"transfer me to|put me through to)"
)
_ENGLISH = (
    rf"{_ASK}{_VERB} {_SOMEONE}(?: please| now| instead)*",
    rf"(?:i (?:want|need)|give me|get me) {_SOMEONE}(?: please| now)*",
    rf"(?:is there|are there|do you have) {_SOMEONE}(?: i can (?:talk|speak|chat) (?:to|with))?",
    r"(?:a |an )?(?:real |live )?(?:human|person|agent|operator|representative)(?: please| now)*",
)
_OTHER = (
    # Spanish, French and German, the widget's other languages: the usual ways of asking.
    r"(?:quiero |puedo |podria )?(?:hablar|contactar) con (?:una persona|un humano|alguien|un agente)",
    r"(?:je veux |je voudrais |puis je )?(?:parler|discuter) (?:a|à|avec) "
    r"(?:un humain|une personne|quelqu'un|un conseiller|un agent)",
    r"(?:ich (?:möchte|will|würde gerne) )?(?:mit )?"
    r"(?:einem menschen|einer person|jemandem|einem mitarbeiter) (?:sprechen|reden)",
)
_PERSON = re.compile(rf"^(?:{'|'.join(_ENGLISH + _OTHER)})$")
_PUNCTUATION = re.compile(r"[^\w\s']+")


def asks_for_person(message: str) -> bool:
    text = " ".join(_PUNCTUATION.sub(" ", message.lower().replace("\u2019", "'")).split())
    text = text.replace("i'd", "i d")
    if not text or len(text) > 80:
        return False
    text = re.sub(r"^(?:hi|hello|hey|ok|okay|please)\s+", "", text)
    return _PERSON.match(text) is not None
