"""The base of the models the meta tools return: frozen, strict, and with JSON Schemas a model reads cheaply
(no ``title`` on every property: the property name says it; no class docstrings)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_conductor.schemas import DETAIL


def _lean(schema: dict[str, Any]) -> None:
    schema.pop("title", None)
    schema.pop("description", None)  # the class docstring: for developers, not for the model
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)


def detail(default: Any = None) -> Any:
    """A result field shown only on request: compact answers and the published output schema leave it out."""
    return Field(default, json_schema_extra={DETAIL: True})


class OutModel(BaseModel):
    """A result model: frozen, no extra fields, titles left out of its JSON Schema."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_lean)
