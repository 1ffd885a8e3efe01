"""The rule condition language: JSON Schema validation with located errors, and compilation to Python.

A condition is `{"all": [...]}`, `{"any": [...]}`, `{"not": {...}}` or a leaf
`{"field": "engagement_score", "op": "gt", "value": 50}`. A comparison on a missing or null field is
false (so its `not` is true); `exists`/`missing` test whether the field has a non-null value.

`matches` runs RE2 (`compile_pattern`), never Python's `re`: a rule owner's pattern is evaluated on every
lead inside the routing transaction, and a backtracking engine can spend minutes on one pattern
(`^(a+)+$`). RE2 takes time linear in the text for any pattern it accepts; the patterns it cannot run
(backreferences, lookaround, …) are refused when the condition is validated.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import re2
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

LEAD_FIELDS = (
    "lead_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "company_size",
    "country",
    "lifecycle_stage",
    "engagement_score",
    "intent_score",
    "occurred_at",
)
COMPARISON_OPS = ("eq", "ne", "gt", "gte", "lt", "lte")
MEMBERSHIP_OPS = ("in", "not_in")
STRING_OPS = ("contains", "startswith", "endswith", "matches")
PRESENCE_OPS = ("exists", "missing")
OPS = COMPARISON_OPS + MEMBERSHIP_OPS + STRING_OPS + PRESENCE_OPS
# The lead's matched account (routing/accounts): missing when no account matched. Its CRM attributes are
# read the same way, `account.<attribute>`; a fixed field wins over an attribute of the same name.
ACCOUNT_FIELDS = ("id", "name", "owner", "territory", "country")
# Fields holding an object, read as `<root>.<key>[.<key>…]`.
NESTED_ROOTS = ("attributes", "account")
FIELD_PATTERN = "^(" + "|".join(LEAD_FIELDS) + r"|(attributes|account)(\.[A-Za-z0-9_\-]+)+)$"
MAX_DEPTH = 12
MAX_PATTERN_LENGTH = 500  # characters of a `matches` pattern (the limit the schema has always had)
# What one condition may hold, checked before any pattern is compiled: a distinct pattern costs up to ~30 ms
# and 1 MiB to compile (RE2_MAX_MEM), so a save answers in well under a second whatever is posted.
MAX_LEAVES = 100
MAX_PATTERNS = 10
RE2_MAX_MEM = 1 << 20  # bytes RE2 may use for one pattern's program; larger patterns are refused

_scalar = {"type": ["string", "number", "boolean"]}
CONDITION_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$ref": "#/$defs/condition",
    "$defs": {
        "condition": {
            "type": "object",
            "minProperties": 1,
            # Dispatch on the key present, so errors come from the branch the author meant.
            "if": {"required": ["all"]},
            "then": {"properties": {"all": {"$ref": "#/$defs/list"}}, "additionalProperties": False},
            "else": {
                "if": {"required": ["any"]},
                "then": {"properties": {"any": {"$ref": "#/$defs/list"}}, "additionalProperties": False},
                "else": {
                    "if": {"required": ["not"]},
                    "then": {"properties": {"not": {"$ref": "#/$defs/condition"}}, "additionalProperties": False},
                    "else": {"$ref": "#/$defs/leaf"},
                },
            },
        },
        "list": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}},
        "leaf": {
            "type": "object",
            "required": ["field", "op"],
            "properties": {
                "field": {"type": "string", "pattern": FIELD_PATTERN},
                "op": {"enum": list(OPS)},
                "value": True,
            },
            "additionalProperties": False,
            "allOf": [
                {
                    "if": {"properties": {"op": {"enum": list(PRESENCE_OPS)}}},
                    "then": {"not": {"required": ["value"]}},
                    "else": {"required": ["value"]},
                },
                {
                    "if": {"properties": {"op": {"enum": list(MEMBERSHIP_OPS)}}},
                    "then": {"properties": {"value": {"type": "array", "minItems": 1, "items": _scalar}}},
                },
                {
                    "if": {"properties": {"op": {"enum": ["eq", "ne", "contains"]}}},
                    "then": {"properties": {"value": _scalar}},
                },
                {
                    "if": {"properties": {"op": {"enum": ["gt", "gte", "lt", "lte"]}}},
                    "then": {"properties": {"value": {"type": ["string", "number"]}}},
                },
                {
                    "if": {"properties": {"op": {"enum": ["startswith", "endswith"]}}},
                    "then": {"properties": {"value": {"type": "string", "minLength": 1}}},
                },
                {
                    "if": {"properties": {"op": {"const": "matches"}}},
                    "then": {"properties": {"value": {"type": "string", "minLength": 1}}},  # length: compile_pattern
                },
            ],
        },
    },
}
_validator = Draft202012Validator(CONDITION_SCHEMA)


class ConditionError(ValueError):
    """A condition that cannot be saved; `location` says where, e.g. `when.all[1].op`."""

    def __init__(self, location: str, message: str):
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}")


def _location(root: str, path: Sequence[Any]) -> str:
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _message(error) -> str:
    if error.validator == "pattern" and error.path and error.path[-1] == "field":
        return (
            f"unknown field {error.instance!r}; use one of {', '.join(LEAD_FIELDS)}, attributes.<key> or "
            f"account.<{'|'.join(ACCOUNT_FIELDS)}|attribute>"
        )
    if error.validator == "enum" and error.path and error.path[-1] == "op":
        return f"unknown op {error.instance!r}; use one of {', '.join(OPS)}"
    if error.validator == "additionalProperties" and not error.path:
        return error.message
    if error.validator == "not" and error.validator_value == {"required": ["value"]}:
        return "exists/missing take no value"
    if error.validator == "required":
        return error.message
    if error.validator == "minProperties":
        return "empty condition; use all, any, not or a leaf with field and op"
    return error.message


def validate_condition(condition: Any, root: str = "when") -> None:
    """Raise ConditionError naming where the condition is wrong; return None when it is valid."""
    error = best_match(_validator.iter_errors(condition))
    if error is not None:
        raise ConditionError(_location(root, error.absolute_path), _message(error))
    _check_size(condition, root)
    _check_semantics(condition, root, depth=0)


def _leaves(condition: dict, depth: int = 0):
    if depth > MAX_DEPTH:  # reported with its place by _check_semantics; stop counting here
        return
    for key in ("all", "any"):
        if key in condition:
            for child in condition[key]:
                yield from _leaves(child, depth + 1)
            return
    if "not" in condition:
        yield from _leaves(condition["not"], depth + 1)
        return
    yield condition


def _check_size(condition: dict, root: str) -> None:
    leaves = list(_leaves(condition))
    if len(leaves) > MAX_LEAVES:
        raise ConditionError(root, f"has {len(leaves)} conditions; the limit is {MAX_LEAVES} (use `in` for lists)")
    patterns = {leaf["value"] for leaf in leaves if leaf["op"] == "matches"}
    if len(patterns) > MAX_PATTERNS:
        raise ConditionError(
            root,
            f"has {len(patterns)} different `matches` patterns; the limit is {MAX_PATTERNS} "
            "(join alternatives into one pattern with |)",
        )


def _check_semantics(condition: dict, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ConditionError(where, f"nested deeper than {MAX_DEPTH} levels")
    for key in ("all", "any"):
        if key in condition:
            for index, child in enumerate(condition[key]):
                _check_semantics(child, f"{where}.{key}[{index}]", depth + 1)
            return
    if "not" in condition:
        _check_semantics(condition["not"], f"{where}.not", depth + 1)
        return
    if condition["op"] == "matches":
        try:
            compile_pattern(condition["value"])
        except PatternError as exc:
            raise ConditionError(f"{where}.value", str(exc)) from None


class PatternError(ValueError):
    """A `matches` pattern RE2 will not run, or one over MAX_PATTERN_LENGTH; the message says why."""


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is reported to its author, not printed to stderr
_RE2_OPTIONS.never_capture = True  # `matches` only asks whether there is a match: no groups to record
_RE2_OPTIONS.max_mem = RE2_MAX_MEM

# What RE2 says about a pattern it refuses -> the feature, named for the author.
_UNSUPPORTED = {
    "invalid escape sequence: \\Z": "\\Z is not supported; write \\z for the end of the text",
    "invalid perl operator: (?=": "lookahead (?=…) is not supported",
    "invalid perl operator: (?!": "negative lookahead (?!…) is not supported",
    "invalid perl operator: (?<=": "lookbehind (?<=…) is not supported",
    "invalid perl operator: (?<!": "negative lookbehind (?<!…) is not supported",
    "invalid perl operator: (?P": "named backreferences (?P=…) are not supported",
    "invalid perl operator: (?>": "atomic groups (?>…) are not supported",
    "invalid perl operator: (?(": "conditional groups (?(…)…) are not supported",
}


def _unsupported(detail: str) -> str | None:
    if detail == "pattern too large - compile failed":
        return (
            f"the pattern is too large to run ({RE2_MAX_MEM // 1024} KiB limit): large repeat counts such as "
            "[\\pL\\pN]{300} multiply its size; use a smaller count or + and *"
        )
    if detail in _UNSUPPORTED:
        return _UNSUPPORTED[detail]
    if detail.startswith("invalid escape sequence: \\") and detail[-1:].isdigit():
        return "backreferences (\\1) are not supported"
    if detail.startswith("invalid escape sequence: \\k") or detail.startswith("invalid escape sequence: \\g"):
        return "backreferences (\\k<name>, \\g<1>) are not supported"
    if detail.startswith("bad repetition operator: ") and detail.endswith("+"):
        return "possessive repeats (a++, a*+) are not supported"
    return None


@functools.lru_cache(maxsize=1024)  # rule sets are rebuilt on every change; unchanged patterns are not recompiled
def compile_pattern(pattern: str):
    """The only way a `matches` pattern is compiled (validation, and every rule set the engine, gates, preview
    and replay evaluate): RE2, searched anywhere in the text as `re.search` does, with no flags but those
    written inline (`(?i)`, `(?s)`, `(?m)`, `(?U)`). Raises PatternError with a message for the author."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"the pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_LENGTH}")
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        detail = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        feature = _unsupported(detail)
        if feature is None:
            raise PatternError(f"invalid regular expression: {detail}") from None
        raise PatternError(
            f"invalid regular expression: {feature} (patterns run on RE2, which guarantees linear time; {detail})"
        ) from None


def fields_read(condition: dict) -> list[str]:
    """Every field a condition reads, in order of first appearance."""
    seen: dict[str, None] = {}

    def walk(node):
        for key in ("all", "any"):
            if key in node:
                for child in node[key]:
                    walk(child)
                return
        if "not" in node:
            walk(node["not"])
            return
        seen.setdefault(node["field"], None)

    walk(condition)
    return list(seen)


def read_field(view: dict, field: str):
    """A lead field's value from the engine's view of the lead; None when missing."""
    root, dot, rest = field.partition(".")
    if not dot or root not in NESTED_ROOTS:
        return view.get(field)
    return _dig(view.get(root), tuple(rest.split(".")))


def _dig(value, keys):
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class _Compiler:
    """Turns a list of conditions into the source of one Python function over a lead view `L`.

    Each field a condition reads is looked up once per evaluation into a local, with typed views of it
    (number, string, hashable scalar, container, list) computed only where a leaf needs them, so a leaf
    is a couple of local-variable tests. Values never enter the source text: they are bound as constants
    k0, k1, … of the function's namespace, and field names are checked against FIELD_PATTERN first, so the
    generated code cannot be steered by rule content.
    """

    VIEWS = {
        "n": "{f} if {t} is int or {t} is float else None",
        "s": "{f} if {t} is str else None",
        "h": "{f} if {t} is str or {t} is int or {t} is float or {t} is bool else None",
        "c": "{f} if {t} is str or {t} is list else None",
        "l": "{f} if {t} is list else None",
    }

    def __init__(self):
        self.constants: list[Any] = []
        self.fields: dict[str, int] = {}
        self.views: set[tuple[str, int]] = set()

    def const(self, value) -> str:
        self.constants.append(value)
        return f"k{len(self.constants) - 1}"

    def view(self, field: str, kind: str) -> str:
        index = self.fields.setdefault(field, len(self.fields))
        if kind != "f":
            self.views.add((kind, index))
        return f"{kind}{index}"

    def expression(self, node: dict) -> str:
        if "all" in node:
            return "(" + " and ".join(self.expression(child) for child in node["all"]) + ")"
        if "any" in node:
            return "(" + " or ".join(self.expression(child) for child in node["any"]) + ")"
        if "not" in node:
            return f"(not {self.expression(node['not'])})"
        return self.leaf(node)

    def leaf(self, node: dict) -> str:
        op, field = node["op"], node["field"]
        if op in ("exists", "missing"):
            return f"({self.view(field, 'f')} is {'not ' if op == 'exists' else ''}None)"
        value = node["value"]
        if op in ("eq", "ne"):
            f = self.view(field, "f")
            return f"({f} is not None and {f} {'==' if op == 'eq' else '!='} {self.const(value)})"
        if op in ("gt", "gte", "lt", "lte"):
            typed = self.view(field, "n" if isinstance(value, int | float) else "s")
            symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            return f"({typed} is not None and {typed} {symbol} {self.const(value)})"
        if op in ("in", "not_in"):
            h = self.view(field, "h")
            return f"({h} is not None and {h} {'in' if op == 'in' else 'not in'} {self.const(frozenset(value))})"
        if op == "contains":
            holder = self.view(field, "c" if isinstance(value, str) else "l")
            return f"({holder} is not None and {self.const(value)} in {holder})"
        if op in ("startswith", "endswith"):
            s = self.view(field, "s")
            return f"({s} is not None and {s}.{op}({self.const(value)}))"
        if op == "matches":
            s = self.view(field, "s")
            return f"({s} is not None and {self.const(compile_pattern(value).search)}({s}) is not None)"
        raise ConditionError("op", f"unknown op {op!r}")  # unreachable after validation

    def prelude(self) -> list[str]:
        lines = ["    g = L.get"]
        holders = {"attributes": "A", "account": "C"}
        for root, name in holders.items():
            if any(field.startswith(root + ".") for field in self.fields):
                lines.append(f"    {name} = g({root!r})")
        for field, index in self.fields.items():
            root, dot, rest = field.partition(".")
            if dot and root in holders:
                keys = tuple(rest.split("."))
                lines.append(f"    f{index} = _dig({holders[root]}, {self.const(keys)})")
            else:
                lines.append(f"    f{index} = g({field!r})")
            kinds = [kind for kind, i in sorted(self.views) if i == index]
            if kinds:
                lines.append(f"    t{index} = type(f{index})")
            for kind in kinds:
                lines.append(f"    {kind}{index} = " + self.VIEWS[kind].format(f=f"f{index}", t=f"t{index}"))
        return lines


def compile_first_match(conditions: Sequence[dict]) -> Callable[[dict], int]:
    """One function over a lead view returning the index of the first condition that holds, or -1.

    The whole rule list becomes a single function, so evaluating a lead costs a chain of inline checks,
    not a walk over JSON (the engine benchmark in bench/ measures it).
    """
    compiler = _Compiler()
    tests = [f"    if {compiler.expression(condition)}: return {index}" for index, condition in enumerate(conditions)]
    source = "\n".join(["def first_match(L):", *compiler.prelude(), *tests, "    return -1"])
    # Constants are globals of the function's own namespace: specialised global loads cost about as much as
    # locals, and unlike closure cells or defaults they are not copied into every call's frame.
    namespace: dict[str, Any] = {f"k{i}": value for i, value in enumerate(compiler.constants)}
    namespace["_dig"] = _dig
    exec(compile(source, "<rules>", "exec"), namespace)  # noqa: S102 - source built above from checked parts
    return namespace["first_match"]


def compile_condition(condition: dict) -> Callable[[dict], bool]:
    first_match = compile_first_match([condition])
    return lambda view: first_match(view) == 0
