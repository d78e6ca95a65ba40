"""The schema of every error the API sends: RFC 9457 problem details (`application/problem+json`),
as pydantic models for the OpenAPI document, and the table that says which route answers which.

`app.core.errors` renders the documents; these models describe them. A route's own errors (a
409 that names the request's `current_status`, ...) are declared with `problems(...)` in its
`responses=`; the errors its dependencies raise (401, 403, an `Idempotency-Key` conflict, ...)
are declared once, where the dependency is defined, with `@answers(...)`. `app.core.openapi`
puts both into the document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.core.scopes import Scope


class ParameterIn(StrEnum):
    QUERY = "query"
    HEADER = "header"
    PATH = "path"
    COOKIE = "cookie"


class FieldProblem(BaseModel):
    """One offending input: a JSON Pointer into the body, or a named parameter. The value
    itself is never repeated (it may be an identity)."""

    model_config = ConfigDict(populate_by_name=True)

    pointer: str | None = Field(
        None, description="JSON Pointer (RFC 6901, `#/a/0/b`) into the request body."
    )
    parameter: str | None = Field(None, description="The query, path or header parameter.")
    in_: ParameterIn | None = Field(None, alias="in", description="Where `parameter` is.")
    detail: str


class Problem(BaseModel):
    """An RFC 9457 problem document. Members beyond the standard ones are extensions; the
    models below name the ones a status carries, others may appear (`additionalProperties`)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)

    type: str = Field(description="A URI naming the kind of problem, under /problems/.")
    title: str
    status: int
    detail: str = Field(description="What went wrong; never contains an input value.")
    instance: str | None = Field(None, description="The path of the request.")
    errors: list[FieldProblem] | None = Field(
        None, description="Each offending input, when the problem is about the input."
    )


class ValidationProblem(Problem):
    """A request whose input was refused (422): `errors` names every offending input."""

    errors: list[FieldProblem] = Field(description="Each offending input.")


class ScopeProblem(Problem):
    """A key without the scope the route requires (403)."""

    required_scope: Scope


class TooLargeProblem(Problem):
    """A request body over the limit (413)."""

    max_bytes: int


@dataclass(frozen=True)
class Answer:
    """One error response a route may give: its status, why, and the schema of its body."""

    status: int
    why: str
    model: type[Problem] = Problem
    headers: tuple[str, ...] = ()
    # Raised outside the route (a middleware, an unhandled error): a problem document even on
    # routes that render their own errors in another shape (OpenDSR).
    outside: bool = False
    # A scope check's 403 names the scope: the route's security requirement lists it.
    scope: str | None = None


HEADERS = {
    "WWW-Authenticate": "`Bearer`: send an API key as `Authorization: Bearer lth_...`.",
    "Retry-After": "Seconds to wait before trying again.",
    "Accept": "The media type the body must be sent as.",
}


def header_objects(names: tuple[str, ...] | set[str]) -> dict[str, dict[str, Any]]:
    """OpenAPI header objects for the headers an error response carries."""
    return {
        name: {"description": HEADERS[name], "schema": {"type": "string"}} for name in sorted(names)
    }


_dependency_answers: dict[Callable[..., Any], tuple[Answer, ...]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def answers(*declared: Answer) -> Callable[[F], F]:
    """Mark a dependency with the errors it raises: every route that depends on it (directly
    or through another dependency) documents them."""

    def mark(call: F) -> F:
        _dependency_answers[call] = _dependency_answers.get(call, ()) + declared
        return call

    return mark


def answers_of(call: Callable[..., Any] | None) -> tuple[Answer, ...]:
    return _dependency_answers.get(call, ()) if call is not None else ()


def problems(*declared: Answer) -> dict[int | str, dict[str, Any]]:
    """A route's own errors, for its `responses=`: `responses=problems(Answer(409, ...))`.
    Two answers with one status share the most general model."""
    table: dict[int | str, dict[str, Any]] = {}
    for answer in declared:
        entry = table.get(answer.status)
        if entry is None:
            entry = table[answer.status] = {"model": answer.model, "description": answer.why}
        else:
            if entry["model"] is not answer.model:
                entry["model"] = Problem
            entry["description"] += f"; or {answer.why[:1].lower()}{answer.why[1:]}"
        if answer.headers:
            entry.setdefault("headers", {}).update(header_objects(answer.headers))
    return table
