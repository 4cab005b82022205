"""CORS_ALLOW_ORIGINS, TRUSTED_HOSTS, MAX_REQUEST_BODY_BYTES: one line to write, one to fix."""

import pytest

from {{ cookiecutter.package_name }}.infrastructure.config import load_settings
from {{ cookiecutter.package_name }}.infrastructure.settings_errors import SettingsError


def test_by_default_no_origin_any_host_and_a_mebibyte() -> None:
    settings = load_settings(_env_file=None)
    assert settings.cors_allow_origins == ()
    assert settings.cors_allow_credentials is False
    assert settings.trusted_hosts == ()
    assert settings.max_request_body_bytes == 1024 * 1024


def test_origins_are_a_comma_separated_list_written_as_browsers_send_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "CORS_ALLOW_ORIGINS",
        "https://App.Example.com, http://localhost:5173,https://a.example:443,,http://[::1]:8080",
    )
    assert load_settings(_env_file=None).cors_allow_origins == (
        "https://app.example.com",
        "http://localhost:5173",
        "https://a.example",
        "http://[::1]:8080",
    )


def test_hosts_are_a_comma_separated_list_of_names_patterns_and_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRUSTED_HOSTS", "API.example.com,*.example.net, 10.0.0.7,[::1],a.example.")
    assert load_settings(_env_file=None).trusted_hosts == (
        "api.example.com",
        "*.example.net",
        "10.0.0.7",
        "::1",
        "a.example",
    )


def test_credentials_from_any_origin_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "*")
    monkeypatch.setenv("CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None)
    message = str(failure.value)
    assert "\n" not in message
    assert "CORS_ALLOW_ORIGINS=* with CORS_ALLOW_CREDENTIALS=true" in message


def test_any_origin_without_credentials_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "*")
    assert load_settings(_env_file=None).cors_allow_origins == ("*",)
