"""Base classes: strict request models and tolerant response models."""

import difflib
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator


def closest_names(name: str, choices: list[str], limit: int = 3) -> list[str]:
    """Return up to `limit` of `choices` that look like `name`, closest first."""
    lowered = {choice.lower(): choice for choice in choices}
    matches = difflib.get_close_matches(
        name.lower(), list(lowered), n=limit, cutoff=0.5
    )
    return [lowered[match] for match in matches]


class RequestModel(BaseModel):
    """A body or query sent to the API: unknown keys are rejected by name."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        use_enum_values=False,
        str_strip_whitespace=False,
    )

    # Extra spellings accepted on input, beyond each field's own name.
    accepted_aliases: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def accepted_keys(cls) -> list[str]:
        """Return the keys this model accepts, in declaration order."""
        keys = []
        for name, field in cls.model_fields.items():
            keys.append(field.alias or name)
        return keys

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        accepted = cls.accepted_keys()
        known = set(accepted) | set(cls.model_fields) | cls.accepted_aliases
        unknown = [key for key in data if key not in known]
        if not unknown:
            return data
        key = unknown[0]
        hint = closest_names(str(key), accepted)
        message = f"unknown key {key!r}; accepted keys: {', '.join(accepted)}"
        if hint:
            message += f"; did you mean {hint[0]!r}?"
        raise ValueError(message)


class ResponseModel(BaseModel):
    """A body returned by the API: fields the server adds are kept, not rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
