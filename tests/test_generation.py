"""Bake every supported option set and hold the result to the generated project's own gates."""

import filecmp
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException

from tests.baking import (
    GENERATED_SUITE,
    TEMPLATE_DIR,
    Bake,
    assert_ran_on,
    bake_into,
    environment_without_virtualenv,
    install_on_pinned_python,
    offered_python_versions,
    run,
    tool,
)

# The option sets the template supports, by name. Every one is baked, rendered
# completely, and passes ruff and mypy --strict as generated.
SUPPORTED: dict[str, dict[str, Any]] = {
    "default": {},
    "py314-minimal": {"python_version": "3.14", "use_docker": False, "use_github_actions": False},
    "py311-apache": {"python_version": "3.11", "license": "Apache-2.0", "use_docker": False},
    "py313-bsd-prometheus": {
        "python_version": "3.13",
        "license": "BSD-3-Clause",
        "use_github_actions": False,
        "use_prometheus": True,
        "use_opentelemetry": True,
        "use_sentry": True,
    },
    "longest-names-proprietary": {
        "project_name": "Northwind Inventory Reconciliation",
        "project_slug": "northwind-inventory-reconciliation-svc-1",
        "package_name": "northwind_inventory_reconciler",
        "license": "Proprietary",
        "use_prometheus": True,
    },
    "shortest-names": {"project_name": "Ox", "use_docker": False, "use_sentry": True},
    "own-package-name": {
        "project_name": "Billing",
        "package_name": "billing_core",
        "use_opentelemetry": True,
    },
}

# The generated test suite runs against PostgreSQL for these, each on the Python
# its answer names: together they cover every offered version.
RUN_GENERATED_TESTS = ["default", "py313-bsd-prometheus", "py311-apache", "py314-minimal"]

UNRENDERED = re.compile(r"\{\{|\{%|%\}|cookiecutter\.(?!json\b)")


def files_of(project: Path) -> list[Path]:
    """Every file of a baked project, sorted."""
    return sorted(path for path in project.rglob("*") if path.is_file())


@pytest.fixture(params=list(SUPPORTED), scope="module")
def baked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project per supported option set, shared by the checks below."""
    return bake_into(tmp_path_factory.mktemp(request.param), **SUPPORTED[request.param])


def test_everything_is_rendered(baked: Path) -> None:
    leftovers = [
        f"{path.relative_to(baked)}:{number}: {line.strip()}"
        for path in files_of(baked)
        if path.suffix != ".mako"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if UNRENDERED.search(line) and "${{" not in line
    ]
    assert leftovers == []
    assert not any("{{" in str(path) or "{%" in str(path) for path in baked.rglob("*"))


def test_no_leftover_blank_lines_from_templating(baked: Path) -> None:
    for path in files_of(baked):
        text = path.read_text()
        if not text:
            continue  # empty package markers
        assert not text.startswith("\n"), f"{path} starts with a blank line"
        assert text.endswith("\n") and not text.endswith("\n\n"), f"{path} ending"
        if path.suffix in {".py", ".toml", ".yaml", ".yml", ".md", ".ini"}:
            assert "\n\n\n\n" not in text, f"{path} has a run of blank lines"


def test_ruff_is_clean(baked: Path) -> None:
    run([tool("ruff"), "check", "--no-cache", "."], cwd=baked)
    run([tool("ruff"), "format", "--check", "--no-cache", "."], cwd=baked)


def test_template_code_passes_the_rule_families_teams_switch_on(baked: Path) -> None:
    # A team that extends ruff.toml with these must not have to edit a template file.
    run([tool("ruff"), "check", "--no-cache", "--extend-select", "C4,DTZ,PERF", "."], cwd=baked)


@pytest.mark.slow
def test_the_project_installs(baked: Path) -> None:
    install_on_pinned_python(baked, "--no-dev")
    run([str(baked / ".venv" / "bin" / "python"), "-c", "import " + package_of(baked)], cwd=baked)


def package_of(project: Path) -> str:
    """The import name of a baked project's package."""
    (package,) = (project / "src").iterdir()
    return package.name


def test_mypy_strict_is_clean(baked: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # Shared cache: the third-party packages are checked once, not per option set.
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"
    result = run([tool("mypy"), "--strict", "--cache-dir", str(cache)], cwd=baked)
    assert "Success: no issues found" in result.stdout


def test_import_contracts_hold(baked: Path) -> None:
    # Every option set: the contracts name no module that only some of them have.
    environment = {**os.environ, "PYTHONPATH": str(baked / "src")}
    result = run([tool("lint-imports"), "--no-logo", "--no-cache"], cwd=baked, env=environment)
    assert "0 broken" in result.stdout


def test_every_module_is_short(baked: Path) -> None:
    # One job per module: a module past this has taken on a second one.
    lengths = {
        str(path.relative_to(baked)): len(path.read_text().splitlines())
        for path in (baked / "src").rglob("*.py")
    }
    assert {path: length for path, length in lengths.items() if length > 350} == {}


OPTIONAL_MODULES = {
    "use_prometheus": ["metrics", "worker_metrics"],
    "use_opentelemetry": ["telemetry"],
    "use_sentry": ["error_tracking"],
}
OPTIONAL_DEPENDENCIES = {
    "use_prometheus": ["prometheus-client"],
    "use_opentelemetry": ["opentelemetry-sdk", "opentelemetry-instrumentation-sqlalchemy"],
    "use_sentry": ["sentry-sdk"],
}


def test_files_follow_the_chosen_options(bake: Bake) -> None:
    everything = bake(
        use_docker=True,
        use_github_actions=True,
        **dict.fromkeys(OPTIONAL_MODULES, True),
    )
    assert (everything / "Dockerfile").is_file()
    assert (everything / ".github" / "workflows" / "ci.yml").is_file()
    main = (everything / "src" / "orders_service" / "main.py").read_text()
    pyproject = (everything / "pyproject.toml").read_text()
    for option, modules in OPTIONAL_MODULES.items():
        for module in modules:
            assert (everything / "src" / "orders_service" / f"{module}.py").is_file(), option
            assert (everything / "tests" / f"test_{module}.py").is_file(), option
        assert f"orders_service.{modules[0]} import" in main, option
        for dependency in OPTIONAL_DEPENDENCIES[option]:
            assert f'"{dependency}>=' in pyproject, dependency


def test_unchosen_options_leave_no_files(bake: Bake) -> None:
    project = bake(use_docker=False, use_github_actions=False)
    names = {path.relative_to(project).as_posix() for path in files_of(project)}
    assert not {"Dockerfile", ".dockerignore", "compose.yaml"} & names
    assert not any(name.startswith(".github/") for name in names)
    assert not (project / ".github").exists()
    pyproject = (project / "pyproject.toml").read_text()
    main = (project / "src" / "orders_service" / "main.py").read_text()
    for option, modules in OPTIONAL_MODULES.items():
        for module in modules:
            assert f"src/orders_service/{module}.py" not in names, option
            assert f"tests/test_{module}.py" not in names, option
            assert module not in main, option
        for dependency in OPTIONAL_DEPENDENCIES[option]:
            assert dependency not in pyproject, dependency
    config = project / "src" / "orders_service" / "infrastructure" / "config.py"
    assert "sentry" not in config.read_text()


def test_the_project_has_its_layout(bake: Bake) -> None:
    project = bake(project_name="Orders Service")
    package = project / "src" / "orders_service"
    for relative in [
        "pyproject.toml",
        "README.md",
        "docs/README.md",
        "LICENSE",
        ".env.example",
        ".gitignore",
        ".pre-commit-config.yaml",
        "Makefile",
        "alembic.ini",
        "migrations/env.py",
        "tests/conftest.py",
        "tests/probe.py",
    ]:
        assert (project / relative).is_file(), relative
    for module in [
        "main",
        "domains",
        "settings",
        "health",
        "cli",
        "logs",
        "access_log",
        "dependencies",
        "responses",
        "errors",
        "commands/db",
        "commands/status",
        "infrastructure/capacity",
        "infrastructure/config",
        "infrastructure/database",
        "infrastructure/migrations",
        "infrastructure/orm",
    ]:
        assert (package / f"{module}.py").is_file(), module
    for module in ["router", "schemas", "models", "service"]:
        assert (package / "items" / f"{module}.py").is_file(), module
    migrations = [path.name for path in (project / "migrations" / "versions").glob("*.py")]
    assert migrations
    assert all(re.fullmatch(r"\d{4}_\d{2}_\d{2}_\d{4}-\w+\.py", name) for name in migrations)


def test_no_template_owned_file_imports_the_example(bake: Bake) -> None:
    project = bake()
    # The team's paths: what updates never touch may name the example.
    skip = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["cruft"]["skip"]
    importing = re.compile(r"^\s*(from|import)\s+[\w.]*\bitems\b", re.MULTILINE)
    checked = 0
    for path in project.rglob("*.py"):
        relative = path.relative_to(project).as_posix()
        if any(relative == owned or relative.startswith(f"{owned}/") for owned in skip):
            continue
        checked += 1
        assert not importing.search(path.read_text()), relative
    assert checked > 30


def test_baking_twice_gives_identical_bytes(tmp_path: Path) -> None:
    first = bake_into(tmp_path / "first", project_name="Twice")
    second = bake_into(tmp_path / "second", project_name="Twice")
    relative = [path.relative_to(first) for path in files_of(first)]
    assert relative == [path.relative_to(second) for path in files_of(second)]
    _, mismatch, errors = filecmp.cmpfiles(first, second, relative, shallow=False)
    assert mismatch == [] and errors == []


def test_answers_work_on_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'cc'}\nreplay_dir: {tmp_path / 'replay'}\n")
    run(
        [
            tool("cookiecutter"),
            "--no-input",
            "--config-file",
            str(config),
            "--output-dir",
            str(tmp_path),
            str(TEMPLATE_DIR),
            "project_name=Stock Keeper",
            "author_email=stock@example.org",
            "python_version=3.13",
            "license=BSD-3-Clause",
            "use_docker=false",
            "use_github_actions=no",
        ],
        cwd=tmp_path,
    )
    project = tmp_path / "stock-keeper"
    assert (project / "src" / "stock_keeper" / "main.py").is_file()
    assert not (project / "Dockerfile").exists()
    assert not (project / ".github").exists()
    pyproject = (project / "pyproject.toml").read_text()
    assert 'target-version = "py313"' in pyproject
    assert (project / ".python-version").read_text() == "3.13\n"
    assert "stock@example.org" in pyproject
    assert "Redistribution and use in source and binary forms" in (project / "LICENSE").read_text()


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"package_name": "class"}, "package_name 'class' is a Python keyword"),
        ({"package_name": "match"}, "package_name 'match' is a Python keyword"),
        ({"package_name": "2fast"}, "package_name '2fast' is not a Python identifier"),
        ({"package_name": "orders-service"}, "not a Python identifier; use letters"),
        ({"package_name": "fastapi"}, "package_name 'fastapi' would shadow"),
        ({"package_name": "sqlalchemy"}, "package_name 'sqlalchemy' would shadow"),
        ({"package_name": "test"}, "package_name 'test' would shadow"),
        ({"package_name": "site"}, "package_name 'site' would shadow"),
        ({"package_name": "json"}, "package_name 'json' would shadow"),
        ({"project_slug": "Orders_Service"}, "project_slug 'Orders_Service' must be lowercase"),
        ({"project_slug": "orders--service"}, "project_slug 'orders--service' must be lowercase"),
        ({"author_email": "not-an-email"}, "author_email 'not-an-email' does not look like"),
        ({"author_email": "a@b"}, "author_email 'a@b' does not look like"),
        ({"project_name": "Northwind Inventory Reconciliation"}, "longer than 30 characters"),
        ({"project_slug": "a-" * 25 + "b", "package_name": "ab"}, "longer than 40 characters"),
        ({"description": 'The-"best"-API'}, "description 'The-\"best\"-API' holds a double quote"),
        ({"project_name": "Back\\slash"}, 'e.g. project_name="Back/slash"'),
        ({"author_name": 'Ann-"Ops"'}, "author_name 'Ann-\"Ops\"' holds a double quote"),
    ],
)
def test_bad_answers_are_refused_in_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, Any], message: str
) -> None:
    with pytest.raises(FailedHookException):
        bake_into(tmp_path / "out", **answers)
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1
    assert message in errors[0]
    assert re.search(r"\b[a-z_]+=\S+$", errors[0]), "the message must end with what to type"
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")]
    assert leftovers == []


def test_every_offered_python_runs_a_generated_suite() -> None:
    default = offered_python_versions()[0]
    ran_on = {SUPPORTED[name].get("python_version", default) for name in RUN_GENERATED_TESTS}
    assert ran_on == set(offered_python_versions())


@pytest.mark.slow
@pytest.mark.parametrize("name", RUN_GENERATED_TESTS)
def test_generated_tests_pass_against_postgresql(tmp_path: Path, name: str) -> None:
    project = bake_into(tmp_path, **SUPPORTED[name])
    version = SUPPORTED[name].get("python_version", offered_python_versions()[0])
    env = install_on_pinned_python(project)
    # Not -q: the header names the interpreter the tests ran on.
    result = run([*GENERATED_SUITE], cwd=project, env=env)
    assert_ran_on(result.stdout, version)
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    assert "skipped" not in summary, "the generated tests must never skip silently"


@pytest.mark.slow
def test_generated_tests_stop_in_one_line_without_postgresql(tmp_path: Path) -> None:
    project = bake_into(tmp_path)
    # No server answers, and the server programs are hidden: no throwaway cluster either.
    nowhere = tmp_path / "no-postgres-programs"
    env = environment_without_virtualenv() | {
        "TEST_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:9/postgres",
        "TEST_POSTGRES_BIN": str(nowhere),
    }
    run(["uv", "sync", "--quiet"], cwd=project, env=env)
    result = subprocess.run(
        ["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3
    output = result.stdout + result.stderr
    (line,) = [line for line in output.splitlines() if "PostgreSQL is not reachable" in line]
    assert "at postgresql+asyncpg://postgres@127.0.0.1:9/postgres (" in line
    assert (
        f"no PostgreSQL server programs (initdb, pg_ctl, postgres) in TEST_POSTGRES_BIN='{nowhere}'"
        in line
    )
    assert line.rstrip(" !").endswith(
        "TEST_DATABASE_URL=postgresql+asyncpg://user:password@host:5432/postgres"
    )
    assert "passed" not in result.stdout
