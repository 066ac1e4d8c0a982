"""Scenario dicts written as TOML, remembering which key path each line holds.

The C++ loader reads scenarios as TOML and reports problems at ``origin:line``. A scenario
given as a Python dict is written out here one key per line, so that each such line can be
turned back into the key path the user wrote (``workload[1].to``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class DictError(Exception):
    """A value in a scenario dict that TOML cannot hold; ``where`` is its key path."""

    def __init__(self, where: str, what: str) -> None:
        """Records the key path ``where`` and the problem ``what``."""
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what


def _quote(text: str) -> str:
    """Returns ``text`` as a TOML basic string."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _key(key: Any, where: str) -> str:
    """Returns a dict key as a TOML key (bare when it can be); ``where`` names it in errors."""
    if not isinstance(key, str):
        raise DictError(where, f"expected string keys; got {key!r}")
    return key if _BARE_KEY.fullmatch(key) else _quote(key)


def _plain(value: Any) -> Any:
    """Returns a NumPy scalar as the Python scalar it holds; anything else unchanged."""
    item = getattr(value, "item", None)
    if item is not None and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        return item()
    return value


def _is_table_list(value: Any) -> bool:
    """Whether ``value`` is a non-empty list of mappings (an array of tables, ``[[vm]]``)."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and len(value) > 0
        and all(isinstance(v, Mapping) for v in value)
    )


def format_number(value: float) -> str:
    """Returns a float in TOML (shortest text that reads back the same; ``inf``, ``nan``)."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    return text if any(c in text for c in ".eE") else text + ".0"


def format_value(value: Any, where: str) -> str:
    """Returns ``value`` as an inline TOML value; ``where`` (its key path) names it in errors."""
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, Mapping):
        items = [
            f"{_key(k, where)} = {format_value(v, f'{where}.{k}')}" for k, v in value.items()
        ]
        return "{" + ", ".join(items) + "}"
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return "[" + ", ".join(format_value(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    if hasattr(value, "tolist"):  # a NumPy array
        return format_value(value.tolist(), where)
    if value is None:
        raise DictError(where, "expected a value; got None (TOML has no null: leave the key out)")
    raise DictError(where, f"expected a TOML value; got {type(value).__name__} {value!r}")


def override_text(value: Any, where: str) -> str:
    """Returns ``value`` as the text of a ``key=value`` override (scenarios/FORMAT.md).

    Strings are taken as written, numbers and booleans in TOML spelling, lists as TOML arrays.
    """
    value = _plain(value)
    if isinstance(value, str):
        return value
    return format_value(value, where)


def dict_to_toml(scenario: Mapping[str, Any]) -> tuple[str, dict[int, str]]:
    """Writes a scenario dict as TOML.

    Returns the text and, for each line (from 1) holding a key or a table header, the key path
    it is about: ``duration_s``, ``channel.notify``, ``workload[1]`` (a ``[[workload]]``
    header), ``workload[1].to``. Raises DictError for a value TOML cannot hold.
    """
    if not isinstance(scenario, Mapping):
        raise DictError("<scenario>", f"expected a dict; got {type(scenario).__name__}")
    lines: list[str] = []
    paths: dict[int, str] = {}

    def add(line: str, path: str) -> None:
        """Appends one line of TOML about ``path``."""
        lines.append(line)
        paths[len(lines)] = path

    def table(body: Mapping[str, Any], header: list[str], path: str) -> None:
        """Writes a table's plain keys, then its sub-tables and arrays of tables."""
        nested: list[tuple[str, Any]] = []
        for k, v in body.items():
            where = f"{path}.{k}" if path else str(k)
            toml_key = _key(k, where)
            if isinstance(v, Mapping) or _is_table_list(v):
                nested.append((k, v))
            else:
                add(f"{toml_key} = {format_value(v, where)}", where)
        for k, v in nested:
            where = f"{path}.{k}" if path else k
            sub = header + [_key(k, where)]
            if isinstance(v, Mapping):
                lines.append("")
                add("[" + ".".join(sub) + "]", where)
                table(v, sub, where)
            else:
                for i, item in enumerate(v):
                    lines.append("")
                    add("[[" + ".".join(sub) + "]]", f"{where}[{i}]")
                    table(item, sub, f"{where}[{i}]")

    table(scenario, [], "")
    return "\n".join(lines) + "\n", paths


_KEY_PREFIX = re.compile(r"([A-Za-z0-9_.\[\]-]+): (.*)", re.DOTALL)


def issue_at_path(where: str, what: str, origin: str, paths: dict[int, str]) -> tuple[str, str]:
    """Turns an issue the loader reported at ``origin:LINE`` of dict_to_toml's text into one at
    the key path that line holds, without the key repeated in ``what``. Other issues (a preset's
    lines, key paths) are returned unchanged."""
    prefix = origin + ":"
    if not where.startswith(prefix) or not where[len(prefix) :].isdigit():
        return where, what
    path = paths.get(int(where[len(prefix) :]))
    if path is None:
        return where, what
    match = _KEY_PREFIX.fullmatch(what)
    if match and (match[1] == path or match[1].startswith((path + ".", path + "["))):
        return match[1], match[2]
    return path, what
