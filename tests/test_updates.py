"""Adopt template updates with cruft: the round trip, the conflict paths, and determinism.

cruft needs the template in a git repository, so each test commits a copy of the
template's working tree, generates a project from it with `cruft create`, then
moves the project and the template on as a team and the template's authors would.
"""

import filecmp
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.baking import TEMPLATE_DIR, Bake, environment_without_virtualenv, run, tool

CRUFT = tool("cruft")
# What the working tree holds besides the template itself.
NOT_TEMPLATE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "bench"
)
PROJECT_DIR = Path("{{cookiecutter.project_slug}}")
PACKAGE_DIR = PROJECT_DIR / "src" / "{{cookiecutter.package_name}}"
# Skipped paths that no template renders: listed so that no template change can reach them.
NEVER_RENDERED = {".env", "uv.lock"}

# The user's new endpoint, with its test.
STATS_ROUTER = '''"""Counts across the service."""

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from round_trip.infrastructure.database import ReadSessionDep
from round_trip.items.models import Item

router = APIRouter(prefix="/stats", tags=["stats"])


class ItemCount(BaseModel):
    """How many items there are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": 42}]})

    items: int


@router.get("/items")
async def count_items(session: ReadSessionDep) -> ItemCount:
    """Count the items."""
    count = await session.scalar(select(func.count()).select_from(Item))
    return ItemCount(items=count or 0)
'''
STATS_TEST = """from httpx import AsyncClient


async def test_counts_the_items(client: AsyncClient) -> None:
    response = await client.get("/stats/items")
    assert response.status_code == 200
    assert isinstance(response.json()["items"], int)
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment in which no personal cookiecutter configuration changes the answers."""
    config = tmp_path / "cookiecutterrc"
    config.write_text(
        f"cookiecutters_dir: {tmp_path / 'cookiecutters'}\nreplay_dir: {tmp_path / 'replay'}\n"
    )
    return environment_without_virtualenv() | {"COOKIECUTTER_CONFIG": str(config)}


@pytest.fixture
def template(tmp_path: Path, env: dict[str, str]) -> Path:
    """A git repository holding a copy of the template's working tree, committed once."""
    copy = tmp_path / "template"
    shutil.copytree(TEMPLATE_DIR, copy, ignore=NOT_TEMPLATE)
    git(copy, env, "init", "--quiet", "--initial-branch=main")
    commit(copy, env, "Release the first version")
    return copy


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    """Run git as a test user, whatever the machine's git configuration says."""
    identity = ["-c", "user.name=Template Tests", "-c", "user.email=tests@example.com"]
    command = ["git", *identity, "-c", "commit.gpgsign=false", *args]
    return run(command, cwd=cwd, env=env).stdout


def commit(repository: Path, env: dict[str, str], message: str) -> None:
    """Commit everything in the repository's working tree."""
    git(repository, env, "add", "--all")
    git(repository, env, "commit", "--quiet", "--message", message)


def edit(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` in the file."""
    text = path.read_text()
    assert text.count(old) == 1, f"{path} should contain {old!r} exactly once"
    path.write_text(text.replace(old, new))


def cruft_create(template: Path, output: Path, env: dict[str, str], **answers: object) -> Path:
    """Generate a project with `cruft create` and return its directory."""
    output.mkdir(parents=True)
    command = [CRUFT, "create", str(template), "--no-input", "--output-dir", str(output)]
    run([*command, "--extra-context", json.dumps(answers)], cwd=output, env=env)
    (project,) = output.iterdir()
    return project


def start_project(template: Path, tmp_path: Path, env: dict[str, str]) -> Path:
    """Generate the Round Trip service and commit it as its team would."""
    project = cruft_create(template, tmp_path / "out", env, project_name="Round Trip")
    git(project, env, "init", "--quiet", "--initial-branch=main")
    commit(project, env, "Generate from template")
    return project


def release(template: Path, env: dict[str, str]) -> str:
    """Bump the template's version, commit everything changed, and return the new version."""
    cookiecutter_json = template / "cookiecutter.json"
    version = json.loads(cookiecutter_json.read_text())["_template_version"]
    year, month, number = version.split(".")
    newer = f"{year}.{month}.{int(number) + 1}"
    edit(cookiecutter_json, f'"_template_version": "{version}"', f'"_template_version": "{newer}"')
    commit(template, env, f"Release {newer}")
    return newer


def update(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the project's update script with this interpreter, which has cruft."""
    return subprocess.run(
        [sys.executable, "scripts/update_template.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def files_of(project: Path) -> list[Path]:
    """Every file of a project outside .git, relative to it and sorted."""
    return sorted(
        path.relative_to(project)
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(project).parts
    )


def test_an_update_merges_the_template_around_the_users_work(
    template: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    project = start_project(template, tmp_path, env)
    package = project / "src" / "round_trip"

    # The team's work: a new endpoint, a changed setting, and their own take on the example.
    (package / "stats.py").write_text(STATS_ROUTER)
    (project / "tests" / "test_stats.py").write_text(STATS_TEST)
    edit(
        package / "main.py",
        "from round_trip.items.router import router as items_router\n",
        "from round_trip.items.router import router as items_router\n"
        "from round_trip.stats import router as stats_router\n",
    )
    edit(
        package / "main.py",
        "    app.include_router(items_router)\n",
        "    app.include_router(items_router)\n    app.include_router(stats_router)\n",
    )
    edit(project / "pyproject.toml", 'version = "0.1.0"', 'version = "1.3.0"')
    edit(package / "items" / "router.py", '"""Return one item."""', '"""Return one item, by id."""')
    commit(project, env, "Count the items")

    # The template moves on: a new file, an edit to pyproject.toml away from the team's,
    # and an edit to the example domain, which the project owns (it is in `skip`).
    (template / PROJECT_DIR / "docs").mkdir()
    (template / PROJECT_DIR / "docs" / "operations.md").write_text(
        "# Operating {{ cookiecutter.project_name }}\n"
    )
    edit(
        template / PROJECT_DIR / "pyproject.toml",
        "[tool.pytest.ini_options]\n",
        '[tool.pytest.ini_options]\nminversion = "9.0"\n',
    )
    edit(
        template / PACKAGE_DIR / "items" / "router.py",
        '"""Return one item."""',
        '"""Return the item."""',
    )
    version = release(template, env)

    behind = subprocess.run(
        [CRUFT, "check"], cwd=project, env=env, capture_output=True, check=False
    )
    assert behind.returncode != 0, "cruft check must report a project behind its template"

    # The documented command: uv runs the script with the cruft its header asks for.
    result = run(["uv", "run", "scripts/update_template.py"], cwd=project, env=env)
    assert "run the tests: uv run pytest" in result.stdout
    assert f"-> {version}" in result.stdout
    assert "docs/operations.md" in result.stdout  # the diff --stat

    # The team's work survived...
    assert (package / "stats.py").read_text() == STATS_ROUTER
    assert "app.include_router(stats_router)" in (package / "main.py").read_text()
    pyproject = (project / "pyproject.toml").read_text()
    assert 'version = "1.3.0"' in pyproject
    assert '"""Return one item, by id."""' in (package / "items" / "router.py").read_text()
    # ...the template's changes arrived, rendered with the project's answers...
    assert 'minversion = "9.0"' in pyproject
    assert (project / "docs" / "operations.md").read_text() == "# Operating Round Trip\n"
    # ...without conflicts, and the project records the new template.
    assert git(project, env, "diff", "--name-only", "--diff-filter=U") == ""
    answers = json.loads((project / ".cookiecutter-answers.json").read_text())
    assert answers["template_version"] == version
    cruft_state = json.loads((project / ".cruft.json").read_text())
    assert cruft_state["commit"] == git(template, env, "rev-parse", "HEAD").strip()
    assert cruft_state["context"]["cookiecutter"]["_template_version"] == version
    run([CRUFT, "check"], cwd=project, env=env)

    # The merged project passes its own tests against PostgreSQL.
    run(["uv", "sync", "--quiet"], cwd=project, env=env)
    tests = run(
        ["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=env
    )
    summary = tests.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary


def test_overlapping_edits_fail_the_update_and_name_the_files(
    template: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    project = start_project(template, tmp_path, env)
    edit(project / "pyproject.toml", 'version = "0.1.0"', 'version = "1.3.0"')

    # cruft refuses to merge into uncommitted work, and the script passes that on.
    dirty = update(project, env)
    assert dirty.returncode == 1
    assert "cruft update exited with 1" in dirty.stderr
    commit(project, env, "Release 1.3.0")

    edit(template / PROJECT_DIR / "pyproject.toml", 'version = "0.1.0"', 'version = "0.2.0"')
    (template / PROJECT_DIR / "CONTRIBUTING.md").write_text("# Contributing\n")
    release(template, env)

    result = update(project, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the update left conflicts to resolve by hand:\n  pyproject.toml\n" in result.stderr
    pyproject = (project / "pyproject.toml").read_text()
    assert '<<<<<<< ours\nversion = "1.3.0"\n=======\nversion = "0.2.0"\n>>>>>>> theirs\n' in (
        pyproject
    )
    # What merged cleanly is there, ready to commit once the conflict is resolved.
    assert (project / "CONTRIBUTING.md").is_file()


def test_hunks_that_cannot_merge_three_ways_are_named_as_rej_files(
    template: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    project = cruft_create(template, tmp_path / "out", env, project_name="Round Trip")
    # Edited before the first commit, so git lacks the generated pyproject.toml that a
    # three-way merge starts from: cruft falls back to applying the patch with rejects.
    edit(project / "pyproject.toml", 'version = "0.1.0"', 'version = "1.3.0"')
    git(project, env, "init", "--quiet", "--initial-branch=main")
    commit(project, env, "Generate from template")

    edit(template / PROJECT_DIR / "pyproject.toml", 'version = "0.1.0"', 'version = "0.2.0"')
    release(template, env)

    result = update(project, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "  pyproject.toml.rej\n" in result.stderr
    assert 'version = "1.3.0"' in (project / "pyproject.toml").read_text()


def test_generation_is_deterministic_whichever_tool_renders(
    template: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    answers = {"project_name": "Twice Over", "license": "Apache-2.0", "use_docker": False}
    first = cruft_create(template, tmp_path / "first", env, **answers)
    second = cruft_create(template, tmp_path / "second", env, **answers)
    relative = files_of(first)
    assert relative == files_of(second)
    _, mismatch, errors = filecmp.cmpfiles(first, second, relative, shallow=False)
    assert mismatch == [] and errors == []

    # A re-render of the same commit, hooks included, is the project itself.
    diff = run([CRUFT, "diff", "--exit-code"], cwd=first, env=env)
    assert diff.stdout == ""

    # Without cruft, the answers file replays the same project...
    replayed = tmp_path / "replayed"
    run(
        [
            tool("cookiecutter"),
            "--replay-file",
            str(first / ".cookiecutter-answers.json"),
            "--output-dir",
            str(replayed),
            str(template),
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    project = replayed / first.name
    assert files_of(project) == [name for name in relative if name != Path(".cruft.json")]
    _, mismatch, errors = filecmp.cmpfiles(first, project, files_of(project), shallow=False)
    assert mismatch == [] and errors == []

    # ...which `cruft link` then ties to the template, as if cruft had made it.
    recorded = json.loads((first / ".cookiecutter-answers.json").read_text())["cookiecutter"]
    link = [CRUFT, "link", str(template), "--no-input", "--extra-context", json.dumps(recorded)]
    run(link, cwd=project, env=env)
    assert json.loads((project / ".cruft.json").read_text()) == json.loads(
        (first / ".cruft.json").read_text()
    )
    assert run([CRUFT, "diff", "--exit-code"], cwd=project, env=env).stdout == ""


def test_the_template_version_is_the_same_everywhere(bake: Bake) -> None:
    version = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())["_template_version"]
    assert re.fullmatch(r"20\d\d\.(1[0-2]|[1-9])\.\d+", version), "CalVer YYYY.M.N"
    pyproject = tomllib.loads((TEMPLATE_DIR / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == version
    changelog = (TEMPLATE_DIR / "CHANGELOG.md").read_text()
    entries = re.findall(r"^## (\S+)", changelog, re.MULTILINE)
    assert entries and entries[0] == version, "the newest CHANGELOG entry is this version"
    assert changelog.count("Manual steps:") == len(entries), "every entry says its manual steps"
    answers = json.loads((bake() / ".cookiecutter-answers.json").read_text())
    assert answers["template_version"] == version


def test_skipped_paths_name_what_the_project_has(bake: Bake) -> None:
    project = bake(project_name="Orders Service")
    skip = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["cruft"]["skip"]
    assert {".env", "src/orders_service/items", "tests/items"} <= set(skip)
    for entry in set(skip) - NEVER_RENDERED:
        assert (project / entry).exists(), f"skip lists {entry}, which is not generated"
    for entry in NEVER_RENDERED:
        assert not (project / entry).exists(), f"{entry} must never be rendered"
