"""Settings of the per-record membership gate: how its reference models are built and how it
decides. Imports neither numpy nor torch, so the API validates a model's policy without them."""

from __future__ import annotations

from dataclasses import dataclass

from workers.engine.validation import validate

# References that saw a record and that did not, before the retained share can use the record.
MIN_EACH_SIDE = 3


@dataclass(frozen=True)
class GateSettings:
    """The reference models of a model version, and the equivalence test that uses them.

    Attributes:
        references: reference models trained once per model version, at least 4. Each trains
            on a share of the data subjects, so each record has about
            ``references * (1 - reference_share)`` of them that never saw it. Default 16.
        reference_share: share of the data subjects each reference model trains on, in
            [0.2, 0.8]. Default 0.5 (each record is unseen by half of them).
        margin: the equivalence margin, in standard deviations of the scores that models which
            never saw a record give it. `pass` needs the forget records' excess of
            beyond-unseen deviation against the holdout's (and, where there is no retained
            share, their excess of member-like deviation) to lie below ``margin`` with the
            interval's confidence. In (0, 2]. Default 0.25.
        retained_margin: the equivalence margin of the retained share, the share of a training
            run's per-record membership signal the model still shows (0: never saw the
            records, 1: trained on them as the references did). `pass` needs its interval
            within ``+-retained_margin``; `remembers` needs it wholly above. In (0, 1].
            Default 0.25. The share needs references on both sides of each record (three
            that saw it, three that did not); without them the memory excess decides.
        confidence: coverage of the two-sided interval, in [0.5, 0.999). At 0.90 each side of
            the equivalence is tested at 5 %. Default 0.90.
        seed: selects the subjects of each reference model and seeds its training. Default 0.
    """

    references: int = 16
    reference_share: float = 0.5
    margin: float = 0.25
    retained_margin: float = 0.25
    confidence: float = 0.90
    seed: int = 0

    @property
    def gives_retained_share(self) -> bool:
        """Whether these settings give a record references enough on each side, on average,
        for the retained share: a gate without it (the memory excess deciding) is weaker
        than the one they were chosen for."""
        each_side = self.references * min(self.reference_share, 1 - self.reference_share)
        return each_side >= MIN_EACH_SIDE

    def __post_init__(self) -> None:
        validate(
            self,
            lambda: {
                "references": (self.references >= 4, "must be at least 4"),
                "reference_share": (0.2 <= self.reference_share <= 0.8, "must be in [0.2, 0.8]"),
                "margin": (0.0 < self.margin <= 2.0, "must be in (0, 2]"),
                "retained_margin": (0.0 < self.retained_margin <= 1.0, "must be in (0, 1]"),
                "confidence": (0.5 <= self.confidence < 0.999, "must be in [0.5, 0.999)"),
            },
        )
