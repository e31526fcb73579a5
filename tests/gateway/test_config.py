from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.gateway.conftest import make_settings


@pytest.mark.parametrize(("given", "expected"), [("warn", "WARNING"), ("Warning", "WARNING"),
                                                  ("debug", "DEBUG"), (" error ", "ERROR")])
def test_log_level_is_normalised_to_what_uvicorn_and_logging_accept(given: str, expected: str) -> None:
    assert make_settings(log_level=given).log_level == expected


def test_unknown_log_level_is_refused_with_the_choices() -> None:
    with pytest.raises(ValidationError, match="LOG_LEVEL must be one of DEBUG, INFO, WARNING"):
        make_settings(log_level="verbose")
