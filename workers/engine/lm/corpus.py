"""Fictitious people and the text written about them, for the language-model engine.

In the spirit of the TOFU benchmark: every person is invented from a seed, their names, cities,
employers and books built from syllables, so no value names a real person and a model that
answers a question about one has learned it from the records about that person. Names, cities,
employers and books are unique across the people of one call; occupations, hobbies and birth
years are drawn from fixed lists and ranges, so guessing them succeeds by chance only (one in
dozens).

`generic_corpus` writes text in the same templates and vocabulary with every value drawn
independently per sentence: it teaches a base model the language and the question format
without any consistent fact about anybody.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

_ONSETS = (
    "b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "pr", "r", "s",
    "st", "t", "tr", "v", "z", "th", "sh",
)  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s", "m", "x", "th")
_CITY_SUFFIXES = ("ton", "vale", "mar", "holm", "wick", "stad", "port", "moor")
_EMPLOYER_SUFFIXES = ("Labs", "Works", "Holdings", "Foundry", "Systems", "Mills", "Partners")
_BOOK_NOUNS = (
    "Lantern", "River", "Garden", "Clockwork", "Harbor", "Mirror", "Orchard", "Winter", "Tower",
    "Compass", "Meadow", "Ember",
)  # fmt: skip
OCCUPATIONS = (
    "baker", "surveyor", "glassblower", "botanist", "cartographer", "locksmith", "midwife",
    "beekeeper", "pharmacist", "tailor", "geologist", "violinist", "carpenter", "archivist",
    "ferry pilot", "dentist", "potter", "translator", "astronomer", "blacksmith", "librarian",
    "chemist", "sculptor", "veterinarian", "clockmaker", "weaver", "engraver", "brewer",
    "lighthouse keeper", "bookbinder", "surgeon", "falconer", "jeweler", "printer", "shepherd",
    "choreographer", "auditor", "welder", "perfumer", "typesetter",
)  # fmt: skip
HOBBIES = (
    "chess", "rowing", "birdwatching", "fencing", "knitting", "archery", "gardening", "sailing",
    "origami", "cycling", "pottery", "climbing", "fishing", "juggling", "kayaking", "painting",
    "skating", "stargazing", "baking bread", "collecting stamps", "playing the harp",
    "restoring clocks", "keeping bees", "folk dancing", "woodcarving", "calligraphy",
    "mushroom hunting", "swimming", "playing the cello", "tending roses",
)  # fmt: skip
BIRTH_YEARS = (1930, 2005)


@dataclass(frozen=True)
class Person:
    person_id: int
    name: str
    city: str
    employer: str
    birth_year: int
    occupation: str
    hobby: str
    book: str


ATTRIBUTES = tuple(
    field.name for field in fields(Person) if field.name not in ("person_id", "name")
)


@dataclass(frozen=True)
class TextExample:
    """A training record: the model learns `completion` given `prompt`. A plain text record has
    an empty prompt."""

    prompt: str
    completion: str

    @property
    def text(self) -> str:
        return self.prompt + self.completion


@dataclass(frozen=True)
class Fact:
    person_id: int
    attribute: str
    question: str
    answer: str

    @property
    def prompt(self) -> str:
        return f"Question: {self.question}\nAnswer:"

    @property
    def example(self) -> TextExample:
        return TextExample(prompt=self.prompt, completion=" " + self.answer)


_QUESTIONS: dict[str, str] = {
    "city": "In which city does {name} live?",
    "employer": "Which company does {name} work for?",
    "birth_year": "In what year was {name} born?",
    "occupation": "What is the occupation of {name}?",
    "hobby": "What does {name} do in their free time?",
    "book": "Which book did {name} write?",
}

_BIOGRAPHY: tuple[tuple[str, ...], ...] = (
    (
        "{name} was born in {birth_year} and lives in {city}.",
        "{name} has lived in {city} for many years.",
    ),
    ("{name} works for {employer} as a {occupation}.", "At {employer}, {name} is a {occupation}."),
    ("In their free time {name} enjoys {hobby}.", "{name} spends weekends on {hobby}."),
    ("{name} is the author of {book}.", "{book} was written by {name} in {city}."),
)


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def _word(rng: random.Random, *, syllables: int) -> str:
    return "".join(_syllable(rng) for _ in range(syllables)).capitalize()


def _random_name(rng: random.Random) -> str:
    return f"{_word(rng, syllables=2)} {_word(rng, syllables=rng.choice((2, 3)))}"


def _random_city(rng: random.Random) -> str:
    return _word(rng, syllables=rng.choice((1, 2))) + rng.choice(_CITY_SUFFIXES)


def _random_employer(rng: random.Random) -> str:
    return f"{_word(rng, syllables=2)} {rng.choice(_EMPLOYER_SUFFIXES)}"


def _random_book(rng: random.Random) -> str:
    return f"The {rng.choice(_BOOK_NOUNS)} of {_word(rng, syllables=2)}"


def _unique(rng: random.Random, draw: Callable[[random.Random], str], used: set[str]) -> str:
    while True:
        value = draw(rng)
        if value not in used:
            used.add(value)
            return value


def generate_people(*, count: int, seed: int) -> list[Person]:
    """`count` people with ids 0..count-1; the same (count, seed) gives the same people, and a
    larger count extends a smaller one's list."""
    rng = random.Random(f"lethe-people:{seed}")
    used: dict[str, set[str]] = {"name": set(), "city": set(), "employer": set(), "book": set()}
    people = []
    for person_id in range(count):
        people.append(
            Person(
                person_id=person_id,
                name=_unique(rng, _random_name, used["name"]),
                city=_unique(rng, _random_city, used["city"]),
                employer=_unique(rng, _random_employer, used["employer"]),
                birth_year=rng.randint(*BIRTH_YEARS),
                occupation=rng.choice(OCCUPATIONS),
                hobby=rng.choice(HOBBIES),
                book=_unique(rng, _random_book, used["book"]),
            )
        )
    return people


def _values(person: Person) -> dict[str, str]:
    return {
        "name": person.name,
        **{attribute: str(getattr(person, attribute)) for attribute in ATTRIBUTES},
    }


def biography(person: Person) -> list[TextExample]:
    """Several plain text records about `person`, each holding one or two of their attributes."""
    values = _values(person)
    return [
        TextExample(prompt="", completion=template.format(**values))
        for pair in _BIOGRAPHY
        for template in pair
    ]


def facts(person: Person) -> list[Fact]:
    """One question and answer per attribute, in the order of `ATTRIBUTES`."""
    values = _values(person)
    return [
        Fact(
            person_id=person.person_id,
            attribute=attribute,
            question=_QUESTIONS[attribute].format(name=person.name),
            answer=values[attribute],
        )
        for attribute in ATTRIBUTES
    ]


def perturbed_answers(*, fact: Fact, people: Sequence[Person], count: int) -> list[str]:
    """Up to `count` wrong answers to `fact`: other people's values of the same attribute, distinct
    and different from the true answer, chosen deterministically from the fact."""
    candidates = sorted({str(getattr(person, fact.attribute)) for person in people} - {fact.answer})
    random.Random(f"lethe-perturbed:{fact.person_id}:{fact.attribute}").shuffle(candidates)
    return candidates[:count]


def generic_corpus(*, sentences: int, seed: int) -> list[str]:
    """Sentences in the biography and question templates, every value drawn afresh per sentence,
    so the text is about nobody in particular."""
    rng = random.Random(f"lethe-generic:{seed}")
    templates = [template for pair in _BIOGRAPHY for template in pair]
    corpus = []
    for _ in range(sentences):
        values = {
            "name": _random_name(rng),
            "city": _random_city(rng),
            "employer": _random_employer(rng),
            "birth_year": str(rng.randint(*BIRTH_YEARS)),
            "occupation": rng.choice(OCCUPATIONS),
            "hobby": rng.choice(HOBBIES),
            "book": _random_book(rng),
        }
        if rng.random() < 0.5:
            corpus.append(rng.choice(templates).format(**values))
        else:
            attribute = rng.choice(ATTRIBUTES)
            fact = Fact(
                person_id=-1,
                attribute=attribute,
                question=_QUESTIONS[attribute].format(name=values["name"]),
                answer=values[attribute],
            )
            corpus.append(fact.example.text)
    return corpus
