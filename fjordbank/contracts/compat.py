"""Is a new schema of a contract still the same version? The compatibility rules.

A stream holds events for days, and producers and consumers are deployed one at a time,
so within a version both must hold:

* a consumer of the old schema reads events of the new one: every field it requires is
  still there with its type, and any added field is one it may ignore (its schema is open
  to unknown fields);
* a consumer of the new schema reads the events of the old one still in the stream: an
  added field is optional (it has a default), and no field it knows changed type.

Adding an optional field is such a change (additive). Removing or renaming a required
field, removing any field from a schema closed to unknown fields, making an optional
field required, changing a field's type or values, or adding a required one is not: it
needs the next version of the contract. A consumer reads one version of a contract, and
gives a message of another back for a while instead of dead-lettering it
(fjordbank.runtime.events): during the rollout both releases' consumers run, each taking
its own version, until the stream holds none of the last one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any]
SHAPE_KEYWORDS = ("type", "enum", "const", "additionalProperties", "anyOf", "items")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Why ``new`` cannot be the same version as ``old`` (each a reason naming its field);
    empty when it is a compatible (additive) change."""
    return _object_changes(old, new, "")


def needs_new_version(old: Schema, new: Schema) -> bool:
    return bool(breaking_changes(old, new))


def _object_changes(old: Schema, new: Schema, prefix: str) -> list[str]:
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    problems = [
        *_removed_or_changed(old, new, prefix),
        *_added(old, new, prefix),
    ]
    for name in sorted(set(old_props) & set(new_props)):
        problems += _value_changes(old_props[name], new_props[name], f"{prefix}{name}")
    if _open(old) and not _open(new):
        problems.append(f"{prefix or 'the event'}: now refuses unknown fields, which older events may have")
    return problems


def _removed_or_changed(old: Schema, new: Schema, prefix: str) -> list[str]:
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    problems = []
    for name in sorted(old_required):
        if name not in new_props:
            problems.append(f"{prefix}{name}: removed or renamed, but consumers of the old schema require it")
        elif name not in new_required:
            problems.append(f"{prefix}{name}: no longer required, but consumers of the old schema require it")
    for name in sorted(set(old_props) - old_required - set(new_props)):
        if not _open(new):
            # older events carry it (an optional field is written as null): a consumer of
            # the new schema, which refuses fields it does not know, would refuse them all
            # (found in review, 2026-12-07: payment.payee_name removed passed the check)
            problems.append(f"{prefix}{name}: removed, but the new schema refuses fields it does not know")
    for name in sorted(new_required & set(old_props) - old_required):
        problems.append(f"{prefix}{name}: now required, but older events may not have it")
    return problems


def _added(old: Schema, new: Schema, prefix: str) -> list[str]:
    new_required = set(new.get("required", []))
    old_props = old.get("properties", {})
    problems = []
    for name in sorted(set(new.get("properties", {})) - set(old_props)):
        if not _open(old):
            problems.append(f"{prefix}{name}: added, but consumers of the old schema refuse fields they do not know")
        if name in new_required:
            problems.append(f"{prefix}{name}: added as required, but older events do not have it (give it a default)")
    return problems


def _value_changes(old: Schema, new: Schema, where: str) -> list[str]:
    before, after = _shape(old), _shape(new)
    if "properties" in old and "properties" in new:
        retyped = before.get("type") != after.get("type")
        changed = [f"{where}: changed from {before.get('type')} to {after.get('type')}"] if retyped else []
        return changed + _object_changes(old, new, f"{where}.")
    if before != after:
        return [f"{where}: changed from {before} to {after}"]
    return []


def _shape(schema: Schema) -> dict[str, Any]:
    """What values a schema takes (its descriptions aside), in a comparable form."""
    shape: dict[str, Any] = {}
    for keyword in SHAPE_KEYWORDS:
        if keyword not in schema:
            continue
        value = schema[keyword]
        if keyword == "type":
            value = sorted([value] if isinstance(value, str) else value)
        elif keyword == "enum":
            value = sorted(value, key=repr)
        elif keyword == "additionalProperties" and isinstance(value, Mapping):
            value = _shape(value)
        shape[keyword] = value
    return shape


def _open(schema: Schema) -> bool:
    """Does a consumer of this object schema take fields it does not know?"""
    return schema.get("additionalProperties", True) is not False
