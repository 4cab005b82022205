"""Turn the settings' validation errors into one line per variable, never showing a secret."""

from collections.abc import Collection
from typing import Any, Final

from pydantic import ValidationError

# Variables whose values never appear in an error message; nor does any
# DATABASES__<NAME>__URL.
_SECRETS: Final = frozenset({"DATABASE_URL", "HEALTH_POOL_TOKEN", "SENTRY_DSN"})


class SettingsError(Exception):
    """The environment holds values the service cannot start with; one line per value."""


def settings_error(error: ValidationError, extra_settings: Collection[str]) -> SettingsError:
    """Describe each problem in one line; `extra_settings` are an extra database's settings."""
    return SettingsError(
        "\n".join(_describe(problem, extra_settings) for problem in error.errors())
    )


def _describe(problem: Any, extra_settings: Collection[str]) -> str:
    message = str(problem["msg"]).removeprefix("Value error, ")
    location = [str(part) for part in problem["loc"]]
    if not location:
        return message
    # ("databases", "replica", "pool_size") was DATABASES__REPLICA__POOL_SIZE.
    variable = "__".join(part for part in location if part != "[key]").upper()
    if location[0] == "databases":
        return _describe_extra_database(
            problem["type"], location, variable, message, problem, extra_settings
        )
    if variable in _SECRETS or not isinstance(problem["input"], str | int | float):
        return f"{variable}: {message}"
    return f"{variable}={problem['input']!r}: {message}"


def _describe_extra_database(
    kind: str,
    location: list[str],
    variable: str,
    message: str,
    problem: Any,
    settings: Collection[str],
) -> str:
    if location[-1] == "[key]":
        return f"{variable}__*: {message}"
    if len(location) == 2:
        return f"{variable}: not a setting; use {variable}__URL and the pool variables"
    if kind == "missing":
        return f"{variable}: required once any other {variable[: -len('URL')]}* variable is set"
    if kind == "extra_forbidden":
        expected = ", ".join(name.upper() for name in settings)
        message = f"not a setting of an extra database; expected one of {expected}"
    # Only the known settings other than the URL are safe to show: a
    # misspelt URL variable holds a password too.
    if location[2] == "url" or location[2] not in settings:
        return f"{variable}: {message}"
    return f"{variable}={problem['input']!r}: {message}"
