"""What an officer may do to a request, derived from the lifecycle, and doing it through the
erasure service: the page offers exactly the moves the API would accept."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.core.auth import ApiClient
from app.core.errors import ProblemError
from app.erasure import service as erasure
from app.erasure.enums import RequestStatus
from app.erasure.lifecycle import OPEN, TRANSITIONS
from app.erasure.models import ErasureRequest
from app.erasure.schemas import DenyBody, ExtendBody


class Action(StrEnum):
    APPROVE = "approve"
    DENY = "deny"
    EXTEND = "extend"
    CANCEL = "cancel"
    RETRY = "retry"


# The status each lifecycle action moves a request to; TRANSITIONS says from where it may.
_MOVES_TO: dict[Action, RequestStatus] = {
    Action.APPROVE: RequestStatus.APPROVED,
    Action.DENY: RequestStatus.DENIED,
    Action.CANCEL: RequestStatus.CANCELLED,
    Action.RETRY: RequestStatus.RECEIVED,  # a failed request's new attempt
}


def allowed_actions(request: ErasureRequest) -> list[Action]:
    """The actions the request's status allows, in the order the page shows them."""
    current = RequestStatus(request.status)
    allowed = {action for action, to in _MOVES_TO.items() if to in TRANSITIONS[current]}
    if current in OPEN and request.due_extension_months < erasure.MAX_EXTENSION_MONTHS:
        allowed.add(Action.EXTEND)
    return [a for a in Action if a in allowed]


class ActionRefused(Exception):
    """The action was not carried out: a message for the page, and field errors if any."""

    def __init__(self, message: str, *, status: int = 422, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.fields = fields or {}


def _field_errors(exc: ValidationError) -> dict[str, str]:
    return {str(e["loc"][0]): str(e["msg"]) for e in exc.errors() if e.get("loc")}


def perform(
    session: Session,
    *,
    officer: ApiClient,
    request_id: uuid.UUID,
    action: Action,
    form: dict[str, str],
) -> ErasureRequest:
    """Carry out one action as `officer` (audited with its client as the actor), in the
    caller's transaction. The same validation as the API's bodies."""
    try:
        if action is Action.APPROVE:
            return erasure.approve(session, client=officer, request_id=request_id)
        if action is Action.CANCEL:
            return erasure.cancel(session, client=officer, request_id=request_id)
        if action is Action.RETRY:
            return erasure.retry(session, client=officer, request_id=request_id)
        if action is Action.DENY:
            deny = DenyBody.model_validate({"reason": form.get("reason", "").strip()})
            return erasure.deny(session, client=officer, request_id=request_id, reason=deny.reason)
        extend = ExtendBody.model_validate(
            {"months": form.get("months", ""), "reason": form.get("reason", "").strip()}
        )
        return erasure.extend_due(
            session,
            client=officer,
            request_id=request_id,
            months=extend.months,
            reason=extend.reason,
        )
    except ValidationError as exc:
        raise ActionRefused("Check the highlighted fields.", fields=_field_errors(exc)) from None
    except ProblemError as exc:
        raise ActionRefused(exc.detail, status=exc.status) from None
