"""The approval card's edit form: the fields of an action's own argument schema, and a
posted form back into arguments (the no-JavaScript page; ``app.js`` builds the same
arguments as JSON). Validation stays with the schema (:mod:`workspace.actions`)."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from workspace.actions import SPECS

FIELD_PREFIX = "arg_"
LONG_FIELDS = frozenset({"body", "description", "notes", "note"})


def _kind(annotation: Any, name: str) -> str:
    text = str(annotation)
    if annotation is bool or text == "bool":
        return "checkbox"
    if annotation is int or text == "int":
        return "number"
    if "list" in text:
        return "list"
    if "Literal" in text:
        return "choice"
    return "textarea" if name in LONG_FIELDS else "text"


def form_fields(card: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{"name", "label", "kind", "value", "choices"}]`` for the card's edit form,
    pre-filled with the arguments it was planned from."""
    spec = SPECS.get(str(card.get("action", "")))
    if spec is None:
        return []
    values = card.get("args") or {}
    fields = []
    for name, info in spec.args.model_fields.items():
        kind = _kind(info.annotation, name)
        value = values.get(name)
        if kind == "list":
            value = ", ".join(value or [])
        choices = list(getattr(info.annotation, "__args__", ())) if kind == "choice" else []
        fields.append({"name": name, "label": name.replace("_", " ").capitalize(),
                       "kind": kind, "value": "" if value is None else value,
                       "choices": choices, "input": FIELD_PREFIX + name,
                       "optional": info.default is None and not info.is_required()})  # fmt: skip
    return fields


def edit_from_form(form: QueryDict) -> dict[str, Any]:
    """The ``arg_<name>`` fields of a posted card as arguments (lists split on commas,
    an unticked checkbox is False; the schema then validates them)."""
    interrupt_action = form.get("action", "")
    spec = SPECS.get(interrupt_action)
    args: dict[str, Any] = {}
    names = spec.args.model_fields if spec is not None else {}
    for name, info in names.items():
        kind = _kind(info.annotation, name)
        raw = form.get(FIELD_PREFIX + name)
        if kind == "checkbox":
            args[name] = raw is not None and raw not in ("", "0", "false", "off")
        elif raw is None or (raw == "" and info.default is None):
            continue  # not on the form, or an optional field left empty: unchanged
        elif kind == "list":
            args[name] = [part.strip() for part in raw.split(",") if part.strip()]
        else:
            args[name] = raw
    return args
