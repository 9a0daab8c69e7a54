"""The one check every text and JSON value passes before ATOM accepts it.

Whatever is accepted must be storable on both stores and readable back
through every interface: PostgreSQL refuses NUL in text, UTF-8 cannot encode
a lone surrogate, deep nesting exhausts Python's recursion limit in the JSON
encoder, JavaScript clients lose integers beyond 2^53, and JSON has no NaN.
The services call `check_text` and `check_json` (so the API, the CLI and the
dashboard share them); the REST models use the `Text`/`Int` types, which run
the same checks and state the limits in the OpenAPI schema; the API's
middleware runs `body_depth_problem` on the raw body before it is decoded.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from itertools import accumulate
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from atom_core.errors import Invalid

JSON_MAX_DEPTH = 32  # free JSON values (run inputs, specs): far above real use, far below recursion limits
BODY_MAX_DEPTH = JSON_MAX_DEPTH + 8  # a request body wraps such values in a few levels of its own
JSON_MAX_BYTES = 256 * 1024
KEY_MAX = 256
SAFE_INT_MAX = 2**53 - 1  # integers every JSON client reads exactly (RFC 7493)
INT32_MAX = 2**31 - 1  # versions, counters, event numbers
# JSON-schema (ECMA-262) spelling of "no NUL": what the OpenAPI schema states for free text.
TEXT_PATTERN = r"^[^\u0000]*$"
REQUIRED_TEXT_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"  # and not only white space
# A name: no control characters, and at least one character that is not white space.
_CONTROL = r"\u0000-\u001f\u007f-\u009f"
NAME_PATTERN = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"

_STRING_LITERAL = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NESTING = [0] * 256
_NESTING[ord("[")] = _NESTING[ord("{")] = 1
_NESTING[ord("]")] = _NESTING[ord("}")] = -1


def text_problem(value: str) -> str | None:
    """What makes `value` impossible to store and read back, or None."""
    if "\x00" in value:
        return "must not contain NUL characters (\\u0000)"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # only a lone surrogate cannot be encoded
            return "must not contain lone surrogates (\\ud800-\\udfff): it is not valid Unicode text"
    return None


def check_text(value: Any, field: str, *, max_length: int | None = None) -> str:
    """`value` as text that can be stored; `Invalid` naming `field` otherwise."""
    if not isinstance(value, str):
        raise Invalid(f"{field} must be text", field=field)
    if max_length is not None and len(value) > max_length:
        raise Invalid(f"{field} must be at most {max_length} characters", field=field)
    problem = text_problem(value)
    if problem:
        raise Invalid(f"{field} {problem}", field=field)
    return value


def check_int(value: Any, field: str, *, minimum: int = -SAFE_INT_MAX, maximum: int = SAFE_INT_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{field} must be a whole number", field=field)
    if not minimum <= value <= maximum:
        raise Invalid(f"{field} must be between {minimum} and {maximum}", field=field)
    return value


def check_json(value: Any, field: str, *, max_depth: int = JSON_MAX_DEPTH, max_bytes: int = JSON_MAX_BYTES) -> Any:
    """`value` if it is JSON that every store and client keeps as it is; else
    `Invalid` whose field is the path of the first bad part (`input.items[3].name`).

    Walked without recursion, so no nesting can exhaust the stack here.
    """
    todo: list[tuple[Any, str, int]] = [(value, field, 0)]
    while todo:
        item, path, depth = todo.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                raise Invalid(f"{path} is nested too deeply (at most {max_depth} levels)", field=path)
            todo.extend(_children(item, path, depth + 1))
        else:
            _check_scalar(item, path)
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > max_bytes:
        raise Invalid(f"{field} is larger than {max_bytes // 1024} KB as JSON", field=field)
    return value


def _children(item: dict | list, path: str, depth: int) -> list[tuple[Any, str, int]]:
    if isinstance(item, list):
        return [(child, f"{path}[{index}]", depth) for index, child in reversed(list(enumerate(item)))]
    children = []
    for key, child in item.items():
        # A bad key is reported at its parent: the key itself may not be printable.
        if not isinstance(key, str):
            raise Invalid(f"{path}: keys must be text", field=path)
        if len(key) > KEY_MAX:
            raise Invalid(f"{path}: keys must be at most {KEY_MAX} characters", field=path)
        problem = text_problem(key)
        if problem:
            raise Invalid(f"{path}: keys {problem}", field=path)
        children.append((child, f"{path}.{key}", depth))
    return children[::-1]


def _check_scalar(item: Any, path: str) -> None:
    if item is None or isinstance(item, bool):
        return
    if isinstance(item, str):
        check_text(item, path)
    elif isinstance(item, int):
        check_int(item, path)
    elif isinstance(item, float):
        if not math.isfinite(item):
            raise Invalid(f"{path} must be a finite number", field=path)
    else:
        raise Invalid(f"{path} must be a JSON value (text, number, true/false, null, list or object)", field=path)


def body_depth_problem(body: bytes, max_depth: int = BODY_MAX_DEPTH) -> str | None:
    """Whether raw JSON nests deeper than `max_depth`, found without decoding it
    (decoding such a body is what exhausts the recursion limit)."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return None  # the usual case: too few brackets to matter
    brackets = _STRING_LITERAL.sub(b"", body).translate(None, _NOT_BRACKETS)
    if max(accumulate(map(_NESTING.__getitem__, brackets)), default=0) > max_depth:
        return f"the request body is nested too deeply (at most {max_depth} levels)"
    return None


# ------------------------------------------------- types for request models


def _pydantic(check: Callable[[Any], str | None]) -> AfterValidator:
    def validate(value: Any) -> Any:
        problem = check(value)
        if problem:
            raise PydanticCustomError("invalid_text", problem)
        return value

    return AfterValidator(validate)


def name_problem(value: str) -> str | None:
    """What makes `value` unfit as a name (one line of visible text), or None."""
    if not value.strip():
        return "must not be empty"
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return "must not contain control characters"
    return text_problem(value)


def required_text_problem(value: str) -> str | None:
    return "must not be empty" if not value.strip() else text_problem(value)


def Text(max_length: int, *, required: bool = False, description: str | None = None) -> Any:
    """A str field that holds only storable text (`required`: not blank either);
    the schema states its limits."""
    return Annotated[
        str,
        Field(min_length=1 if required else 0, max_length=max_length, description=description),
        Field(json_schema_extra={"pattern": REQUIRED_TEXT_PATTERN if required else TEXT_PATTERN}),
        _pydantic(required_text_problem if required else text_problem),
    ]


def Matching(pattern: re.Pattern[str], max_length: int, *, description: str | None = None) -> Any:
    """A str field whose form the service checks with `pattern` (and explains in
    its own words); the schema states the pattern so that clients know it too."""
    return Annotated[
        str,
        Field(min_length=1, max_length=max_length, description=description),
        Field(json_schema_extra={"pattern": pattern.pattern}),
        _pydantic(text_problem),
    ]


def Name(max_length: int, *, description: str | None = None) -> Any:
    """A name: one line of visible text, 1 to `max_length` characters."""
    return Annotated[
        str,
        Field(min_length=1, max_length=max_length, description=description),
        Field(json_schema_extra={"pattern": NAME_PATTERN}),
        _pydantic(name_problem),
    ]


def Int(minimum: int, maximum: int, *, description: str | None = None) -> Any:
    """An int field with its range stated in the schema (1e30 is refused before any query)."""
    return Annotated[int, Field(ge=minimum, le=maximum, description=description)]
