"""Input types that cannot hurt: shared by every request schema and by file imports.

Text may not carry NUL, other control characters or lone surrogates (Postgres refuses NUL and
unpaired surrogates cannot be encoded, so either would fail deep inside a transaction; control
characters in names and references break logs and exports). Integers fit the database column
they are stored in, and features are finite float32 values (a NaN or an infinity trains a
broken model). No error message contains the value that was refused: it may be an identity.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, Field

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
FLOAT32_MAX = 3.4028234663852886e38

# C0 and C1 control characters, DEL, and UTF-16 surrogates. Multi-line text may keep tab, line
# feed and carriage return.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSAFE_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` is not acceptable text, or None; the reason never quotes the value."""
    found = (_UNSAFE_MULTILINE if multiline else _UNSAFE).search(value)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "must not contain NUL characters"
    if "\ud800" <= char <= "\udfff":
        return "must not contain unpaired surrogates"
    return "must not contain control characters"


def _safe(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _safe_multiline(value: str) -> str:
    problem = text_problem(value, multiline=True)
    if problem is not None:
        raise ValueError(problem)
    return value


SafeText = Annotated[str, AfterValidator(_safe)]
"""One line of text: no control characters at all."""

SafeMultilineText = Annotated[str, AfterValidator(_safe_multiline)]
"""Free text (reasons, descriptions): tab and line breaks allowed, no other control character."""

Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
NonNegativeInt32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]

Feature = Annotated[float, Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
"""A feature value: finite and representable as float32, the precision features are stored in."""


def finite_float32(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= FLOAT32_MAX
