"""The check schemathesis adds to its own when Lethe is fuzzed (`bench/fuzz.py` loads this module
as its hooks; `tests/openapi/test_fuzz.py` passes the function): every error is a problem
document, or an OpenDSR error on an OpenDSR route."""

from __future__ import annotations

from typing import Any

from schemathesis import Case, CheckContext, Response, check

PROBLEM_MEMBERS = {"type", "title", "status", "detail"}


def problem_document(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """An error is `application/problem+json` with the RFC 9457 members and its own status;
    an OpenDSR route's own errors are `{"error": {"code", ...}}` as `application/json`."""
    if response.status_code < 400:
        return None
    media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    body = response.json()
    if case.path.startswith("/opendsr/") and media_type == "application/json":
        assert isinstance(body, dict) and set(body) == {"error"}, "not an OpenDSR error"
        assert body["error"]["code"] == response.status_code, "the error's code is not its status"
        return True
    assert media_type == "application/problem+json", f"an error sent as {media_type!r}"
    assert isinstance(body, dict) and set(body) >= PROBLEM_MEMBERS, "not a problem document"
    assert body["status"] == response.status_code, "the problem's status is not the response's"
    return True


check(problem_document)
