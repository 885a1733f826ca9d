"""The 422 body of the API's validation errors."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from cryptomon.api.errors import validation_error


class _Body(BaseModel):
    comment: str = Field(max_length=500)


def test_a_long_refused_value_is_shortened_in_the_answer() -> None:
    """A 50,000-character ``comment`` refused for its length came back whole in the 422's
    ``details.fields[].value`` (and a 5,000-character query parameter too): the answer now
    shows its start and its length, enough to recognise it."""
    with pytest.raises(ValidationError) as exc:
        _Body.model_validate({"comment": "a" * 50_000})
    [field] = validation_error(exc.value, "body").details["fields"]  # type: ignore[index]
    assert field["field"] == "body.comment"
    assert field["value"] == "a" * 100 + "... (50000 characters)"


def test_a_short_refused_value_is_shown_as_sent() -> None:
    with pytest.raises(ValidationError) as exc:
        _Body.model_validate({"comment": 5})
    [field] = validation_error(exc.value, "body").details["fields"]  # type: ignore[index]
    assert field["value"] == 5
