"""Check the files of the use_docker and use_github_actions options by their structure.

Docker cannot run where these tests run, so the Dockerfile is split into its
stages and instructions, compose.yaml and the workflow are parsed as YAML, and
hadolint and jactionlint lint the rendered files.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.baking import Bake, bake_into, run, tool
from tests.makefile import make_targets

PYTHON_VERSIONS = ["3.11", "3.12", "3.13", "3.14"]
WORKFLOW = Path(".github/workflows/ci.yml")
DEPENDABOT = Path(".github/dependabot.yml")
DOCKER_FILES = [Path("Dockerfile"), Path(".dockerignore"), Path("compose.yaml")]
FULL_SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
# Compose's `${NAME:-default}`, resolved to its default as compose does when NAME is unset.
INTERPOLATION = re.compile(r"\$\{(\w+):-([^}]*)\}")


@pytest.fixture(scope="module", params=PYTHON_VERSIONS)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with both options on, once per supported Python version."""
    output = tmp_path_factory.mktemp(f"py{request.param}")
    return bake_into(output, python_version=request.param)


def python_version(project: Path) -> str:
    """The python_version answer the project was generated with."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    version: str = pyproject["tool"]["mypy"]["python_version"]
    return version


def console_script(project: Path) -> str:
    """The name of the command that pyproject.toml installs for the service."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    (name,) = pyproject["project"]["scripts"]
    assert isinstance(name, str)
    return name


# --- Dockerfile -------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    arguments: str

    def flags(self) -> dict[str, str]:
        """The leading `--name=value` options (COPY --from=..., FROM --platform=...)."""
        found: dict[str, str] = {}
        for word in self.arguments.split():
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found

    def words(self) -> list[str]:
        """The arguments after the options, split like a shell would."""
        return [word for word in shlex.split(self.arguments) if not word.startswith("--")]

    def exec_form(self) -> list[str]:
        """The JSON array of CMD, ENTRYPOINT or HEALTHCHECK ... CMD."""
        array = self.arguments[self.arguments.index("[") :]
        command = json.loads(array)
        assert isinstance(command, list)
        return [str(part) for part in command]


def instructions(text: str) -> list[Instruction]:
    """Parse a Dockerfile into instructions; comments and parser directives are dropped."""
    parsed: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        parsed.append(Instruction(keyword.upper(), " ".join(arguments.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return parsed


def stages(text: str) -> list[list[Instruction]]:
    """The Dockerfile's stages, each starting with its FROM."""
    found: list[list[Instruction]] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            found.append([])
        assert found, "an instruction comes before the first FROM"
        found[-1].append(instruction)
    return found


def named(stage: list[Instruction], keyword: str) -> list[Instruction]:
    """The stage's instructions with this keyword, in order."""
    return [instruction for instruction in stage if instruction.keyword == keyword]


def environment(stage: list[Instruction]) -> dict[str, str]:
    """The variables the stage's ENV instructions set."""
    variables: dict[str, str] = {}
    for instruction in named(stage, "ENV"):
        for pair in shlex.split(instruction.arguments):
            name, _, value = pair.partition("=")
            variables[name] = value
    return variables


@pytest.fixture(scope="module")
def dockerfile(project: Path) -> str:
    """The rendered Dockerfile."""
    return (project / "Dockerfile").read_text()


def test_dockerfile_builds_in_one_stage_and_runs_in_another(dockerfile: str) -> None:
    all_stages = stages(dockerfile)
    assert len(all_stages) >= 2
    final = all_stages[-1]
    copied_from = {instruction.flags().get("from") for instruction in named(final, "COPY")}
    assert "builder" in copied_from, "the final stage copies the built virtual environment"
    assert any(
        "/app/.venv" in instruction.arguments
        for instruction in named(final, "COPY")
        if instruction.flags().get("from") == "builder"
    )


def test_both_python_stages_use_the_answered_version(project: Path, dockerfile: str) -> None:
    version = python_version(project)
    bases = {
        instruction.words()[0]
        for stage in stages(dockerfile)
        for instruction in named(stage, "FROM")
    }
    python_bases = {base for base in bases if base.startswith("python:")}
    assert (project / ".python-version").read_text().strip() == version
    # The builder and the final image must share an interpreter path: the
    # virtual environment's links point at it.
    assert python_bases == {f"python:{version}-slim"}
    assert stages(dockerfile)[-1][0].words()[0] == f"python:{version}-slim"


def builder_step(instruction: Instruction) -> str:
    """Name what a build-stage instruction does, for checking their order."""
    if instruction.keyword == "COPY" and "pyproject.toml" in instruction.words():
        return "copy pyproject"
    if instruction.keyword == "COPY" and "src" in instruction.words():
        return "copy source"
    if instruction.keyword == "RUN" and "uv sync" in instruction.arguments:
        return "uv sync"
    return instruction.keyword


def test_builder_installs_dependencies_before_copying_the_source(dockerfile: str) -> None:
    builder = next(stage for stage in stages(dockerfile) if stage[0].words()[-1] == "builder")
    order = [builder_step(instruction) for instruction in builder]
    assert order.index("copy pyproject") < order.index("uv sync") < order.index("copy source")
    assert order[-1] == "uv sync", "the project is installed after its source is copied"
    # With the pin beside pyproject.toml, uv refuses an image whose Python differs from it.
    pinned = next(step for step in builder if builder_step(step) == "copy pyproject")
    assert ".python-version" in pinned.words()
    syncs = [step.arguments for step in builder if builder_step(step) == "uv sync"]
    assert all("--no-dev" in sync for sync in syncs)
    # uv.lock is optional until one is committed: a plain name would fail the build.
    assert "uv.lock*" in pinned.words()


def uv_calls(command: list[str], cwd: Path, tmp_path: Path) -> list[list[str]]:
    """Run `command` with a stand-in `uv` first on PATH; return the arguments of each call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "uv-calls.jsonl"
    log.unlink(missing_ok=True)
    fake = bin_dir / "uv"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    print(json.dumps(sys.argv[1:]), file=log)\n"
    )
    fake.chmod(0o755)
    run(command, cwd=cwd, env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    return [json.loads(line) for line in log.read_text().splitlines()]


def shell_script(instruction: Instruction) -> str:
    """The shell command of a RUN instruction, without its leading options."""
    script = instruction.arguments
    while script.startswith("--"):
        script = script.partition(" ")[2]
    return script


@pytest.mark.parametrize("committed_lock", [True, False], ids=["lock", "no-lock"])
def test_image_installs_the_lock_exactly_once_one_is_committed(
    dockerfile: str, tmp_path: Path, committed_lock: bool
) -> None:
    builder = next(stage for stage in stages(dockerfile) if stage[0].words()[-1] == "builder")
    syncs = [step for step in builder if builder_step(step) == "uv sync"]
    workdir = tmp_path / "app"
    workdir.mkdir()
    if committed_lock:
        (workdir / "uv.lock").write_text("version = 1\n")
    for step in syncs:
        (call,) = uv_calls(["sh", "-c", shell_script(step)], workdir, tmp_path)
        assert call[0] == "sync"
        assert ("--locked" in call) is committed_lock, call
        assert "--frozen" not in call


def test_final_stage_has_no_build_tools(dockerfile: str) -> None:
    final = stages(dockerfile)[-1]
    text = "\n".join(f"{i.keyword} {i.arguments}" for i in final)
    for tool_name in ("gcc", "g++", "build-essential", "make", "uv", "pip install", "apt-get"):
        assert not re.search(rf"(?<![\w.-]){re.escape(tool_name)}(?![\w-])", text), tool_name
    assert all(i.flags().get("from") != "uv" for i in named(final, "COPY"))


def test_final_stage_runs_as_a_fixed_non_root_user(dockerfile: str) -> None:
    final = stages(dockerfile)[-1]
    users = named(final, "USER")
    assert users, "the final stage sets USER"
    user = users[-1].words()[0].partition(":")[0]
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
    assert user.isdigit()
    assert int(user) >= 1000
    # Set after the last RUN, so that every command of the image's own runs as this user.
    assert final.index(users[-1]) > max((final.index(i) for i in named(final, "RUN")), default=0)


def test_final_stage_environment(dockerfile: str) -> None:
    variables = environment(stages(dockerfile)[-1])
    assert variables["PATH"].startswith("/app/.venv/bin:")
    assert variables["PYTHONDONTWRITEBYTECODE"] == "1"
    assert variables["PYTHONUNBUFFERED"] == "1"
    assert variables["DATABASE_PROFILE"] == "prod"
    assert variables["HOST"] == "0.0.0.0"


def test_image_exposes_the_port_and_checks_liveness(dockerfile: str) -> None:
    final = stages(dockerfile)[-1]
    assert [i.arguments for i in named(final, "EXPOSE")] == ["8000"]
    (healthcheck,) = named(final, "HEALTHCHECK")
    command = healthcheck.exec_form()
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "/health/live" in command[2]
    assert "curl" not in healthcheck.arguments
    assert "--timeout=" in healthcheck.arguments


def test_cmd_waits_migrates_then_execs_the_server(project: Path, dockerfile: str) -> None:
    final = stages(dockerfile)[-1]
    (cmd,) = named(final, "CMD")
    assert not named(final, "ENTRYPOINT")
    shell, flag, script = cmd.exec_form()
    assert (shell, flag) == ("sh", "-c")
    wait, migrate, serve = (part.strip() for part in script.split("&&"))
    # && so that a database that never answers or a failed migration stops the
    # start; exec so that SIGTERM reaches the server instead of the shell.
    command = console_script(project)
    assert wait == f"{command} db wait"
    assert migrate == f"{command} db upgrade"
    assert serve == f"exec {command} serve"


def test_final_stage_holds_what_migrations_need(dockerfile: str) -> None:
    copied = {
        source
        for instruction in named(stages(dockerfile)[-1], "COPY")
        if "from" not in instruction.flags()
        for source in instruction.words()[:-1]
    }
    assert {"alembic.ini", "migrations"} <= copied
    assert "tests" not in copied


def test_hadolint_accepts_the_dockerfile(project: Path) -> None:
    run([tool("hadolint"), "--no-color", "Dockerfile"], cwd=project)


# --- .dockerignore ----------------------------------------------------------


def ignore_pattern(pattern: str) -> re.Pattern[str]:
    """Translate one .dockerignore pattern (Go filepath.Match plus `**`) to a regex."""
    pattern = pattern.strip("/")
    translated = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            translated += "(.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            translated += ".*"
            index += 2
        elif pattern[index] == "*":
            translated += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            translated += "[^/]"
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            translated += pattern[index : end + 1]
            index = end + 1
        else:
            translated += re.escape(pattern[index])
            index += 1
    return re.compile(translated)


def sent_to_build(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker sends `path` to the build; a rule on a folder covers its files."""
    parts = path.split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    excluded = False
    for negated, rule in rules:
        if any(rule.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return not excluded


def build_context(project: Path) -> set[str]:
    """The project's files that `docker build .` would send, by relative path."""
    rules = [
        (line.startswith("!"), ignore_pattern(line.removeprefix("!")))
        for line in (project / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {
        path.relative_to(project).as_posix()
        for path in project.rglob("*")
        if path.is_file() and sent_to_build(path.relative_to(project).as_posix(), rules)
    }


def test_build_context_holds_what_the_dockerfile_copies(project: Path, dockerfile: str) -> None:
    context = build_context(project)
    sources = {
        source
        for stage in stages(dockerfile)
        for instruction in named(stage, "COPY")
        if "from" not in instruction.flags()
        for source in instruction.words()[:-1]
    }
    for source in sources:
        if "*" in source:  # uv.lock*: optional until a lock file is committed
            continue
        assert any(path == source or path.startswith(f"{source}/") for path in context), source
    package = next((project / "src").iterdir()).name
    assert f"src/{package}/main.py" in context
    assert "migrations/env.py" in context


def test_build_context_leaves_out_secrets_and_local_state(project: Path) -> None:
    package = next((project / "src").iterdir()).name
    local_files = [
        ".env",
        f"src/{package}/.env",
        f"{project.name}-dev.sqlite3",
        f"migrations/{project.name}-dev.sqlite3",
        ".venv/bin/python",
        ".git/HEAD",
        f"src/{package}/__pycache__/main.cpython-312.pyc",
        ".pytest_cache/README.md",
    ]
    for name in local_files:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("local\n")
    try:
        context = build_context(project)
    finally:
        for name in local_files:
            (project / name).unlink()
    assert not context & set(local_files)
    assert not any(path.startswith(("tests/", ".github/")) for path in context)
    assert "compose.yaml" not in context


# --- compose.yaml -----------------------------------------------------------


@pytest.fixture(scope="module")
def compose(project: Path) -> dict[str, Any]:
    """The rendered compose.yaml."""
    loaded = yaml.safe_load((project / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def postgres_major(image: str) -> int:
    """The major version an official postgres image is pinned to, by its tag."""
    name, _, tag = image.partition(":")
    assert name == "postgres", image
    # A major version only, so that the minor (bug-fix) releases arrive with each pull.
    assert tag.isdigit(), image
    return int(tag)


def resolved(value: str) -> str:
    """A compose value with every `${NAME:-default}` replaced by its default."""
    return INTERPOLATION.sub(lambda match: match.group(2), value)


def test_compose_has_database_migration_and_app(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"db", "migrate", "app"} <= set(services)
    for name in ("db", "migrate", "app"):
        assert "profiles" not in services[name], f"{name} starts with a plain `up`"


def test_database_is_healthchecked_and_persistent(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    assert postgres_major(db["image"]) >= 18
    assert db["healthcheck"]["test"][0] == "CMD"
    assert db["healthcheck"]["test"][1] == "pg_isready"
    (volume,) = db["volumes"]
    name, _, target = volume.partition(":")
    assert name in compose["volumes"]
    # From 18 on, the image keeps a folder per major version here and refuses a
    # volume at the old /var/lib/postgresql/data.
    assert target == "/var/lib/postgresql"
    # A local default, never a generated secret: the same answers give the same bytes.
    assert db["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-postgres}"
    for port in db.get("ports", []):
        assert port.startswith("127.0.0.1:"), "the database is published on loopback only"


def test_migrations_run_once_before_the_app(compose: dict[str, Any], project: Path) -> None:
    services = compose["services"]
    migrate, app = services["migrate"], services["app"]
    command = console_script(project)
    assert migrate["command"] == ["sh", "-c", f"{command} db wait && {command} db upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert app["command"] == [command, "serve"]
    assert "8000:8000" in app["ports"]


def test_migrate_and_app_share_one_built_image(compose: dict[str, Any], project: Path) -> None:
    services = compose["services"]
    assert services["migrate"]["image"] == services["app"]["image"]
    assert services["app"]["image"].startswith(f"{project.name}:")
    # Two services building one tag race each other under compose's bake builder.
    builders = [name for name, service in services.items() if "build" in service]
    assert builders == ["migrate"]


def test_service_environment_points_at_the_database(compose: dict[str, Any]) -> None:
    services = compose["services"]
    db_environment = services["db"]["environment"]
    for name in ("migrate", "app"):
        variables = services[name]["environment"]
        url = resolved(variables["DATABASE_URL"])
        expected = (
            f"postgresql+asyncpg://{db_environment['POSTGRES_USER']}:"
            f"{resolved(db_environment['POSTGRES_PASSWORD'])}@db:5432/"
            f"{db_environment['POSTGRES_DB']}"
        )
        assert url == expected
        assert variables["DATABASE_PROFILE"] == "prod"


def test_service_accepts_the_compose_environment(compose: dict[str, Any], project: Path) -> None:
    """Load the generated service's settings with exactly what compose gives the app."""
    variables = {k: resolved(str(v)) for k, v in compose["services"]["app"]["environment"].items()}
    package = next((project / "src").iterdir()).name
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "WEB_"))}
    code = f"from {package}.infrastructure.config import load_settings; load_settings()"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env={**clean, **variables, "PYTHONPATH": str(project / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_pgbouncer_is_opt_in_and_in_transaction_mode(compose: dict[str, Any]) -> None:
    pgbouncer = compose["services"]["pgbouncer"]
    assert pgbouncer["profiles"] == ["pgbouncer"]
    assert pgbouncer["environment"]["POOL_MODE"] == "transaction"
    assert pgbouncer["environment"]["DB_HOST"] == "db"
    assert ":" in pgbouncer["image"]
    assert not pgbouncer["image"].endswith(":latest")


# --- .github/workflows/ci.yml -----------------------------------------------


@pytest.fixture(scope="module")
def workflow(project: Path) -> dict[Any, Any]:
    """The rendered workflow."""
    loaded = yaml.safe_load((project / WORKFLOW).read_text())
    assert isinstance(loaded, dict)
    return loaded


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    """The `on:` mapping; YAML 1.1 reads the bare key `on` as True."""
    found = workflow.get("on", workflow.get(True))
    assert isinstance(found, dict)
    return found


def steps(workflow: dict[Any, Any]) -> Iterator[dict[str, Any]]:
    """Every step of every job."""
    for job in workflow["jobs"].values():
        yield from job["steps"]


def test_workflow_runs_on_pushes_and_pull_requests(workflow: dict[Any, Any]) -> None:
    assert {"push", "pull_request"} <= set(triggers(workflow))


def test_workflow_has_least_privilege_timeouts_and_concurrency(workflow: dict[Any, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    assert "${{ github.ref }}" in workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"]
    for job in workflow["jobs"].values():
        assert "permissions" not in job or job["permissions"] == {"contents": "read"}
        assert 0 < job["timeout-minutes"] <= 30


def test_every_action_is_pinned_to_a_commit(project: Path, workflow: dict[Any, Any]) -> None:
    uses = [step["uses"] for step in steps(workflow) if "uses" in step]
    assert {use.partition("@")[0] for use in uses} >= {"actions/checkout", "astral-sh/setup-uv"}
    for use in uses:
        assert FULL_SHA_PIN.fullmatch(use), use
    # The version each SHA stands for is written next to it, for people and Dependabot.
    for line in (project / WORKFLOW).read_text().splitlines():
        if "uses:" in line:
            assert re.search(r"@[0-9a-f]{40} # v\d+(\.\d+)*$", line), line


def test_checkout_does_not_keep_the_token(workflow: dict[Any, Any]) -> None:
    checkout = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False


def test_workflow_takes_python_from_the_pinned_version(
    project: Path, workflow: dict[Any, Any]
) -> None:
    setup = next(s for s in steps(workflow) if s.get("uses", "").startswith("astral-sh/setup-uv@"))
    # setup-uv's python-version sets UV_PYTHON, which would override .python-version.
    assert "python-version" not in setup.get("with", {})
    assert "UV_PYTHON" not in str(workflow)
    assert (project / ".python-version").read_text().strip() == python_version(project)


def test_workflow_runs_the_gates_in_order(workflow: dict[Any, Any]) -> None:
    commands = [
        step["run"].strip()
        for step in steps(workflow)
        if "run" in step and not step.get("continue-on-error")
    ]
    assert commands == [
        "make install",
        "make lint",
        "make typecheck",
        "make migrate",
        "make check-migrations",
        "make coverage",
    ]


def test_workflow_and_people_run_the_same_makefile_targets(
    project: Path, workflow: dict[Any, Any]
) -> None:
    targets = make_targets(project)
    gates = [
        step["run"].strip().removeprefix("make ")
        for step in steps(workflow)
        if "run" in step and not step.get("continue-on-error")
    ]
    assert set(gates) <= set(targets)
    command = console_script(project)
    assert [line.split()[:2] for line in targets["install"]] == [["uv", "sync"]]
    assert targets["lint"] == [
        "uv run ruff check",
        "uv run ruff format --check",
        "uv run lint-imports --no-logo",
        "uv run scripts/lint_migrations.py",
    ]
    assert targets["typecheck"] == ["uv run mypy"]
    assert targets["test"] == ["uv run pytest $(PYTEST_ARGS)"]
    assert targets["test-fast"] == ['uv run pytest -m "not slow" $(PYTEST_ARGS)']
    assert targets["test-parallel"] == ["uv run pytest -n auto $(PYTEST_ARGS)"]
    # The whole suite, so that the threshold compares like with like; the
    # threshold itself lives only in pyproject.toml.
    (coverage,) = targets["coverage"]
    assert coverage.startswith("uv run pytest --cov") and "$(" not in coverage
    assert "fail-under" not in coverage
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["tool"]["coverage"]["report"]["fail_under"] > 0
    assert targets["migrate"] == [f"uv run {command} db upgrade"]
    assert targets["check-migrations"] == [f"uv run {command} db check"]
    assert targets["serve"] == [f"uv run {command} serve"]


@pytest.mark.parametrize("committed_lock", [True, False], ids=["lock", "no-lock"])
def test_make_install_syncs_the_lock_exactly_once_one_is_committed(
    project: Path, tmp_path: Path, committed_lock: bool
) -> None:
    lock = project / "uv.lock"
    if committed_lock:
        lock.write_text("version = 1\n")
    try:
        calls = uv_calls(["make", "install"], project, tmp_path)
    finally:
        lock.unlink(missing_ok=True)
    (call,) = calls
    assert call[0] == "sync"
    assert ("--locked" in call) is committed_lock, call


def test_template_check_reports_without_failing_the_build(workflow: dict[Any, Any]) -> None:
    (check,) = [step for step in steps(workflow) if "cruft check" in step.get("run", "")]
    assert check["continue-on-error"] is True
    # Projects made with plain cookiecutter have no .cruft.json until they are linked.
    assert check["if"] == "hashFiles('.cruft.json') != ''"
    assert check["run"].startswith("uvx --from 'cruft>=2.16,<3' cruft check ||")
    assert "::warning::" in check["run"] and "exit 1" in check["run"]


def test_migrations_and_tests_use_the_postgres_service(workflow: dict[Any, Any]) -> None:
    (job,) = workflow["jobs"].values()
    postgres = job["services"]["postgres"]
    assert postgres_major(postgres["image"]) >= 18
    assert "--health-cmd" in postgres["options"]
    assert "5432:5432" in postgres["ports"]
    by_command = {step["run"].strip(): step for step in job["steps"] if "run" in step}
    database = postgres["env"].get("POSTGRES_DB", "postgres")
    password = postgres["env"]["POSTGRES_PASSWORD"]
    for command in ("make migrate", "make check-migrations"):
        assert by_command[command]["env"]["DATABASE_URL"] == (
            f"postgresql+asyncpg://postgres:{password}@127.0.0.1:5432/{database}"
        )
    assert by_command["make coverage"]["env"]["TEST_DATABASE_URL"] == (
        f"postgresql+asyncpg://postgres:{password}@127.0.0.1:5432/postgres"
    )


def test_github_expressions_survive_rendering(project: Path) -> None:
    text = (project / WORKFLOW).read_text()
    expressions = re.findall(r"\$\{\{(.*?)\}\}", text)
    assert expressions, "the workflow uses GitHub expressions"
    assert all(
        expression.startswith(" ") and expression.endswith(" ") for expression in expressions
    )
    # Every remaining brace pair belongs to a GitHub expression.
    assert text.count("{{") == text.count("${{") == len(expressions)
    assert "{%" not in text
    assert "cookiecutter" not in text


def test_jactionlint_accepts_the_workflow(project: Path) -> None:
    run(
        [
            tool("jactionlint"),
            "--no-online",
            "--strict-exit",
            "--no-color",
            # Deterministic whatever is installed on the machine.
            "--shellcheck=",
            "--pyflakes=",
            # The service container stays on a major version's tag so that it gets
            # the minor releases; a digest could not be verified when this was written.
            "--ignore=unpinned-images",
            str(WORKFLOW),
        ],
        cwd=project,
    )


# --- .github/dependabot.yml --------------------------------------------------

# The file whose presence means the project uses each of Dependabot's ecosystems.
ECOSYSTEM_FILES = {
    "uv": Path("pyproject.toml"),
    "github-actions": WORKFLOW,
    "docker": Path("Dockerfile"),
    "docker-compose": Path("compose.yaml"),
}


def dependabot_updates(project: Path) -> dict[str, dict[str, Any]]:
    """The rendered dependabot.yml's update entries, by ecosystem."""
    loaded = yaml.safe_load((project / DEPENDABOT).read_text())
    assert loaded["version"] == 2
    updates = {entry["package-ecosystem"]: entry for entry in loaded["updates"]}
    assert len(updates) == len(loaded["updates"]), "one entry per ecosystem"
    return updates


@pytest.mark.parametrize("answers", [{}, {"use_docker": False}], ids=["docker", "no-docker"])
def test_dependabot_covers_every_ecosystem_the_project_uses(
    bake: Bake, answers: dict[str, bool]
) -> None:
    project = bake(**answers)
    updates = dependabot_updates(project)
    used = {name for name, path in ECOSYSTEM_FILES.items() if (project / path).is_file()}
    assert set(updates) == used
    # Dependabot reads the workflows under .github/ of the directory it is given.
    assert updates["github-actions"]["directory"] == "/"
    assert updates["uv"]["directory"] == "/"
    for name, entry in updates.items():
        folder = project / entry["directory"].lstrip("/")
        assert (folder / ECOSYSTEM_FILES[name]).is_file(), name
    run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(DEPENDABOT)],
        cwd=project,
    )


def test_dependabot_groups_minor_and_patch_updates_after_a_cooldown(project: Path) -> None:
    for name, entry in dependabot_updates(project).items():
        # One pull request per ecosystem for minor and patch updates; majors come alone.
        (group,) = entry["groups"].values()
        assert group["patterns"] == ["*"], name
        assert sorted(group["update-types"]) == ["minor", "patch"], name
        assert entry["cooldown"]["default-days"] >= 1, name


def test_dependabot_leaves_the_image_python_to_the_answer(project: Path) -> None:
    rules = dependabot_updates(project)["docker"]["ignore"]
    (python,) = [rule for rule in rules if rule["dependency-name"] == "python"]
    # A new minor Python changes .python-version and ruff's and mypy's targets too.
    assert set(python["update-types"]) == {
        "version-update:semver-major",
        "version-update:semver-minor",
    }


# --- Both options ------------------------------------------------------------


def test_compose_and_ci_run_the_same_postgresql(
    compose: dict[str, Any], workflow: dict[Any, Any]
) -> None:
    (job,) = workflow["jobs"].values()
    assert compose["services"]["db"]["image"] == job["services"]["postgres"]["image"]


def test_rendered_files_have_no_template_artefacts(project: Path) -> None:
    for relative in [*DOCKER_FILES, WORKFLOW, DEPENDABOT]:
        text = (project / relative).read_text()
        assert "{%" not in text, relative
        assert "%}" not in text, relative
        assert "cookiecutter" not in text, relative
        assert text.count("{{") == text.count("${{"), relative
        assert text.endswith("\n"), relative
        assert not text.endswith("\n\n"), relative
        assert not text.startswith("\n"), relative
        assert "\n\n\n" not in text, f"{relative} has a run of blank lines"
        assert not re.search(r"[ \t]+$", text, re.MULTILINE), f"{relative} has trailing spaces"


@pytest.mark.parametrize(
    ("answers", "absent", "present"),
    [
        ({"use_docker": False}, DOCKER_FILES, [WORKFLOW, DEPENDABOT]),
        ({"use_github_actions": False}, [Path(".github")], DOCKER_FILES),
        ({"use_docker": False, "use_github_actions": False}, [*DOCKER_FILES, Path(".github")], []),
        ({}, [], [*DOCKER_FILES, WORKFLOW, DEPENDABOT]),
    ],
    ids=["no-docker", "no-actions", "neither", "both"],
)
def test_options_decide_which_files_exist(
    bake: Bake, answers: dict[str, bool], absent: list[Path], present: list[Path]
) -> None:
    project = bake(**answers)
    for relative in absent:
        assert not (project / relative).exists(), relative
    for relative in present:
        assert (project / relative).is_file(), relative
