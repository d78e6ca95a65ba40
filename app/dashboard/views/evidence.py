"""A completed request's evidence: the certificate verified against Lethe's public key and
anchored in the audit chain, accuracy before and after per model, and the verification figures."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent, ErasureCertificate
from app.audit.signing import ALGORITHM, InvalidSignature, jwks, load_signing_key, verify_token
from app.core.config import get_settings
from app.dashboard.views.charts import (
    IntervalChart,
    PercentileChart,
    interval_chart,
    percentile_chart,
)
from app.dashboard.views.record_gate import RecordGate, record_gate
from app.dashboard.views.text_check import TextCheckView, text_checks
from app.jobs.models import Job
from app.registry.base_models import CAUSAL_LM
from app.registry.models import MlModel, ModelVersion

VERDICTS = {
    "pass": (
        "Pass: the forgotten records score like records the model never saw. The attack's "
        "interval overlaps chance within the tolerance, so no leak larger than the figure "
        "below was detected. For a handful of records the interval is wide: a pass is then a "
        "sanity check, not proof."
    ),
    "remembers": (
        "Remembers: the model still treats the forgotten records as training data (the "
        "interval lies above chance plus the tolerance). Lethe did not accept this result and "
        "retrained the model instead."
    ),
    "over_forgot": (
        "Over-forgot: the forgotten records now look less familiar than records never seen, "
        "which itself reveals which records were erased. Lethe did not accept this result and "
        "retrained the model instead."
    ),
    "inconclusive": (
        "Inconclusive: the test could neither show that the records look unseen nor that they "
        "are remembered. This is never counted as a pass."
    ),
}


@dataclass(frozen=True)
class CertificateCheck:
    valid: bool
    problem: str | None
    kid: str
    algorithm: str
    header: dict[str, Any]
    claims: dict[str, Any]
    head_seq: int | None
    head_hash: str | None
    head_in_chain: bool | None  # None when the certificate names no head


@dataclass
class Membership:
    label: str
    figures: dict[str, Any]
    before: dict[str, Any] | None
    verdict_text: str
    interval: IntervalChart | None
    percentiles: PercentileChart | None
    undetectable_above: float | None


@dataclass
class ModelEvidence:
    model_id: str
    model_name: str
    method: str
    exact: bool
    old_number: int | None
    new_number: int | None
    accuracy_before: float | None
    accuracy_after: float | None
    verification: dict[str, Any]
    purge: dict[str, Any]
    memberships: list[Membership] = field(default_factory=list)
    record_gates: list[RecordGate] = field(default_factory=list)
    text_checks: list[TextCheckView] = field(default_factory=list)
    fallback_reason: str | None = None
    language_model: bool = False  # no test accuracy: its text figures stand instead


@dataclass
class Evidence:
    certificate: ErasureCertificate
    check: CertificateCheck
    models: list[ModelEvidence]
    subject_count: int


def check_certificate(session: Session, *, certificate: ErasureCertificate) -> CertificateCheck:
    """Verify the JWS with the public key Lethe publishes, and find its chain head in the log."""
    key = load_signing_key(get_settings().resolved_signing_key_file)
    header: dict[str, Any] = {}
    try:
        header, claims = verify_token(certificate.jws, jwks(key))
        valid, problem = True, None
        if claims.get("request_id") != str(certificate.request_id):
            valid, problem = False, "the signed claims name another request"
    except InvalidSignature as exc:
        valid, problem, claims = False, str(exc), dict(certificate.claims)
    head = claims.get("audit_chain_head") or {}
    head_seq, head_hash = head.get("seq"), head.get("hash")
    in_chain = None
    if isinstance(head_seq, int):
        stored = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == head_seq))
        in_chain = stored is not None and stored == head_hash
    return CertificateCheck(
        valid=valid,
        problem=problem,
        kid=str(header.get("kid") or certificate.kid),
        algorithm=str(header.get("alg") or ALGORITHM),
        header=header,
        claims=claims,
        head_seq=head_seq if isinstance(head_seq, int) else None,
        head_hash=head_hash if isinstance(head_hash, str) else None,
        head_in_chain=in_chain,
    )


def _membership(label: str, figures: dict[str, Any]) -> Membership | None:
    """The figures of a membership-inference check (`kind: membership_inference`)."""
    after = figures.get("verification")
    if not isinstance(after, dict) or "auc" not in after:
        return None
    before = figures.get("verification_before")
    before = before if isinstance(before, dict) and "auc" in before else None
    rows = [("before unlearning", before)] if before else []
    rows.append(("after unlearning", after))
    verdict = str(after.get("verdict", ""))
    undetectable = after.get("undetectable_above")
    return Membership(
        label=label,
        figures=after,
        before=before,
        verdict_text=VERDICTS.get(verdict, f"Verdict: {verdict}."),
        interval=interval_chart(rows),
        percentiles=percentile_chart(list(after.get("percentiles") or [])),
        undetectable_above=float(undetectable) if isinstance(undetectable, int | float) else None,
    )


def _accuracy(version: ModelVersion | None) -> float | None:
    value = (version.metrics or {}).get("test_accuracy") if version else None
    return float(value) if isinstance(value, int | float) else None


def _version_id(claim: dict[str, Any] | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str((claim or {})["id"]))
    except (KeyError, ValueError):
        return None


def approximate_checks(
    verification: dict[str, Any],
) -> tuple[list[Membership], list[RecordGate]]:
    """The membership checks of a model's step: the approximate result it accepted, or the
    attempt it refused before retraining; each by the pooled test or the per-record gate."""
    checks = []
    if verification.get("kind") == "membership_inference":
        checks.append(("The approximate result, accepted", verification))
    attempt = verification.get("approximate_attempt")
    if isinstance(attempt, dict):
        checks.append(("The approximate attempt, refused: the model was retrained", attempt))
    pooled = [m for label, f in checks if (m := _membership(label, f))]
    per_record = [g for label, f in checks if (g := record_gate(label, f))]
    return pooled, per_record


def _model_evidence(session: Session, claim: dict[str, Any]) -> ModelEvidence:
    model = session.get(MlModel, uuid.UUID(claim["model_id"]))
    old_id, new_id = _version_id(claim.get("old_version")), _version_id(claim.get("new_version"))
    old = session.get(ModelVersion, old_id) if old_id else None
    new = session.get(ModelVersion, new_id) if new_id else None
    job = session.get(Job, uuid.UUID(claim["job_id"])) if claim.get("job_id") else None
    # The job keeps the full figures (the certificate leaves out per-record percentiles).
    verification = dict(((job.metrics if job else None) or {}).get("verification") or {})
    verification = verification or dict(claim.get("verification") or {})
    evidence = ModelEvidence(
        model_id=claim["model_id"],
        model_name=model.name if model else claim["model_id"],
        method=str(claim.get("method") or ""),
        exact=bool(claim.get("exact", True)),
        old_number=(claim.get("old_version") or {}).get("number"),
        new_number=(claim.get("new_version") or {}).get("number"),
        accuracy_before=_accuracy(old),
        accuracy_after=_accuracy(new),
        verification=verification,
        purge=dict(claim.get("purge") or {}),
        fallback_reason=((job.metrics if job else None) or {}).get("fallback_reason"),
        language_model=model is not None and model.architecture == CAUSAL_LM,
    )
    evidence.memberships, evidence.record_gates = approximate_checks(verification)
    evidence.text_checks = text_checks(verification)
    return evidence


def certificate(session: Session, *, request_id: uuid.UUID) -> ErasureCertificate | None:
    return session.get(ErasureCertificate, request_id)


def load(session: Session, *, request_id: uuid.UUID) -> Evidence | None:
    certificate = session.get(ErasureCertificate, request_id)
    if certificate is None:
        return None
    check = check_certificate(session, certificate=certificate)
    models = [
        _model_evidence(session, claim)
        for claim in check.claims.get("models", [])
        if isinstance(claim, dict) and claim.get("model_id")
    ]
    return Evidence(
        certificate=certificate,
        check=check,
        models=models,
        subject_count=len(check.claims.get("subject_hashes") or []),
    )
