"""The retained share on scores where the answer is known: references that saw a record score it
higher by a known gap, a target that never saw the records, one that trained on them."""

import numpy as np

from workers.engine.verification.retained import retained_share

REFERENCES, RECORDS, HOLDOUT = 16, 300, 400


def _world(seed: int = 0):
    rng = np.random.default_rng(seed)
    level = rng.normal(3.0, 2.0, RECORDS)
    # A tenth of the records are memorized: training moves them three spreads; the rest not.
    gap = np.where(rng.random(RECORDS) < 0.1, 3.0, 0.0)
    unseen = rng.random((REFERENCES, RECORDS)) < 0.5
    scores = level + np.where(unseen, 0.0, gap) + rng.normal(0, 1, (REFERENCES, RECORDS))
    holdout_level = rng.normal(3.0, 2.0, HOLDOUT)
    holdout_references = holdout_level + rng.normal(0, 1, (REFERENCES, HOLDOUT))
    return rng, level, gap, unseen, scores, holdout_level, holdout_references


def _share(*, target, holdout_target, unseen, scores, holdout_references):
    return retained_share(
        forget_scores=target,
        reference_scores=scores,
        unseen=unseen,
        holdout_scores=holdout_target,
        holdout_reference_scores=holdout_references,
        prior_variance=float(np.median(holdout_references.var(axis=0, ddof=1))),
        confidence=0.9,
    )


def test_a_model_that_never_saw_the_records_retains_none_and_one_that_trained_retains_all():
    rng, level, gap, unseen, scores, holdout_level, holdout_references = _world()

    # The target trained on more data: everything it scores is 1.3 x + 0.5 of the references'
    # scale. The holdout line undoes that, so it is not taken for memory.
    def confident(x):
        return 1.3 * x + 0.5

    holdout_target = confident(holdout_level + rng.normal(0, 1, HOLDOUT))
    never_saw = confident(level + rng.normal(0, 1, RECORDS))
    trained = confident(level + gap + rng.normal(0, 1, RECORDS))
    world = {"unseen": unseen, "scores": scores, "holdout_references": holdout_references}

    forgot = _share(target=never_saw, holdout_target=holdout_target, **world)
    remembered = _share(target=trained, holdout_target=holdout_target, **world)
    assert forgot is not None and remembered is not None
    assert forgot.share.low > -0.25 and forgot.share.high < 0.25
    assert remembered.share.low > 0.5 and remembered.share.low < 1.0 < remembered.share.high
    both_sides = ((~unseen).sum(axis=0) >= 3) & (unseen.sum(axis=0) >= 3)
    assert forgot.records == remembered.records == both_sides.sum() > 0.95 * RECORDS
    assert forgot.signal > 0.5  # the memorized tenth: about 0.1 x 3^2


def test_without_references_on_both_sides_there_is_no_share():
    rng, level, _, unseen, scores, holdout_level, holdout_references = _world(1)
    seen_by_two = np.ones_like(unseen)
    seen_by_two[:2] = False  # two references saw every record: fewer than three
    target = level + rng.normal(0, 1, RECORDS)
    holdout_target = holdout_level + rng.normal(0, 1, HOLDOUT)
    assert (
        _share(
            target=target,
            holdout_target=holdout_target,
            unseen=seen_by_two,
            scores=scores,
            holdout_references=holdout_references,
        )
        is None
    )


def test_records_no_training_moves_give_no_share():
    rng, level, _, unseen, _, holdout_level, holdout_references = _world(2)
    scores = level + rng.normal(0, 1, (REFERENCES, RECORDS))  # seen or not, the same
    target = level + rng.normal(0, 1, RECORDS)
    holdout_target = holdout_level + rng.normal(0, 1, HOLDOUT)
    share = _share(
        target=target,
        holdout_target=holdout_target,
        unseen=unseen,
        scores=scores,
        holdout_references=holdout_references,
    )
    # No gap to retain: either no share, or one whose interval is far wider than any margin.
    assert share is None or share.share.high - share.share.low > 1.0
