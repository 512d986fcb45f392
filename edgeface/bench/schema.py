"""The result document's schema (``schema.json``, JSON Schema draft-07) and a validator for the subset it uses.

A small validator instead of a dependency: type, enum, required, properties, items, $ref and oneOf.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

RESULT_FORMAT = "edgeface-bench/1"
SCHEMA_PATH = Path(__file__).with_name("schema.json")
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
          "integer": int, "number": (int, float)}


@cache
def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _is_type(value: object, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def schema_errors(value: object, schema: dict, root: dict, where: str = "$") -> list[str]:
    """Every violation of ``schema`` in ``value``, as 'path: problem' lines."""
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not schema_errors(value, s, root, where)]
        return [] if len(matches) == 1 else [f"{where}: matches {len(matches)} of the oneOf schemas"]
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, t) for t in names):
            return [f"{where}: expected {'|'.join(names)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    errors = []
    if isinstance(value, dict):
        errors += [f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += schema_errors(value[key], sub, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], root, f"{where}[{i}]")
    return errors


def validate_result(document: dict) -> dict:
    """Raise ValueError (first problem, and how many) unless ``document`` follows ``schema.json``."""
    schema = load_schema()
    errors = schema_errors(document, schema, schema)
    if errors:
        raise ValueError(f"not an {RESULT_FORMAT} result: {errors[0]} ({len(errors)} problem(s))")
    return document
