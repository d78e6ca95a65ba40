"""Jinja2 templates (autoescaped) and the filters the pages share."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.core.db import utcnow

TEMPLATES = Path(__file__).parent / "templates"
NONE = "\u2013"  # an en dash where there is no value


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else NONE


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else NONE


def _stamp(value: Any) -> str:
    """An ISO 8601 string (as in signed claims) the way the pages show times."""
    try:
        return _when(datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value)


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _percent(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float):
        return NONE
    return f"{value * 100:.{digits}f} %"


def _number(value: Any, digits: int = 3) -> str:
    if not isinstance(value, int | float):
        return NONE
    return f"{value:.{digits}f}"


def _label(value: str | None) -> str:
    """`pending_approval` -> `pending approval`."""
    return (value or "").replace("_", " ")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when, day=_day, iso=_iso, stamp=_stamp, percent=_percent, number=_number, label=_label
    )
    return env


ENV = _environment()


def base_path(request: Request) -> str:
    """Where the dashboard is mounted (`/dashboard`, behind any proxy prefix)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    html = ENV.get_template(template).render(
        {"base": base_path(request), "now": utcnow(), "request_path": request.url.path, **context}
    )
    return HTMLResponse(html, status_code=status)
