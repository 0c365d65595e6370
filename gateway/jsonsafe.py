"""JSON from outside, read without surprises: too deep a nesting is a refusal, never a 500."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32  # the phone's events and the simulator's requests nest three or four deep


class BadJSON(ValueError):
    """Not JSON, nested deeper than MAX_DEPTH, or (when asked) holding half a character."""


def depth_over(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests lists and objects deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if level > limit:
                return True
            stack.extend((v, level + 1) for v in item)
    return False


def has_lone_surrogate(value: Any) -> bool:
    """Whether a string in `value` holds half a character (a lone UTF-16 surrogate)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads(body: bytes | str, *, whole_characters: bool = False) -> Any:
    """`json.loads`, raising BadJSON for what is not JSON, nests too deep or (with
    `whole_characters`) carries a lone surrogate."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise BadJSON("nested too deep") from None
    except ValueError:
        raise BadJSON("not JSON") from None
    if depth_over(value):
        raise BadJSON("nested too deep")
    if whole_characters and has_lone_surrogate(value):
        raise BadJSON("half a character (a lone surrogate)")
    return value
