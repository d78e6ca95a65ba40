"""Checks every API route makes before its own parameters: no query parameter the route does
not know (a typo such as `?refrence=` must not silently return everything), and a JSON body
sent as JSON (a body without `Content-Type: application/json` is a 415, not a guess).

Installed once for the whole application (`create_app` passes `checked_request` as a global
dependency), so a new route gets both checks without doing anything.
"""

from __future__ import annotations

import email.message

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.core.errors import ProblemError
from app.core.problems import Answer, answers

_known_query: dict[int, frozenset[str]] = {}


def _declared_query(dependant: Dependant) -> set[str]:
    """The query parameters a route and its dependencies declare (a pydantic model used as
    the query counts with its fields)."""
    names: set[str] = set()
    for param in dependant.query_params:
        model = param.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names.update(f.alias or n for n, f in model.model_fields.items())
        else:
            names.add(param.alias)
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return names


def _query_names(route: APIRoute) -> frozenset[str]:
    names = _known_query.get(id(route))
    if names is None:
        names = frozenset(_declared_query(route.dependant))
        _known_query[id(route)] = names
    return names


def _is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


# The 415 is documented with the other body errors (`app.core.openapi.BODY_ANSWERS`).
@answers(Answer(400, "An unknown query parameter (`errors` names it)"))
async def checked_request(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise ProblemError(
            400,
            f"Unknown query parameter(s): {', '.join(unknown)[:200]}; this route accepts: "
            f"{accepted}",
            slug="unknown-query-parameter",
            errors=[
                {"parameter": name[:100], "in": "query", "detail": "unknown query parameter"}
                for name in unknown[:20]
            ],
        )
    if route.body_field is not None and await request.body():
        content_type = request.headers.get("content-type")
        if not content_type or not _is_json(content_type):
            raise ProblemError(
                415,
                "Send the request body as JSON, with `Content-Type: application/json`",
                headers={"Accept": "application/json"},
                errors=[
                    {
                        "parameter": "Content-Type",
                        "in": "header",
                        "detail": "missing" if not content_type else "not a JSON media type",
                    }
                ],
            )
