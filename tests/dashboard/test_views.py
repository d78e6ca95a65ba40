"""The parts of the pages that need no database: actions from the lifecycle, the charts, the
evidence page for an approximate step."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from app.dashboard.actions import Action, allowed_actions
from app.dashboard.templating import ENV
from app.dashboard.views.charts import interval_chart, percentile_chart
from app.dashboard.views.evidence import (
    CertificateCheck,
    Evidence,
    ModelEvidence,
    _membership,
)
from app.erasure.enums import RequestStatus
from app.erasure.lifecycle import OPEN, TRANSITIONS


def _request(status: RequestStatus, extended: int = 0) -> SimpleNamespace:
    return SimpleNamespace(status=status.value, due_extension_months=extended)


@pytest.mark.parametrize("status", list(RequestStatus))
def test_actions_follow_the_lifecycle(status):
    offered = set(allowed_actions(_request(status)))
    moves = TRANSITIONS[status]
    assert (Action.APPROVE in offered) == (RequestStatus.APPROVED in moves)
    assert (Action.DENY in offered) == (RequestStatus.DENIED in moves)
    assert (Action.CANCEL in offered) == (RequestStatus.CANCELLED in moves)
    assert (Action.RETRY in offered) == (RequestStatus.RECEIVED in moves)
    assert (Action.EXTEND in offered) == (status in OPEN)
    assert Action.EXTEND not in allowed_actions(_request(status, extended=2))


def test_pending_approval_offers_the_officer_s_four_moves():
    assert allowed_actions(_request(RequestStatus.PENDING_APPROVAL)) == [
        Action.APPROVE,
        Action.DENY,
        Action.EXTEND,
        Action.CANCEL,
    ]
    assert allowed_actions(_request(RequestStatus.FAILED)) == [Action.EXTEND, Action.RETRY]
    assert allowed_actions(_request(RequestStatus.COMPLETED)) == []


FIGURES = {
    "kind": "membership_inference",
    "method": "neggrad_plus",
    "verification": {
        "auc": 0.512,
        "ci_low": 0.31,
        "ci_high": 0.70,
        "confidence": 0.95,
        "tolerance": 0.02,
        "attack": "loss",
        "percentiles": [5.0, 35.0, 55.0, 71.0, 99.0, 100.0],
        "verdict": "pass",
        "n_forget": 6,
        "n_holdout": 400,
        "undetectable_above": 0.2,
    },
    "verification_before": {
        "auc": 0.81,
        "ci_low": 0.74,
        "ci_high": 0.88,
        "tolerance": 0.02,
        "verdict": "remembers",
        "percentiles": [90.0] * 6,
    },
}


def test_the_interval_chart_places_the_band_and_the_intervals():
    chart = interval_chart(
        [("before", FIGURES["verification_before"]), ("after", FIGURES["verification"])]
    )
    assert chart is not None and len(chart.rows) == 2
    assert chart.band_x < chart.chance_x < chart.band_x + chart.band_width
    before, after = chart.rows
    assert before.x_low < before.x_auc < before.x_high
    assert after.x_low < chart.chance_x < after.x_high
    assert before.x_low > chart.band_x + chart.band_width  # above chance plus tolerance
    assert interval_chart([("nothing", {})]) is None


def test_the_percentile_chart_bins_the_records():
    chart = percentile_chart(FIGURES["verification"]["percentiles"])
    assert chart is not None
    assert [b.count for b in chart.bars] == [1, 0, 0, 1, 0, 1, 0, 1, 0, 2]
    assert chart.records == 6 and chart.median == 63.0
    assert chart.expected == pytest.approx(0.6)
    assert percentile_chart([]) is None


def _render_evidence(models: list[ModelEvidence], *, records_erased: int) -> str:
    """The evidence page of a request whose certificate verified and is anchored in the log."""
    request_id = uuid.uuid4()
    claims = {"request_id": str(request_id), "records_erased": records_erased, "models": []}
    evidence = Evidence(
        certificate=SimpleNamespace(request_id=request_id, kid="kid-1"),
        check=CertificateCheck(
            valid=True,
            problem=None,
            kid="kid-1",
            algorithm="Ed25519",
            header={},
            claims=claims,
            head_seq=41,
            head_hash="a" * 64,
            head_in_chain=True,
        ),
        models=models,
        subject_count=1,
    )
    return ENV.get_template("evidence.html").render(
        base="/dashboard",
        officer=None,
        request_path="/dashboard/requests",
        request_row=SimpleNamespace(id=request_id, reference="DSR-1"),
        evidence=evidence,
    )


def test_the_evidence_page_shows_the_approximate_figures_and_what_they_mean():
    membership = _membership("Approximate unlearning, accepted", FIGURES)
    assert membership is not None and membership.before is not None
    html = _render_evidence(
        [
            ModelEvidence(
                model_id=str(uuid.uuid4()),
                model_name="churn-approx",
                method="approximate:neggrad_plus",
                exact=False,
                old_number=1,
                new_number=2,
                accuracy_before=0.912,
                accuracy_after=0.905,
                verification=FIGURES,
                purge={"checkpoints": 1, "artifacts": 2, "references": 9},
                memberships=[membership],
            )
        ],
        records_erased=6,
    )
    assert "Signature valid." in html and "found in the audit log" in html
    assert "before 91.2 % → after 90.5 %" in html
    assert "1 checkpoints, 2 version files, 9 reference models" in html
    assert "Pass: the forgotten records score like records the model never saw" in html
    assert html.count("<svg") == 2 and 'role="img"' in html
    assert "0.512" in html and "0.310 \u2013 0.700" in html and "0.200" in html


def test_the_model_page_shows_a_held_version_with_its_figures():
    from app.core.db import utcnow
    from app.dashboard.views.models import ModelRow, VersionRow

    now = utcnow()
    row = ModelRow(
        id=uuid.uuid4(),
        name="churn",
        client_name="ml",
        dataset_name="purchases",
        architecture="mlp",
        strategy="retrain",
        shards=1,
        slices=1,
        active_number=1,
        test_accuracy=0.97,
    )
    common = {"method": "train", "exact": True, "erasures": 0, "created_at": now}
    row.versions = [
        VersionRow(
            id=uuid.uuid4(),
            number=2,
            status="held",
            trained_records=900,
            test_accuracy=0.3,
            activated_at=None,
            purged_at=None,
            hold={"active_test_accuracy": 0.97, "accuracy_drop": 0.67, "threshold": 0.1},
            **common,
        ),
        VersionRow(
            id=uuid.uuid4(),
            number=1,
            status="active",
            trained_records=300,
            test_accuracy=0.97,
            activated_at=now,
            purged_at=None,
            **common,
        ),
    ]
    assert [v.number for v in row.held] == [2]
    html = ENV.get_template("models.html").render(
        base="/dashboard", officer=None, models=[row], debt=[], single=True
    )
    assert "v2, test accuracy 30.0 % against 97.0 % for the active version" in html
    assert "67.0 points below the active version (limit 10.0)" in html
    assert 'class="badge badge-held"' in html


def _gate(
    verdict: str,
    memory: tuple[float, float, float],
    z: list[float],
    retained: tuple[float, float, float] | None = None,
) -> dict:
    estimate, low, high = memory
    share = (
        None if retained is None else dict(zip(("estimate", "low", "high"), retained, strict=True))
    )
    return {
        "retained": share,
        "retained_margin": 0.25,
        "retained_signal": None if retained is None else 0.3,
        "retained_records": 0 if retained is None else len(z) - 1,
        "test": "per_record_references",
        "verdict": verdict,
        "reason": "",
        "memory": {"estimate": estimate, "low": low, "high": high},
        "overshoot": {"estimate": -0.01, "low": -0.08, "high": 0.06},
        "margin": 0.25,
        "confidence": 0.9,
        "resolution": 0.11,
        "n_forget": len(z),
        "n_holdout": 300,
        "unreferenced": 2,
        "references": 8,
        "record_ids": list(range(len(z))),
        "record_z": z,
        "record_unseen_references": [4] * len(z),
    }


def test_the_evidence_page_shows_the_per_record_gate_of_a_refused_attempt():
    from app.dashboard.views.evidence import approximate_checks
    from app.dashboard.views.record_gate import record_gate

    attempt = {
        "kind": "membership_inference",
        "gate": "per_record",
        "references": 8,
        "verification": _gate(
            "remembers", (0.61, 0.42, 0.80), [3.9, 2.5, 0.1, 4.0], retained=(0.9, 0.7, 1.1)
        ),
        "verification_before": _gate("remembers", (1.4, 1.1, 1.7), [4.0] * 4),
    }
    gate = record_gate("The approximate attempt, refused", attempt)
    assert gate is not None and gate.before is not None
    assert gate.percentiles is not None and gate.percentiles.records == 4
    # Scores far above the unseen references' pile up in the top bin.
    assert gate.percentiles.bars[-1].count == 3
    assert record_gate("pooled", FIGURES) is None
    assert _membership("pooled", attempt) is None
    pooled, per_record = approximate_checks({"kind": "exact", "approximate_attempt": attempt})
    assert pooled == [] and [g.label for g in per_record] == [
        "The approximate attempt, refused: the model was retrained"
    ]

    model = ModelEvidence(
        model_id=str(uuid.uuid4()),
        model_name="churn-approx",
        method="retrain",
        exact=True,
        old_number=1,
        new_number=2,
        accuracy_before=0.9,
        accuracy_after=0.9,
        verification={"kind": "exact", "approximate_attempt": attempt},
        purge={},
        record_gates=[gate],
    )
    html = _render_evidence([model], records_erased=4)
    assert "Per-record check of the approximate attempt, refused" in html
    assert "Remembers: record by record" in html
    assert "0.610 (0.420 \u2013 0.800)" in html and "1.400 (1.100 \u2013 1.700)" in html
    assert "against 8 reference models" in html
    assert "2 more left out" in html and "resolution 0.11" in html
    # The share decided the attempt; the version before had none, shown as a dash.
    assert "0.900 (0.700 \u2013 1.100)" in html and "from the 3 records" in html
    assert "<td>\u2014</td>" in html
    assert html.count("<svg") == 1


def test_the_evidence_page_shows_a_language_model_s_text_checks():
    from app.dashboard.views.text_check import text_checks

    figures = {
        "erased_records_scored": 9,
        "holdout_records_scored": 14,
        "erased_exact_match": 0.4444,
        "holdout_exact_match": 0.0,
        "erased_mean_token_logprob": -0.812,
        "holdout_mean_token_logprob": -4.3,
        "membership_auc": 0.93,
        "membership_auc_min_k": 0.88,
    }
    refused = {
        "kind": "text_check",
        "passed": False,
        "reasons": ["erased answers reproduced 0.44 more often than never-seen people's"],
        **figures,
    }
    after = {**figures, "erased_exact_match": 0.0, "erased_mean_token_logprob": -4.9}
    verification = {
        "kind": "exact",
        "erased_records": 9,
        "erased_records_in_new_version": 0,
        "checkpoints_checked": 4,
        "text": {k: v for k, v in after.items() if not k.startswith("membership_auc")},
        "approximate_attempt": refused,
    }
    checks = text_checks(verification)
    assert [c.passed for c in checks] == [False, None]
    html = _render_evidence(
        [
            ModelEvidence(
                model_id=str(uuid.uuid4()),
                model_name="support-assistant",
                method="retrain",
                exact=True,
                old_number=2,
                new_number=3,
                accuracy_before=None,
                accuracy_after=None,
                verification=verification,
                purge={"checkpoints": 1, "artifacts": 2},
                text_checks=checks,
                language_model=True,
            )
        ],
        records_erased=9,
    )
    assert "Test accuracy" not in html
    assert "Text check of the approximate attempt, refused" in html
    assert "Refused: erased answers reproduced 0.44 more often" in html
    assert "44.4 %" in html and "-0.81" in html and "0.930" in html and "0.880" in html
    assert "Text check of what the retrained version says" in html
    assert "Figures, not the proof" in html
    assert html.count("Membership AUC") == 1
