"""The OpenAPI document, completed so that a generated client can trust it.

FastAPI documents the success responses and a 422 of its own shape (`HTTPValidationError`) that
this API never sends. `DocumentedAPI.openapi` replaces every error response of every route with
what the server answers, in one place:

- the errors of the route's dependencies (`@answers` on the API-key check, the scope checks,
  `Idempotency-Key`, the unknown-query-parameter check), of its input (a body: 400 malformed
  JSON, 413, 415, 422; parameters: 422; a path parameter: 404), the route's own (`problems(...)`
  in its `responses=`), and 500;
- each as `application/problem+json` with its `Problem` model, or in the route class's own
  error shape (`error_media_type`, `error_model`, `error_statuses` on the route class: OpenDSR);
- the scopes each route requires, on its bearer security requirement.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.core.errors import PROBLEM_JSON
from app.core.problems import (
    Answer,
    Problem,
    TooLargeProblem,
    ValidationProblem,
    answers_of,
    header_objects,
)

REF = "#/components/schemas/{model}"

# What a route's input can be refused with, before it runs.
BODY_ANSWERS = (
    Answer(400, "The body is not valid JSON (`errors` points at where parsing stopped)"),
    Answer(413, "The body is over the size limit", TooLargeProblem, outside=True),
    Answer(413, "The body grew over the size limit while it was read", TooLargeProblem),
    Answer(415, "The body was not sent as JSON", headers=("Accept",)),
    Answer(422, "The body failed validation", ValidationProblem),
)
PARAMETER_ANSWER = Answer(422, "A parameter failed validation", ValidationProblem)
NOT_FOUND = Answer(404, "Not found, or not visible to this API key")
UNEXPECTED = Answer(500, "An unexpected error; it has been logged", outside=True)
DATABASE_DOWN = Answer(
    503,
    "The database cannot be reached; nothing was changed, retry after `Retry-After` seconds",
    headers=("Retry-After",),
    outside=True,
)


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _has_parameters(dependant: Dependant) -> bool:
    return bool(dependant.path_params or dependant.query_params) or any(
        _has_parameters(sub) for sub in dependant.dependencies
    )


def route_answers(route: Any) -> list[Answer]:
    """Every error response `route` may give."""
    found: list[Answer] = []
    for call in _calls(route.dependant):
        found.extend(answers_of(call))
    if route.body_field is not None:
        found.extend(BODY_ANSWERS)
    if _has_parameters(route.dependant):
        found.append(PARAMETER_ANSWER)
    if route.dependant.path_params:
        found.append(NOT_FOUND)
    for status, declared in route.responses.items():
        model = declared.get("model") if isinstance(declared, dict) else None
        if isinstance(model, type) and issubclass(model, Problem):
            why = str(declared.get("description", ""))
            headers = tuple(declared.get("headers", {}))
            found.extend(Answer(int(status), w, model, headers) for w in why.split("; or "))
    found.extend((DATABASE_DOWN, UNEXPECTED))
    return found


def _common(models: list[type[BaseModel]]) -> type[BaseModel]:
    """The one model when all agree, else the most general of them."""
    first = models[0]
    if all(m is first for m in models):
        return first
    for candidate in models:
        if all(issubclass(m, candidate) for m in models):
            return candidate
    return Problem


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _responses(route: APIRoute, answers: list[Answer]) -> dict[str, dict[str, Any]]:
    """The document's error responses for `route` (its class says how it renders errors)."""
    own_media: str = getattr(route, "error_media_type", PROBLEM_JSON)
    own_model: type[BaseModel] | None = getattr(route, "error_model", None)
    own_status: dict[int, int] = getattr(route, "error_statuses", {})
    by_status: dict[int, dict[str, Any]] = {}
    for answer in answers:
        inside = own_model is not None and not answer.outside
        status = own_status.get(answer.status, answer.status) if inside else answer.status
        media = own_media if inside else PROBLEM_JSON
        entry = by_status.setdefault(status, {"why": [], "media": {}, "headers": set()})
        if answer.why not in entry["why"]:
            entry["why"].append(answer.why)
        entry["media"].setdefault(media, []).append(own_model if inside else answer.model)
        entry["headers"].update(answer.headers)
    responses: dict[str, dict[str, Any]] = {}
    for status, entry in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": "; or ".join(entry["why"]),
            "content": {
                media: {"schema": _ref(_common(models))} for media, models in entry["media"].items()
            },
        }
        if entry["headers"]:
            response["headers"] = header_objects(entry["headers"])
        responses[str(status)] = response
    return responses


def _security_scopes(answers: list[Answer]) -> list[str]:
    return sorted({a.scope for a in answers if a.scope is not None})


def _add_schemas(document: dict[str, Any], models: set[type[BaseModel]]) -> None:
    """Add the error models (and the models they use) to the document's components."""
    _, defs = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template=REF,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in defs.get("$defs", {}).items():
        existing = schemas.setdefault(name, schema)
        # FastAPI leaves out `default: null`; any other difference is two models of one name.
        if _without_defaults(existing) != _without_defaults(schema):
            raise RuntimeError(f"two different schemas are named {name} in the OpenAPI document")


def _without_defaults(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_defaults(v) for k, v in schema.items() if k != "default"}
    if isinstance(schema, list):
        return [_without_defaults(v) for v in schema]
    return schema


def _drop_unused(document: dict[str, Any], names: tuple[str, ...]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    for name in names:
        schemas.pop(name, None)
    text = json.dumps(document)
    for name in names:
        if REF.format(model=name) in text:
            raise RuntimeError(f"the OpenAPI document still refers to {name}")


def api_routes(routes: list[Any]) -> Iterator[tuple[APIRoute, Any]]:
    """Each documented API route: the route as declared (its class), and as included (its
    full path, and the application's dependencies among its own)."""
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.include_in_schema:
            yield route, context


def complete(document: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Replace every error response in `document` (FastAPI's) with the server's own."""
    models: set[type[BaseModel]] = set()
    for route, included in api_routes(routes):
        answers = route_answers(included)
        responses = _responses(route, answers)
        models.update(a.model for a in answers)
        own_model = getattr(route, "error_model", None)
        if own_model is not None:
            models.add(own_model)
        scopes = _security_scopes(answers)
        for method in included.methods:
            operation = document["paths"][included.path_format][method.lower()]
            kept = {s: r for s, r in operation["responses"].items() if int(s) < 400}
            operation["responses"] = kept | responses
            for requirement in operation.get("security", []):
                for scheme in requirement:
                    requirement[scheme] = scopes
    _add_schemas(document, models)
    _drop_unused(document, ("HTTPValidationError", "ValidationError"))
    return document


class DocumentedAPI(FastAPI):
    """FastAPI, whose `/openapi.json` documents every error response as the server sends it."""

    _completed: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        document = super().openapi()  # FastAPI's, cached until the routes change
        if document is not self._completed:
            self._completed = complete(document, self.routes)
        return document
