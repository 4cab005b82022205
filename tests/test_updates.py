"""Adopt template updates with cruft: the round trip, the conflict paths, and determinism.

cruft needs the template in a git repository, so each test commits a copy of the
template's working tree, generates a project from it with `cruft create`, then
moves the project and the template on as a team and the template's authors would.
"""

import filecmp
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from tests.baking import TEMPLATE_DIR, Bake, environment_without_virtualenv, run, tool

pytestmark = pytest.mark.slow

CRUFT = tool("cruft")
# What the working tree holds besides the template itself.
NOT_TEMPLATE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "bench"
)
PROJECT_DIR = Path("{{cookiecutter.project_slug}}")
PACKAGE_DIR = PROJECT_DIR / "src" / "{{cookiecutter.package_name}}"
# Skipped paths that no template renders: listed so that no template change can reach them.
NEVER_RENDERED = {".env", "uv.lock"}
RELEASE = re.compile(r"20\d\d\.(1[0-2]|[1-9])\.\d+")
DEVELOPMENT = re.compile(r"(?P<release>20\d\d\.(1[0-2]|[1-9])\.\d+)\.dev\d+")
# Entries written before released entries were frozen: 2026.11.0's was completed after the
# commit that released it, and has stayed as it was since 2026.11.1 was released.
FROZEN_FROM_THE_NEXT_RELEASE = {"2026.11.0"}

# The user's new endpoint, with its test.
STATS_ROUTER = '''"""Counts across the service."""

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from round_trip.dependencies import ReadSessionDep
from round_trip.infrastructure.orm import Base

router = APIRouter(prefix="/stats", tags=["stats"])


class ItemCount(BaseModel):
    """How many items there are."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": 42}]})

    items: int


@router.get("/items")
async def count_items(session: ReadSessionDep) -> ItemCount:
    """Count the items."""
    # Through the metadata: the surface alone, whichever domain holds the table.
    items = Base.metadata.tables["items"]
    count = await session.scalar(select(func.count()).select_from(items))
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


def template_version(template: Path) -> str:
    """The `_template_version` in the template's working tree."""
    version = json.loads((template / "cookiecutter.json").read_text())["_template_version"]
    assert isinstance(version, str)
    return version


def set_version(template: Path, env: dict[str, str], version: str, message: str) -> str:
    """Set `_template_version`, commit everything changed, and return the commit."""
    old = f'"_template_version": "{template_version(template)}"'
    edit(template / "cookiecutter.json", old, f'"_template_version": "{version}"')
    commit(template, env, message)
    return git(template, env, "rev-parse", "HEAD").strip()


def release(template: Path, env: dict[str, str]) -> str:
    """Release the template as its authors do, committing everything changed; return the version."""
    version = template_version(template)
    if development := DEVELOPMENT.fullmatch(version):
        newer = development["release"]
    else:  # a release without a development version before it, as up to 2026.11.2
        year, month, number = version.split(".")
        newer = f"{year}.{month}.{int(number) + 1}"
    set_version(template, env, newer, f"Release {newer}")
    return newer


def develop(template: Path, env: dict[str, str]) -> str:
    """Open the next release after a release, committing everything changed; return the version."""
    year, month, number = template_version(template).split(".")
    newer = f"{year}.{month}.{int(number) + 1}.dev0"
    set_version(template, env, newer, f"Start {newer}")
    return newer


def update(project: Path, env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the project's update script with this interpreter, which has cruft."""
    return subprocess.run(
        [sys.executable, "scripts/update_template.py", *arguments],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def update_script() -> ModuleType:
    """The generated update script (it holds no template variables), imported."""
    path = TEMPLATE_DIR / PROJECT_DIR / "scripts" / "update_template.py"
    # The READMEs tell teams without it to copy it as it is from the template.
    assert not re.search(r"\{\{|\{%", path.read_text()), "the script must hold no Jinja"
    spec = importlib.util.spec_from_file_location("update_template", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def changelog_entry(changelog: str, version: str) -> str:
    """The text of one CHANGELOG entry, from its heading to the next."""
    entry = rf"^## {re.escape(version)}\n.*?(?=^## |\Z)"
    found = re.search(entry, changelog, re.MULTILINE | re.DOTALL)
    assert found, f"no entry for {version}"
    return found.group()


def log_named_in(output: str) -> Path:
    """The log file the update script names on its last line."""
    last = output.strip().splitlines()[-1]
    assert last.startswith("cruft's full output: "), output
    return Path(last.removeprefix("cruft's full output: "))


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
        package / "domains.py",
        "from round_trip.items.router import router as items_router\n",
        "from round_trip.items.router import router as items_router\n"
        "from round_trip.stats import router as stats_router\n",
    )
    edit(package / "domains.py", "(items_router,)", "(items_router, stats_router)")
    edit(project / "pyproject.toml", 'version = "0.1.0"', 'version = "1.3.0"')
    edit(package / "items" / "router.py", '"""Return one item."""', '"""Return one item, by id."""')
    commit(project, env, "Count the items")

    # The template moves on: a new file, an edit to pyproject.toml away from the team's,
    # and an edit to the example domain, which the project owns (it is in `skip`).
    (template / PROJECT_DIR / "docs" / "runbook.md").write_text(
        "# Running {{ cookiecutter.project_name }}\n"
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
    verdict = result.stdout.splitlines()[0]
    assert f"-> {version} (" in verdict and "nothing to resolve" in verdict, result.stdout
    assert "\n  A docs/runbook.md\n" in result.stdout
    assert "run the tests (uv run pytest)" in result.stdout

    # The team's work survived...
    assert (package / "stats.py").read_text() == STATS_ROUTER
    assert "(items_router, stats_router)" in (package / "domains.py").read_text()
    pyproject = (project / "pyproject.toml").read_text()
    assert 'version = "1.3.0"' in pyproject
    assert '"""Return one item, by id."""' in (package / "items" / "router.py").read_text()
    # ...the template's changes arrived, rendered with the project's answers...
    assert 'minversion = "9.0"' in pyproject
    assert (project / "docs" / "runbook.md").read_text() == "# Running Round Trip\n"
    # ...without conflicts, and the project records the new template.
    assert git(project, env, "diff", "--name-only", "--diff-filter=U") == ""
    answers = json.loads((project / ".cookiecutter-answers.json").read_text())
    assert answers["template_version"] == version
    cruft_state = json.loads((project / ".cruft.json").read_text())
    assert cruft_state["commit"] == git(template, env, "rev-parse", "HEAD").strip()
    assert cruft_state["context"]["cookiecutter"]["_template_version"] == version
    run([CRUFT, "check"], cwd=project, env=env)

    # That a merged project passes its gates and suite is test_simulated_life.py's to show,
    # for a team's project and a release that touches every registration point.


def test_overlapping_edits_fail_the_update_and_name_the_files(
    template: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    project = start_project(template, tmp_path, env)
    edit(project / "pyproject.toml", 'version = "0.1.0"', 'version = "1.3.0"')

    # cruft refuses to merge into uncommitted work, and the script passes that on.
    dirty = update(project, env)
    assert dirty.returncode == 2
    assert dirty.stderr.startswith("error: cruft update failed: Cruft cannot apply updates")
    assert dirty.stderr.count("\n") == 1, dirty.stderr
    commit(project, env, "Release 1.3.0")

    edit(template / PROJECT_DIR / "pyproject.toml", 'version = "0.1.0"', 'version = "0.2.0"')
    (template / PROJECT_DIR / "CONTRIBUTING.md").write_text("# Contributing\n")
    release(template, env)

    result = update(project, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].endswith(": 1 file(s) need you."), result.stdout
    assert "theirs:\n  pyproject.toml\nApplied:\n" in result.stdout, result.stdout
    assert "\n  A CONTRIBUTING.md\n" in result.stdout
    pyproject = (project / "pyproject.toml").read_text()
    assert '<<<<<<< ours\nversion = "1.3.0"\n=======\nversion = "0.2.0"\n>>>>>>> theirs\n' in (
        pyproject
    )
    # What merged cleanly is there, ready to commit once the conflict is resolved.
    assert (project / "CONTRIBUTING.md").is_file()


def test_the_report_names_rejected_hunks_and_skipped_files_and_keeps_crufts_output_aside(
    template: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    project = cruft_create(template, tmp_path / "out", env, project_name="Round Trip")
    # Edited before the first commit, so git lacks the generated pyproject.toml that a
    # three-way merge starts from: cruft falls back to applying the patch with rejects.
    edit(project / "pyproject.toml", 'version = "0.1.0"', 'version = "1.3.0"')
    # A file of the team's own that the template then adds too: the fallback skips it.
    (project / "CONTRIBUTING.md").write_text("# How we work\n")
    git(project, env, "init", "--quiet", "--initial-branch=main")
    commit(project, env, "Generate from template")

    edit(template / PROJECT_DIR / "pyproject.toml", 'version = "0.1.0"', 'version = "0.2.0"')
    (template / PROJECT_DIR / "CONTRIBUTING.md").write_text("# Contributing\n")
    (template / PROJECT_DIR / "SECURITY.md").write_text("# Security\n")
    release(template, env)

    result = update(project, env)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": 2 file(s) need you."), result.stdout
    assert "Rejected hunks, to apply by hand:\n  pyproject.toml.rej\n" in result.stdout
    assert (
        "Skipped by cruft, the template's change not applied:\n"
        "  CONTRIBUTING.md (already exists in working directory)\n"
    ) in result.stdout
    assert "\n  A SECURITY.md\n" in result.stdout
    assert 'version = "1.3.0"' in (project / "pyproject.toml").read_text()
    assert (project / "CONTRIBUTING.md").read_text() == "# How we work\n"
    # Only the report: cruft's lines are in the log it names, outside the working tree.
    assert "Good work" not in result.stdout and "Falling back" not in result.stdout
    assert len(lines) < 20, result.stdout
    log = log_named_in(result.stdout)
    assert ".git" in log.relative_to(project.resolve()).parts
    assert "Falling back to direct application" in log.read_text()


def test_the_next_steps_are_printed_for_a_new_project_only(
    template: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    output = tmp_path / "created"
    output.mkdir()
    command = [CRUFT, "create", str(template), "--no-input", "--output-dir", str(output)]
    created = run(command, cwd=output, env=env)
    assert "Next steps" in created.stderr
    (project,) = output.iterdir()
    git(project, env, "init", "--quiet", "--initial-branch=main")
    commit(project, env, "Generate from template")

    (template / PROJECT_DIR / "SECURITY.md").write_text("# Security\n")
    release(template, env)
    # cruft itself, without the script that hides its output: it renders twice to merge.
    updated = run([CRUFT, "update", "--skip-apply-ask"], cwd=project, env=env)
    assert "Good work" in updated.stdout  # the output the message would have been in
    assert "Next steps" not in updated.stdout + updated.stderr
    assert (project / "SECURITY.md").is_file()
    diff = run([CRUFT, "diff"], cwd=project, env=env)
    assert "Next steps" not in diff.stdout + diff.stderr


def test_a_released_version_resolves_to_the_commit_that_released_it(
    template: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    first = release(template, env)
    project = start_project(template, tmp_path, env)

    develop(template, env)
    (template / PROJECT_DIR / "RELEASED.md").write_text("In the release.\n")
    second = release(template, env)
    released = git(template, env, "rev-parse", "HEAD").strip()
    # Commits after a release that keep its version, as up to 2026.11.2: not the release.
    (template / PROJECT_DIR / "UNRELEASED.md").write_text("After the release.\n")
    commit(template, env, "Add a file after the release")
    develop(template, env)

    result = update(project, env, "--checkout", second)
    assert result.returncode == 0, result.stdout + result.stderr
    verdict = result.stdout.splitlines()[0]
    assert verdict.startswith(f"Template {first} (") and f"-> {second} ({released[:7]})" in verdict
    assert (project / "RELEASED.md").is_file()
    assert not (project / "UNRELEASED.md").exists()
    assert json.loads((project / ".cruft.json").read_text())["commit"] == released
    answers = json.loads((project / ".cookiecutter-answers.json").read_text())
    assert answers["template_version"] == second
    commit(project, env, f"Update to {second}")

    unreleased = update(project, env, "--checkout", template_version(template))
    assert unreleased.returncode == 2
    assert unreleased.stderr.startswith(f"error: {template_version(template)} is a development")
    unknown = update(project, env, "--checkout=2026.12.7")
    assert unknown.returncode == 2
    assert unknown.stderr.endswith(f"no release 2026.12.7; its releases: {first}, {second}\n")
    assert unknown.stderr.count("\n") == 1


def test_a_project_made_with_cookiecutter_links_at_its_release(
    template: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    version = release(template, env)
    released = git(template, env, "rev-parse", "HEAD").strip()
    output = tmp_path / "plain"
    output.mkdir()
    command = [tool("cookiecutter"), "--no-input", "--output-dir", str(output), str(template)]
    run([*command, "project_name=Plain Start"], cwd=output, env=env)
    project = output / "plain-start"
    git(project, env, "init", "--quiet", "--initial-branch=main")
    commit(project, env, "Generate from template")

    develop(template, env)
    edit(
        template / PROJECT_DIR / "pyproject.toml",
        "[tool.pytest.ini_options]\n",
        '[tool.pytest.ini_options]\nminversion = "9.0"\n',
    )
    newer = release(template, env)

    development = update(project, env, "link", str(template), "--checkout", f"{newer}.dev0")
    assert development.returncode == 2
    assert "is a development version" in development.stderr
    # The URL the project was generated from, in cookiecutter's spelling.
    linked = update(project, env, "link", f"git+file://{template}")
    assert linked.returncode == 0, linked.stdout + linked.stderr
    assert linked.stdout.startswith(f"Linked to {template} at {version} ({released[:7]}).")
    assert json.loads((project / ".cruft.json").read_text())["commit"] == released
    # The project is the render of the commit it is linked at.
    assert run([CRUFT, "diff", "--exit-code"], cwd=project, env=env).stdout == ""
    again = update(project, env, "link", str(template))
    assert again.returncode == 2 and "already linked" in again.stderr
    (project / "uv.lock").write_text("")  # skipped by updates, so it goes stale
    commit(project, env, "Link to the template")

    result = update(project, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"-> {newer} (" in result.stdout.splitlines()[0]
    assert 'minversion = "9.0"' in (project / "pyproject.toml").read_text()
    assert "run `uv lock`" in result.stdout


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


def release_numbers(version: str) -> tuple[int, ...]:
    """A released version as numbers, for ordering."""
    return tuple(int(number) for number in version.split("."))


def test_the_template_version_is_the_same_everywhere(bake: Bake) -> None:
    version = template_version(TEMPLATE_DIR)
    pyproject = tomllib.loads((TEMPLATE_DIR / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == version
    changelog = (TEMPLATE_DIR / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (.+)$", changelog, re.MULTILINE)
    released = [heading for heading in headings if heading != "Unreleased"]
    assert all(RELEASE.fullmatch(heading) for heading in released), "CalVer YYYY.M.N"
    assert released == sorted(released, key=release_numbers, reverse=True), "newest first"
    if development := DEVELOPMENT.fullmatch(version):
        assert headings[0] == "Unreleased", "between releases, the first entry is Unreleased"
        assert release_numbers(development["release"]) > release_numbers(released[0]), (
            "a development version is one of the next release"
        )
    else:
        assert RELEASE.fullmatch(version), "YYYY.M.N, or YYYY.M.N.devK between releases"
        assert headings[0] == version, "a release's own entry is the first"
    assert changelog.count("Manual steps:") == len(headings), "every entry says its manual steps"
    answers = json.loads((bake() / ".cookiecutter-answers.json").read_text())
    assert answers["template_version"] == version


def test_released_changelog_entries_keep_the_text_they_were_released_with() -> None:
    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shallow.stdout.strip() == "false", "needs the template's whole git history"
    changes = update_script().versions_in_history(TEMPLATE_DIR, "cookiecutter.json")
    releases: dict[str, str] = {}
    for commit, version in changes:
        if RELEASE.fullmatch(version):
            releases.setdefault(version, commit)  # the first commit that set it released it
    in_order = list(releases)
    changelog = (TEMPLATE_DIR / "CHANGELOG.md").read_text()
    entries = re.findall(r"^## (.+)$", changelog, re.MULTILINE)
    assert set(releases) <= set(entries), "every release keeps its entry"
    for version in entries:
        if version in {"Unreleased", template_version(TEMPLATE_DIR)}:
            continue  # not released yet, or being released by this working tree
        assert version in releases, f"no commit set _template_version to {version}"
        if version in FROZEN_FROM_THE_NEXT_RELEASE:
            frozen_at = releases[in_order[in_order.index(version) + 1]]
        else:
            frozen_at = releases[version]
        then = run(["git", "show", f"{frozen_at}:CHANGELOG.md"], cwd=TEMPLATE_DIR).stdout
        assert changelog_entry(changelog, version) == changelog_entry(then, version), (
            f"the {version} entry changed after {frozen_at[:7]} released it: "
            "write the change in the Unreleased entry instead"
        )


def test_skipped_paths_name_what_the_project_has(bake: Bake) -> None:
    project = bake(project_name="Orders Service")
    skip = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["cruft"]["skip"]
    assert {".env", "src/orders_service/items", "tests/items"} <= set(skip)
    for entry in set(skip) - NEVER_RENDERED:
        assert (project / entry).exists(), f"skip lists {entry}, which is not generated"
    for entry in NEVER_RENDERED:
        assert not (project / entry).exists(), f"{entry} must never be rendered"
