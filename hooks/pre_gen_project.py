"""Reject answers that would generate a broken project, before anything is written."""

import keyword
import re
import sys

PROJECT_SLUG = "{{ cookiecutter.project_slug }}"
PACKAGE_NAME = "{{ cookiecutter.package_name }}"
AUTHOR_EMAIL = "{{ cookiecutter.author_email }}"
# Free text, rendered as JSON strings so that any quote in it still makes valid Python here.
FREE_TEXT = {
    "project_name": {{ cookiecutter.project_name | tojson }},
    "description": {{ cookiecutter.description | tojson }},
    "author_name": {{ cookiecutter.author_name | tojson }},
}

# Longer names would push generated lines past the formatter's line length.
MAX_PACKAGE_NAME = 30
MAX_PROJECT_SLUG = 40

# Import names the generated project depends on, plus names that pytest or
# the project layout would confuse with the package.
TAKEN_NAMES = {
    "aiosqlite",
    "alembic",
    "asyncpg",
    "fastapi",
    "httpx",
    "migrations",
    "pydantic",
    "pydantic_settings",
    "pytest",
    "sqlalchemy",
    "starlette",
    "test",
    "tests",
    "uvicorn",
}


def problem() -> str | None:
    """Return what is wrong with the answers, or None when they are usable."""
    suggestion = re.sub(r"[^a-z0-9_]", "_", PACKAGE_NAME.lower()).strip("_") or "service"
    if not suggestion[0].isalpha():
        suggestion = f"service_{suggestion}"
    if not PACKAGE_NAME.isidentifier() or not PACKAGE_NAME.isascii():
        return f"package_name {PACKAGE_NAME!r} is not a Python identifier; use letters, digits and underscores, e.g. package_name={suggestion}"
    if keyword.iskeyword(PACKAGE_NAME) or keyword.issoftkeyword(PACKAGE_NAME):
        return f"package_name {PACKAGE_NAME!r} is a Python keyword; choose another, e.g. package_name={PACKAGE_NAME}_service"
    if PACKAGE_NAME in TAKEN_NAMES or PACKAGE_NAME in sys.stdlib_module_names:
        return f"package_name {PACKAGE_NAME!r} would shadow the module of that name; choose another, e.g. package_name={PACKAGE_NAME}_service"
    if len(PACKAGE_NAME) > MAX_PACKAGE_NAME:
        return f"package_name {PACKAGE_NAME!r} is longer than {MAX_PACKAGE_NAME} characters; it starts every import, so pick a short one, e.g. package_name={PACKAGE_NAME[:MAX_PACKAGE_NAME].rstrip('_')}"
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", PROJECT_SLUG):
        return f"project_slug {PROJECT_SLUG!r} must be lowercase words joined by single dashes, e.g. project_slug=orders-service"
    if len(PROJECT_SLUG) > MAX_PROJECT_SLUG:
        return f"project_slug {PROJECT_SLUG!r} is longer than {MAX_PROJECT_SLUG} characters; pick a shorter one, e.g. project_slug={PROJECT_SLUG[:MAX_PROJECT_SLUG].rstrip('-')}"
    for answer, value in FREE_TEXT.items():
        # The generated code puts these inside double-quoted Python and TOML strings.
        if '"' in value or "\\" in value:
            fixed = value.replace('"', "'").replace("\\", "/")
            return f'{answer} {value!r} holds a double quote or a backslash, which would break the generated Python and TOML strings; use single quotes, e.g. {answer}="{fixed}"'
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s.]+", AUTHOR_EMAIL):
        return f"author_email {AUTHOR_EMAIL!r} does not look like an e-mail address, e.g. author_email=team@example.com"
    return None


if (message := problem()) is not None:
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(1)
