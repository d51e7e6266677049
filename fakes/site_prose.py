"""Text for a generated website's pages: workshop guides of a bicycle shop, each with its own title and
paragraphs, so that a site of hundreds of pages costs what a real one costs to extract, chunk and embed
(pages that repeat one text would share their work, and a sentence per page would cost almost nothing).

The text comes from sentence templates filled by a random generator seeded with the page's number: the same
number always gives the same page, and no two pages share a paragraph."""

from __future__ import annotations

import random
from dataclasses import dataclass

TOPICS = (
    "tubeless tyres", "hydraulic disc brakes", "rim brakes", "chain wear", "cassette wear",
    "wheel truing", "spoke tension", "hub bearings", "headset bearings", "bottom brackets",
    "derailleur hangers", "gear indexing", "cable friction", "brake pad compounds", "dynamo lighting",
    "mudguard fitting", "pannier racks", "saddle height", "handlebar reach", "crank length",
    "tyre pressure", "puncture repair", "valve cores", "sealant top-ups", "frame alignment",
    "carbon repairs", "steel frame rust", "suspension forks", "dropper posts", "pedal threads",
    "cleat position", "e-bike motors", "e-bike batteries", "child seats", "cargo box hinges",
    "kickstands", "bar tape", "grip wear", "chainring wear", "freehub pawls",
)  # fmt: skip
BIKES = (
    "road", "gravel", "touring", "cargo", "commuter", "folding", "mountain", "children's", "electric",
    "tandem",
)  # fmt: skip
PLACES = (
    "Clifton", "Bedminster", "Stokes Croft", "Keynsham", "Portishead", "the Downs", "Bath", "Chew Valley",
    "the Mendips", "Frenchay", "Easton", "Severn Beach",
)  # fmt: skip
PEOPLE = ("Amira", "Tomasz", "Bethan", "Kwame", "Ingrid", "Ravi", "Siobhan", "Dev", "Hana", "Callum")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)  # fmt: skip
WEEKDAYS = ("Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
SECTION_HEADINGS = (
    "What we check", "Signs it needs attention", "What it costs", "Doing it yourself", "How long it takes",
    "Parts we recommend", "Questions riders ask", "Through the seasons",
)  # fmt: skip
TEMPLATES = (
    "Most {bike} bikes that come in for {topic} have covered between {km} and {km2} kilometres since "
    "their last visit.",
    "Work on {topic} for a {bike} bike usually takes {days} working days, and we call you before ordering "
    "any part that costs more than {price} pounds.",
    "{person} has looked after {topic} in our workshop for {years} years and still test rides every bike "
    "on the climb towards {place}.",
    "Riders who commute from {place} tend to notice trouble with {topic} first in {month}, when the roads "
    "are wet and gritty.",
    "We keep spares for {topic} on {bike} bikes in stock, so {share} percent of these repairs are done while "
    "you wait.",
    "If you hear a click or a squeal from the {topic}, note when it happens: on climbs, when braking, or "
    "only on the way home from {place}.",
    "A check of {topic} is part of every full service, which costs {price} pounds for a {bike} bike.",
    "Parts for {topic} wear faster on a {bike} bike ridden through the winter, so a look every {months} "
    "months is worth it.",
    "Last {month} we rebuilt {count} {bike} bikes for a club ride to {place}, and {topic} was the most "
    "common fix.",
    "Please bring the bike clean if you can: a muddy {bike} bike takes us about {minutes} minutes longer to "
    "inspect.",
    "This guide to {topic} is written for riders who look after their own {bike} bike at home with a few "
    "basic tools.",
    "The cheapest fix is rarely the one that lasts, and good {topic} on a {bike} bike should see out {years} "
    "seasons.",
    "{person} will always show you the worn part from the {topic} and explain why it needs replacing before "
    "fitting a new one.",
    "Riders from {place} can leave a bike at our drop-off point on {weekday} mornings and collect it by "
    "{hour} o'clock.",
    "Tools for {topic} can be borrowed from the counter for a deposit of {deposit} pounds, returned with the "
    "tool.",
    "On a {bike} bike, care of the {topic} pays off most when it carries {kg} kilograms of luggage or "
    "shopping.",
    "{person} suggests checking the {topic} after the first {km3} kilometres on any new {bike} bike, when "
    "cables stretch and bolts settle.",
    "The workshop logged {count} jobs involving {topic} last year, {share} percent of them on {bike} bikes.",
    "When the weather turns in {month}, book early: the wait for work on {topic} can grow to {days2} days.",
    "Every child who rides a {bike} bike to a school in {place} can have the {topic} checked for free in "
    "{month}.",
)


@dataclass(frozen=True)
class Article:
    title: str
    heading: str
    lead: str  # the page's first paragraph, one sentence
    sections: tuple[tuple[str, tuple[str, ...]], ...]  # (heading, paragraphs)


def article(number: int, sections: int = 3, paragraphs: int = 2) -> Article:
    """Page `number`'s text: a title no other number below 400 shares (past that, a part number makes it
    unique), a lead sentence, then `sections` sections of `paragraphs` paragraphs of 3 to 5 sentences."""
    topic = TOPICS[number % len(TOPICS)]
    bike = BIKES[(number // len(TOPICS)) % len(BIKES)]
    rounds = number // (len(TOPICS) * len(BIKES))
    title = f"{topic[0].upper()}{topic[1:]} on {bike} bikes" + (f", part {rounds + 1}" if rounds else "")
    rng = random.Random(number)
    lead = f"Guide {number + 1} of our workshop notes: {topic} on {bike} bikes, as our mechanics see them."
    headings = rng.sample(SECTION_HEADINGS, sections)
    body = tuple(
        (heading, tuple(_paragraph(rng, topic, bike) for _ in range(paragraphs))) for heading in headings
    )
    return Article(title, title, lead, body)


def _paragraph(rng: random.Random, topic: str, bike: str) -> str:
    return " ".join(
        _sentence(rng, template, topic, bike) for template in rng.sample(TEMPLATES, rng.randint(3, 5))
    )


def _sentence(rng: random.Random, template: str, topic: str, bike: str) -> str:
    km = rng.randrange(800, 6000, 50)
    return template.format(
        topic=topic,
        bike=bike,
        place=rng.choice(PLACES),
        person=rng.choice(PEOPLE),
        month=rng.choice(MONTHS),
        weekday=rng.choice(WEEKDAYS),
        km=f"{km:,}",
        km2=f"{km + rng.randrange(500, 4000, 50):,}",
        km3=rng.randrange(100, 600, 50),
        days=rng.randint(1, 4),
        days2=rng.randint(5, 15),
        price=rng.randrange(25, 400, 5),
        deposit=rng.randrange(10, 60, 5),
        years=rng.randint(2, 25),
        months=rng.randint(2, 12),
        count=rng.randint(6, 140),
        share=rng.randint(10, 95),
        minutes=rng.randint(10, 40),
        hour=rng.randint(4, 7),
        kg=rng.randint(8, 90),
    )
