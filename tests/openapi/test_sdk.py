"""A client generated from `/openapi.json` by `openapi-python-client`, driven against a real
server: the privacy portal's flow and the ML team's, and each documented error, read through
the generated types. The clients raise on any status the document does not declare."""

from __future__ import annotations

import importlib
import uuid
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.integration


class Sdk:
    """The generated package, its operations looked up as `sdk.op("erasure", "submit_v1_...")`
    and its models as `sdk.m.ErasureRequestCreate`."""

    def __init__(self, package: ModuleType, base_url: str) -> None:
        self.package = package
        self.base_url = base_url
        self.m = importlib.import_module(f"{package.__name__}.models")

    def op(self, tag: str, name: str) -> Any:
        return importlib.import_module(f"{self.package.__name__}.api.{tag}.{name}")

    def client(self, key: str | None) -> Any:
        if key is None:
            return self.package.Client(base_url=self.base_url, raise_on_unexpected_status=True)
        return self.package.AuthenticatedClient(
            base_url=self.base_url, token=key, raise_on_unexpected_status=True
        )


@pytest.fixture(scope="module")
def lethe(sdk: ModuleType, server: str) -> Sdk:
    return Sdk(sdk, server)


def _answer(response: Any, status: int) -> Any:
    assert response.status_code == status, response.content
    return response.parsed


def test_the_portal_flow(lethe: Sdk, make_key) -> None:
    m = lethe.m
    portal = lethe.client(make_key(["requests:write", "requests:read"]))
    submit = lethe.op("erasure", "submit_v1_erasure_requests_post")
    body = m.ErasureRequestCreate(
        identities=[m.IdentityIn(type_=m.IdentityType.EMAIL, value="sdk-portal@example.com")],
        reference="DSR-SDK-1",
    )
    key = f"sdk-{uuid.uuid4()}"

    created = _answer(submit.sync_detailed(client=portal, body=body, idempotency_key=key), 202)
    assert isinstance(created, m.ErasureRequestOut)
    assert isinstance(created.status, m.RequestStatus)
    assert created.identity_types == [m.IdentityType.EMAIL]
    assert created.links.self_ == f"/v1/erasure-requests/{created.id}"

    replayed = _answer(submit.sync_detailed(client=portal, body=body, idempotency_key=key), 202)
    assert replayed.id == created.id

    read = lethe.op("erasure", "get_request_v1_erasure_requests_request_id_get")
    fetched = _answer(read.sync_detailed(client=portal, request_id=created.id), 200)
    assert isinstance(fetched, m.ErasureRequestOut)
    assert fetched.reference == "DSR-SDK-1"
    assert all(isinstance(job, m.JobSummary) for job in fetched.jobs)

    listing = lethe.op("erasure", "list_requests_v1_erasure_requests_get")
    page = _answer(listing.sync_detailed(client=portal, reference="DSR-SDK-1", limit=5), 200)
    assert isinstance(page, m.ErasureRequestPage)
    assert [item.id for item in page.items] == [created.id]

    events = lethe.op("erasure", "request_events_v1_erasure_requests_request_id_events_get")
    history = _answer(events.sync_detailed(client=portal, request_id=created.id), 200)
    assert history and all(isinstance(event, m.AuditEventOut) for event in history)
    assert history[0].action == "erasure_request.received"


def test_the_portal_errors(lethe: Sdk, make_key) -> None:
    m = lethe.m
    portal = lethe.client(make_key(["requests:write", "requests:read"]))
    submit = lethe.op("erasure", "submit_v1_erasure_requests_post")

    empty = _answer(
        submit.sync_detailed(client=portal, body=m.ErasureRequestCreate(identities=[])), 422
    )
    assert isinstance(empty, m.ValidationProblem)
    assert empty.status == 422 and empty.type_.endswith("/validation")
    assert [e.pointer for e in empty.errors] == ["#/identities"]

    key = f"sdk-{uuid.uuid4()}"
    first = m.ErasureRequestCreate(
        identities=[m.IdentityIn(type_=m.IdentityType.EMAIL, value="sdk-key@example.com")]
    )
    _answer(submit.sync_detailed(client=portal, body=first, idempotency_key=key), 202)
    other = m.ErasureRequestCreate(
        identities=[m.IdentityIn(type_=m.IdentityType.EMAIL, value="sdk-other@example.com")]
    )
    reused = _answer(submit.sync_detailed(client=portal, body=other, idempotency_key=key), 422)
    assert isinstance(reused, m.ValidationProblem)
    assert (reused.errors[0].parameter, reused.errors[0].in_) == (
        "Idempotency-Key",
        m.ParameterIn.HEADER,
    )

    listing = lethe.op("erasure", "list_requests_v1_erasure_requests_get")
    too_many = _answer(listing.sync_detailed(client=portal, limit=500), 422)
    assert (too_many.errors[0].parameter, too_many.errors[0].in_) == ("limit", m.ParameterIn.QUERY)

    read = lethe.op("erasure", "get_request_v1_erasure_requests_request_id_get")
    missing = _answer(read.sync_detailed(client=portal, request_id=uuid.uuid4()), 404)
    assert isinstance(missing, m.Problem) and missing.status == 404

    anonymous = _answer(listing.sync_detailed(client=lethe.client(None)), 401)
    assert isinstance(anonymous, m.Problem) and anonymous.status == 401
    revoked = _answer(listing.sync_detailed(client=lethe.client("lth_0000_nope")), 401)
    assert revoked.detail == "The API key is not valid or was revoked"

    approve = lethe.op("erasure", "approve_v1_erasure_requests_request_id_approve_post")
    page = _answer(listing.sync_detailed(client=portal, limit=1), 200)
    request_id = page.items[0].id
    forbidden = _answer(approve.sync_detailed(client=portal, request_id=request_id), 403)
    assert isinstance(forbidden, m.ScopeProblem)
    assert forbidden.required_scope == m.Scope.ADMIN

    admin = lethe.client(make_key(["admin"]))
    conflict = _answer(approve.sync_detailed(client=admin, request_id=request_id), 409)
    assert isinstance(conflict, m.RequestConflict)
    assert isinstance(conflict.current_status, m.RequestStatus)
    assert conflict.current_status != m.RequestStatus.PENDING_APPROVAL


def _records(m: Any, prefix: str, count: int) -> Any:
    return m.RecordsIn(
        records=[
            m.RecordIn(
                key=f"{prefix}-{i}",
                identities=[m.IdentityIn(type_=m.IdentityType.EMAIL, value=f"{prefix}-{i}@ex.com")],
                features=[0.1 * i, 1.0 - 0.1 * i],
                label=i % 2,
            )
            for i in range(count)
        ]
    )


def test_the_ml_team_flow(lethe: Sdk, make_key) -> None:
    m = lethe.m
    team = lethe.client(make_key(["lineage:write", "models:write"]))
    prefix = f"sdk-{uuid.uuid4().hex[:8]}"

    create_dataset = lethe.op("lineage", "create_dataset_v1_datasets_post")
    dataset = _answer(
        create_dataset.sync_detailed(client=team, body=m.DatasetCreate(name=prefix)), 201
    )
    assert isinstance(dataset, m.DatasetOut)

    add = lethe.op("lineage", "add_records_v1_datasets_dataset_id_records_post")
    added = _answer(
        add.sync_detailed(client=team, dataset_id=dataset.id, body=_records(m, prefix, 4)), 201
    )
    assert isinstance(added, m.RecordsAdded) and added.added == 4
    again = _answer(
        add.sync_detailed(client=team, dataset_id=dataset.id, body=_records(m, prefix, 1)), 409
    )
    assert again.errors[0].pointer == "#/records/0/key"

    register = lethe.op("registry", "create_model_v1_models_post")
    unknown = _answer(
        register.sync_detailed(
            client=team, body=m.ModelCreate(name=prefix, dataset_id=dataset.id, architecture="x")
        ),
        422,
    )
    assert [e.pointer for e in unknown.errors] == ["#/architecture"]
    model = _answer(
        register.sync_detailed(
            client=team,
            body=m.ModelCreate(
                name=prefix, dataset_id=dataset.id, architecture="mlp", shards=2, slices=1
            ),
        ),
        201,
    )
    assert isinstance(model, m.ModelOut)
    assert model.strategy == m.Strategy.SISA and model.active_version is None

    train = lethe.op("registry", "train_v1_models_model_id_train_post")
    job = _answer(train.sync_detailed(client=team, model_id=model.id), 202)
    assert isinstance(job, m.JobOut)
    assert (job.kind, job.model_id) == (m.JobKind.TRAIN, model.id)
    assert isinstance(job.status, m.JobStatus) and isinstance(job.stage, m.JobStage)
    assert isinstance(job.metrics, m.JobMetrics)
    busy = _answer(train.sync_detailed(client=team, model_id=model.id), 409)
    assert isinstance(busy, m.ModelBusy) and busy.job_id == job.id

    get_job = lethe.op("jobs", "get_job_v1_jobs_job_id_get")
    assert _answer(get_job.sync_detailed(client=team, job_id=job.id), 200).id == job.id
    missing = _answer(train.sync_detailed(client=team, model_id=uuid.uuid4()), 404)
    assert missing.status == 404


def test_public_documents_are_typed(lethe: Sdk) -> None:
    m = lethe.m
    anyone = lethe.client(None)
    ready = lethe.op("operations", "readyz_readyz_get").sync(client=anyone)
    assert isinstance(ready, m.Ready) and ready.checks.database == "ok"
    keys = lethe.op("audit", "jwks_document_v1_well_known_jwks_json_get").sync(client=anyone)
    assert isinstance(keys, m.Jwks) and keys.keys[0].kty == "OKP"
    discovery = lethe.op("opendsr", "discovery_opendsr_v1_discovery_get").sync(client=anyone)
    assert isinstance(discovery, m.Discovery) and discovery.api_version == "2.0"
    pem = lethe.op("opendsr", "opendsr_certificate_opendsr_v1_certificate_pem_get")
    assert pem.sync(client=anyone).startswith("-----BEGIN CERTIFICATE-----")
