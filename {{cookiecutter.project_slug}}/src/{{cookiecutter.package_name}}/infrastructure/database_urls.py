"""Which database URLs the service accepts: PostgreSQL through asyncpg, safe outside dev."""

from typing import Final

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

_DRIVERS: Final = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_PLACEHOLDER_PASSWORDS: Final = frozenset(
    {"", "postgres", "password", "changeme", "change-me", "secret", "admin", "example"}
)
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_TLS_MODES: Final = frozenset({"require", "verify-ca", "verify-full"})


def postgresql_url(raw: str, *, sqlite_message: str) -> str:
    """Return `raw` with the asyncpg driver, or refuse it in a message that never shows it."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(
            "not a database URL; expected postgresql+asyncpg://user:password@host:5432/name"
        ) from None
    if url.drivername.startswith("sqlite"):
        raise ValueError(sqlite_message)
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(
            f"driver {url.drivername!r} is not supported; use postgresql+asyncpg:// "
            "(postgresql:// is accepted and switched to asyncpg)"
        )
    return url.set(drivername=driver).render_as_string(hide_password=False)


def unsafe_url_problems(url: URL, variable: str) -> list[tuple[str, str]]:
    """What makes `url` unsafe outside dev, each with what to do about it.

    A placeholder password, or a remote server reached without TLS.
    """
    problems = []
    if (url.password or "") in _PLACEHOLDER_PASSWORDS:
        problems.append(
            (
                f"{variable} has an empty or placeholder password",
                "use a real secret (or DATABASE_ALLOW_INSECURE=true for a local trial)",
            )
        )
    if not _is_local(url) and not _uses_tls(url):
        problems.append(
            (
                f"{variable} reaches {url.host} without TLS",
                "add ?ssl=require (or DATABASE_ALLOW_INSECURE=true on a private network)",
            )
        )
    return problems


def server_of(url: str) -> tuple[str | None, int]:
    """The host and port a URL reaches: pools there share its max_connections."""
    parsed = make_url(url)
    return parsed.host, parsed.port or 5432


def _is_local(url: URL) -> bool:
    return url.host is None or url.host in _LOCAL_HOSTS or url.host.startswith("/")


def _uses_tls(url: URL) -> bool:
    return any(url.query.get(key) in _TLS_MODES for key in ("ssl", "sslmode"))
