"""The OpenAPI page documents every route: what it does, and an example of every body."""

from collections.abc import Iterator
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.infrastructure.config import load_settings
from {{ cookiecutter.package_name }}.main import create_app
from tests.conftest import in_process_client

METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    """The service's OpenAPI document, as /openapi.json serves it."""
    return create_app(load_settings(_env_file=None)).openapi()


def operations(openapi: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every operation, named like `POST /items`."""
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def resolve(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a `$ref` to the schema it names."""
    while "$ref" in schema:
        *_, name = schema["$ref"].split("/")
        schema = openapi["components"]["schemas"][name]
    return schema


def has_example(openapi: dict[str, Any], media: dict[str, Any]) -> bool:
    """Whether a body shows an example, on itself or on its schema (or its items' schema)."""
    if "example" in media or "examples" in media:
        return True
    schema = resolve(openapi, media.get("schema", {}))
    if schema.get("type") == "array":
        schema = resolve(openapi, schema.get("items", {}))
    return bool(schema.get("examples")) or "example" in schema


def bodies(operation: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The request body and every response body of an operation, by name."""
    for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
        yield f"request {media_type}", media
    for code, response in operation["responses"].items():
        for media_type, media in response.get("content", {}).items():
            yield f"{code} {media_type}", media


def test_there_are_routes_to_check(openapi: dict[str, Any]) -> None:
    # The service's own routes, whatever domains it has.
    names = [name for name, _ in operations(openapi)]
    assert {"GET /health/live", "GET /health/ready"} <= set(names)


def test_every_route_says_what_it_does_in_one_line(openapi: dict[str, Any]) -> None:
    for name, operation in operations(openapi):
        assert operation.get("summary"), f"{name} has no summary"
        description = operation.get("description", "").strip()
        assert description, f"{name} has no description: give its function a docstring"
        assert "\n" not in description, f"{name}: the description is more than one line"


def test_every_body_has_an_example(openapi: dict[str, Any]) -> None:
    missing = [
        f"{name}: {body}"
        for name, operation in operations(openapi)
        for body, media in bodies(operation)
        if not has_example(openapi, media)
    ]
    assert missing == []


def test_every_422_is_documented_as_the_service_answers_it(openapi: dict[str, Any]) -> None:
    # FastAPI documents its own 422 body, which echoes the input; errors.py never does.
    for name, operation in operations(openapi):
        if "422" not in operation["responses"]:
            continue
        media = operation["responses"]["422"]["content"]["application/json"]
        problem = resolve(openapi, resolve(openapi, media["schema"])["properties"]["detail"])
        assert "input" not in resolve(openapi, problem["items"])["properties"], name


def test_every_write_documents_the_answers_to_a_broken_constraint() -> None:
    app = create_app(load_settings(_env_file=None))

    async def undocumented() -> None:
        """Write without documenting any error."""

    app.add_api_route("/test/undocumented", undocumented, methods=["POST"])
    writes = 0
    for name, operation in operations(app.openapi()):
        if name.split()[0] not in {"POST", "PUT", "PATCH", "DELETE"}:
            continue
        writes += 1
        responses = operation["responses"]
        assert "409" in responses, f"{name}: no 409 for a unique or foreign-key violation"
        assert "422" in responses, f"{name}: no 422 for a missing referent or a broken check"
    assert writes >= 1


async def test_the_docs_page_is_served() -> None:
    app = create_app(load_settings(_env_file=None))
    async with in_process_client(app) as client:
        page = await client.get("/docs")
        document = await client.get("/openapi.json")
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    assert document.status_code == 200
    assert document.json()["info"]["title"] == "{{ cookiecutter.project_name }}"


def test_every_operation_documents_the_request_id_header(openapi: dict[str, Any]) -> None:
    for name, operation in operations(openapi):
        parameters = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        assert [p["name"] for p in parameters].count("X-Request-ID") == 1, name
        for code, response in operation["responses"].items():
            assert "X-Request-ID" in response.get("headers", {}), f"{name} {code}"


async def test_the_request_id_header_is_documented_without_a_constraint_it_does_not_enforce() -> (
    None
):
    app = create_app(load_settings(_env_file=None))
    schema = app.openapi()
    (parameter,) = [
        p
        for p in schema["paths"]["/health/live"]["get"]["parameters"]
        if p["name"] == "X-Request-ID"
    ]
    # Every value is accepted; an unsafe one is replaced, as the description says.
    assert parameter["schema"] == {"type": "string"}
    async with in_process_client(app) as client:
        sent_and_kept = [("trace-42", True), ("x" * 128, True), ("a b", False), ("x" * 129, False)]
        for sent, kept in sent_and_kept:
            answer = await client.get("/health/live", headers={"X-Request-ID": sent})
            assert answer.status_code == 200
            assert (answer.headers["X-Request-ID"] == sent) == kept, sent
    # Built once: a second call gives the same document, the header not added twice.
    assert app.openapi() is schema
