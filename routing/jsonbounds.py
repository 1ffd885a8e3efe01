"""The one nesting limit for JSON that people and systems send us (intake, console API, console forms).

Python's json module recurses once per level, so a few thousand brackets raise RecursionError (a 500) while
parsing, and a value nested near Python's recursion limit fails again when it is stored or rendered. orjson
refuses more than 1024 levels itself; everything parsed here is then held to MAX_JSON_DEPTH, far above any
legitimate document (a rule condition at its deepest, 12 levels of `all`/`any`, is 26 JSON levels)."""

from typing import Any

import orjson

MAX_JSON_DEPTH = 64


class JSONInputError(ValueError):
    """Not JSON, or nested deeper than MAX_JSON_DEPTH; the message says which and where."""


def json_depth(value: Any) -> int:
    """Levels of nesting: a scalar is 0, [] or {} is 1. Iterative, so depth itself cannot crash it."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest  # no need to walk the rest
        stack.extend((child, level + 1) for child in children)
    return deepest


def contains_nul(value: Any) -> bool:
    """Whether any key or string inside holds a NUL, which PostgreSQL's text and jsonb cannot store."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False


def check_json_depth(value: Any) -> Any:
    if json_depth(value) > MAX_JSON_DEPTH:
        raise JSONInputError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels; flatten it.")
    return value


def loads_bounded(text: str | bytes) -> Any:
    """Parse JSON sent to us: JSONInputError (with what is wrong) for malformed or too deeply nested input."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:  # its message locates the fault (and names its own depth limit)
        raise JSONInputError(f"Malformed JSON: {exc}") from None
    return check_json_depth(value)


MAX_ATTRIBUTE_DEPTH = 5
MAX_ATTRIBUTE_KEYS = 200
NUL_MESSAGE = "Must not contain NUL (\\u0000) characters."


def attribute_shape_problem(value: Any) -> str | None:
    """What is wrong with free-form attributes (a lead's, an account's), or None: nested at most 5 levels, at
    most 200 keys per object, no NUL anywhere. Iterative, like json_depth."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list) and depth > MAX_ATTRIBUTE_DEPTH:
            return f"Nested deeper than {MAX_ATTRIBUTE_DEPTH} levels; flatten it."
        if isinstance(node, dict):
            if len(node) > MAX_ATTRIBUTE_KEYS:
                return f"More than {MAX_ATTRIBUTE_KEYS} keys in one object."
            if any("\x00" in key for key in node):
                return NUL_MESSAGE
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, str) and "\x00" in node:
            return NUL_MESSAGE
    return None
