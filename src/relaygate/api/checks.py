"""Small, cheap checks of request fields: each raises a 400 naming the parameter at fault.

They run on the hot path (decision 0026), so each looks only at the value it is given: no schema
engine, no copies. `param` is the name the client sees in `error.param`, such as
`messages[2].content` or `body.tools[0].function.name`.
"""

from __future__ import annotations

import math
from collections.abc import Container
from typing import Any, TypeGuard

from relaygate.errors import bad_request

# Columns that hold client strings are at most this long (usage records, jobs); PostgreSQL also
# refuses NUL in text, so both are checked before anything is stored.
MAX_USER_CHARS = 256
MAX_MODEL_CHARS = 256


def member(value: Any, allowed: Container[str]) -> TypeGuard[str]:
    """Whether `value` is one of the strings `allowed` (a list or an object is not, and is not
    hashed: `[] in frozenset()` would raise)."""
    return isinstance(value, str) and value in allowed


def integer(value: Any, param: str, low: int, high: int) -> int:
    """`value` as an integer in [low, high] (booleans and floats are refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad_request(f"'{param}' must be an integer from {low} to {high}", param=param)
    return value


def optional_integer(body: dict[str, Any], name: str, low: int, high: int, prefix: str) -> None:
    """`body[name]` absent, null, or an integer in [low, high]."""
    value = body.get(name)
    if value is not None:
        integer(value, prefix + name, low, high)


NUMBER_TYPES = (int, float)  # exact types: a bool is not a number here


def number(body: dict[str, Any], name: str, prefix: str) -> None:
    """`body[name]` absent, null, or a finite number."""
    value = body.get(name)
    if value is None:
        return
    if type(value) not in NUMBER_TYPES or not math.isfinite(value):
        raise bad_request(f"'{prefix}{name}' must be a number", param=prefix + name)


def boolean(body: dict[str, Any], name: str, prefix: str) -> None:
    """`body[name]` absent, null, or a boolean."""
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"'{prefix}{name}' must be a boolean", param=prefix + name)


def string(value: Any, param: str, most: int | None = None, *, empty: bool = True) -> str:
    """`value` as a string of at most `most` characters (non-empty unless `empty`)."""
    if not isinstance(value, str) or (not empty and not value):
        kind = "a string" if empty else "a non-empty string"
        raise bad_request(f"'{param}' must be {kind}", param=param)
    if most is not None and len(value) > most:
        raise bad_request(f"'{param}' must be at most {most} characters", param=param)
    return value


def optional_string(body: dict[str, Any], name: str, prefix: str, most: int | None = None) -> None:
    """`body[name]` absent, null, or a string of at most `most` characters."""
    value = body.get(name)
    if value is not None:
        string(value, prefix + name, most)


def storable(value: str, param: str) -> str:
    """A string that is kept in the database: no NUL character (PostgreSQL refuses it)."""
    if "\x00" in value:
        raise bad_request(f"'{param}' must not contain NUL characters", param=param)
    return value


def obj(value: Any, param: str) -> dict[str, Any]:
    """`value` as a JSON object."""
    if not isinstance(value, dict):
        raise bad_request(f"'{param}' must be an object", param=param)
    return value


def array(value: Any, param: str, most: int, *, empty: bool = True) -> list[Any]:
    """`value` as a list of at most `most` items (non-empty unless `empty`)."""
    if not isinstance(value, list) or (not empty and not value):
        kind = "a list" if empty else "a non-empty list"
        raise bad_request(f"'{param}' must be {kind}", param=param)
    if len(value) > most:
        raise bad_request(
            f"'{param}' has {len(value)} items; at most {most} are accepted",
            param=param,
            code="too_many_items",
        )
    return value


def depth_of(raw: bytes, body: dict[str, Any], most: int, prefix: str = "") -> None:
    """`depth` of `body` parsed from `raw`, walked only when `raw` has enough brackets to be
    that deep (counting bytes runs at memory speed; most bodies then need no walk)."""
    if raw.count(b"[") + raw.count(b"{") >= most:
        depth(body, most, prefix)


CONTAINERS = (dict, list)  # what parsed JSON nests in (exactly these types, never subclasses)


def depth(body: dict[str, Any], most: int, prefix: str = "") -> None:
    """Refuse a body whose objects and lists nest deeper than `most` (the body itself is 1).

    Code that walks a body (token counting, provider translations, the JSON encoder, which
    stops at 254 levels) must never meet a structure deep enough to exhaust it. The walk goes
    level by level over containers only, so strings cost nothing; the parameter named is the
    top-level field holding the deepest part.
    """
    for name, value in body.items():
        if type(value) not in CONTAINERS:
            continue
        level: list[Any] = [value]
        reached = 2
        while level:
            if reached > most:
                raise bad_request(
                    f"'{prefix}{name}' nests objects and lists deeper than {most} levels",
                    param=prefix + name,
                    code="too_deep",
                )
            level = [
                child
                for item in level
                for child in (item.values() if type(item) is dict else item)
                if type(child) in CONTAINERS
            ]
            reached += 1


def plausible_id(value: str) -> bool:
    """Whether `value` could be one of the gateway's ids (printable ASCII, at most 128
    characters); anything else is answered as not found without a database lookup (PostgreSQL
    refuses NUL, and a long string is not worth a query)."""
    return len(value) <= 128 and value.isascii() and value.isprintable()
