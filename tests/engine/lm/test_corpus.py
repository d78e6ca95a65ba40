from __future__ import annotations

from workers.engine.lm.corpus import (
    ATTRIBUTES,
    Fact,
    biography,
    facts,
    generate_people,
    generic_corpus,
    perturbed_answers,
)


def test_people_are_a_function_of_the_seed_and_extend_with_the_count() -> None:
    people = generate_people(count=40, seed=3)
    assert people == generate_people(count=40, seed=3)
    assert people[:10] == generate_people(count=10, seed=3)
    assert people != generate_people(count=40, seed=4)
    assert [person.person_id for person in people] == list(range(40))


def test_identifying_values_are_unique() -> None:
    people = generate_people(count=300, seed=0)
    for attribute in ("name", "city", "employer", "book"):
        assert len({getattr(person, attribute) for person in people}) == len(people), attribute


def test_each_attribute_has_one_question_naming_the_person() -> None:
    person = generate_people(count=1, seed=0)[0]
    person_facts = facts(person)
    assert [fact.attribute for fact in person_facts] == list(ATTRIBUTES)
    for fact in person_facts:
        assert person.name in fact.question
        assert fact.answer == str(getattr(person, fact.attribute))
        assert fact.example.prompt.endswith("Answer:")
        assert fact.example.completion == " " + fact.answer


def test_biography_mentions_every_attribute() -> None:
    person = generate_people(count=1, seed=0)[0]
    records = biography(person)
    assert len(records) >= 4
    assert all(record.prompt == "" and person.name in record.completion for record in records)
    text = " ".join(record.completion for record in records)
    assert all(str(getattr(person, attribute)) in text for attribute in ATTRIBUTES)


def test_perturbed_answers_are_other_peoples_values() -> None:
    people = generate_people(count=20, seed=0)
    fact: Fact = facts(people[0])[0]
    wrong = perturbed_answers(fact=fact, people=people, count=5)
    assert len(wrong) == len(set(wrong)) == 5
    assert fact.answer not in wrong
    assert set(wrong) <= {str(getattr(person, fact.attribute)) for person in people}
    assert wrong == perturbed_answers(fact=fact, people=people, count=5)


def test_generic_corpus_is_about_nobody_in_the_people() -> None:
    people = generate_people(count=40, seed=0)
    corpus = generic_corpus(sentences=2000, seed=0)
    assert corpus == generic_corpus(sentences=2000, seed=0)
    assert len(corpus) == 2000
    text = "\n".join(corpus)
    assert "Question:" in text
    assert not any(person.name in text for person in people)
