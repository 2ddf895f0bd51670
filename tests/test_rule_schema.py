"""The rule files' JSON Schema: what editors show and check while a rule is written."""

from __future__ import annotations

from typing import Any

from bot.durations import PATTERN
from bot.engine.rules import rule_schema


def properties(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every (path, schema) under a `properties` key, anywhere in the schema."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                found.extend((f"{path}.{name}", sub) for name, sub in value.items())
            found.extend(properties(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(properties(value, f"{path}[{i}]"))
    return found


def test_every_schema_property_has_a_description() -> None:
    missing = [path for path, sub in properties(rule_schema()) if not sub.get("description")]
    assert missing == []


def test_schema_durations_are_strings_with_a_unit_pattern() -> None:
    rule = rule_schema()["$defs"]["SeriesRule"]["properties"]["for"]
    alternatives = rule.get("anyOf", [rule])
    assert {"type": "string", "pattern": PATTERN} in alternatives
    assert "anyOf" not in str(rule_schema()["$defs"]["NoData"]["properties"]["after"])


def test_schema_has_no_internal_fields() -> None:
    names = {path.rsplit(".", 1)[-1] for path, _ in properties(rule_schema())}
    assert "kind" not in names
    assert not any(name.startswith("_") for name in names)
