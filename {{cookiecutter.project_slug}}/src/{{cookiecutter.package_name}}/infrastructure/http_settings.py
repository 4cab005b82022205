"""Read the variables for browser clients and hosts: comma-separated lists, checked one by one."""

import ipaddress
import re
from typing import Annotated, Final
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import NoDecode

ANY_ORIGIN: Final = "*"
# Far above any JSON document the example domain takes; an upload service raises it.
DEFAULT_MAX_REQUEST_BODY_BYTES: Final = 1024 * 1024

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_HOST_LABEL: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _comma_separated(value: object) -> object:
    # Origins and host names hold no commas, and one line fits an env file or a manifest.
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        raise ValueError("write a comma-separated list (a,b), not JSON")
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _origin(origin: str) -> str:
    # Written the way browsers send Origin, since CORS compares the two as strings.
    example = "write scheme://host[:port] with no path, e.g. https://app.example.com"
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        raise ValueError(f"{origin!r} is not an origin; {example}") from None
    if (
        parts.scheme.lower() not in _DEFAULT_PORTS
        or not parts.hostname
        or "@" in parts.netloc
        or "*" in parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
        or origin.endswith(("?", "#"))
    ):
        raise ValueError(f"{origin!r} is not an origin; {example}")
    scheme = parts.scheme.lower()
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _origins(origins: tuple[str, ...]) -> tuple[str, ...]:
    if ANY_ORIGIN in origins:
        if len(origins) > 1:
            raise ValueError("'*' already allows every origin; give '*' alone or only origins")
        return origins
    return tuple(_origin(origin) for origin in origins)


def _host_pattern(host: str) -> str:
    name = host.lower().removesuffix(".")
    if name == "*":
        raise ValueError("leave TRUSTED_HOSTS empty to accept any host, rather than '*'")
    try:
        return str(ipaddress.ip_address(name.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    labels = name.removeprefix("*.").split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{host!r} is not a host name; give names like api.example.com or *.example.com, "
            "without scheme or port"
        )
    return name


def _host_patterns(hosts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_host_pattern(host) for host in hosts)


# Read from one comma-separated line; pydantic-settings would otherwise expect JSON.
Origins = Annotated[
    tuple[str, ...], NoDecode, BeforeValidator(_comma_separated), AfterValidator(_origins)
]
HostPatterns = Annotated[
    tuple[str, ...], NoDecode, BeforeValidator(_comma_separated), AfterValidator(_host_patterns)
]
