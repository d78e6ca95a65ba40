"""Health, metrics, request ids and logs."""

from __future__ import annotations


def test_health_and_readiness(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_metrics_count_requests_by_route(api, portal_headers):
    api.get("/v1/erasure-requests", headers=portal_headers)
    text = api.get("/metrics").text
    assert (
        'lethe_http_requests_total{method="GET",route="/v1/erasure-requests",status="200"}' in text
    )


def test_request_id_is_returned_and_kept(api):
    assert len(api.get("/healthz").headers["x-request-id"]) == 32
    assert (
        api.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )


def test_openapi_docs(api):
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert "/v1/erasure-requests" in paths


def test_metrics_carry_the_domain_figures(api, portal_headers):
    import re

    api.post(
        "/v1/erasure-requests",
        json={"identities": [{"type": "email", "value": "figures@example.com"}]},
        headers=portal_headers,
    )
    text = api.get("/metrics").text

    def value(sample: str) -> float:
        match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
        assert match, f"{sample} not in /metrics"
        return float(match.group(1))

    assert (
        sum(
            value(f'lethe_erasure_requests{{status="{s}"}}')
            for s in ("received", "planning", "planned", "completed")
        )
        >= 1
    )
    assert value("lethe_erasure_requests_overdue") >= 0
    assert value("lethe_erasure_completion_seconds_count") >= 0
    assert value('lethe_erasure_completion_seconds_bucket{le="+Inf"}') == value(
        "lethe_erasure_completion_seconds_count"
    )
    assert value('lethe_jobs{kind="unlearn",status="failed"}') >= 0
    assert value('lethe_job_failures_total{kind="train"}') >= 0
    assert value('lethe_queue_depth{queue="cpu"}') >= 0
    assert value('lethe_queue_depth{queue="gpu"}') >= 0
