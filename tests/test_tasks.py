"""The generated Makefile and pre-commit configuration: run for real on a baked project."""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.baking import TEMPLATE_DIR, bake_into, environment_without_virtualenv, run, tool
from tests.makefile import make_targets

pytestmark = pytest.mark.slow

PRE_COMMIT_CONFIG = Path(".pre-commit-config.yaml")
RUFF_HOOKS = "https://github.com/astral-sh/ruff-pre-commit"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default project, installed with `make install`."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed; .ci/run installs it", pytrace=False)
    project = bake_into(tmp_path_factory.mktemp("tasks"))
    run(["make", "install"], cwd=project, env=environment_without_virtualenv())
    return project


@pytest.fixture(scope="module")
def pre_commit_config(project: Path) -> dict[str, Any]:
    """The rendered .pre-commit-config.yaml."""
    loaded = yaml.safe_load((project / PRE_COMMIT_CONFIG).read_text())
    assert isinstance(loaded, dict)
    return loaded


def hooks_of(config: dict[str, Any], repo: str) -> dict[str, dict[str, Any]]:
    """The hooks that `config` takes from `repo`, by id."""
    (entry,) = [entry for entry in config["repos"] if entry["repo"] == repo]
    return {hook["id"]: hook for hook in entry["hooks"]}


def test_make_alone_lists_every_target(project: Path) -> None:
    result = run(["make"], cwd=project)
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert listed == list(make_targets(project))


def test_make_lint_and_typecheck_pass_on_the_generated_project(project: Path) -> None:
    result = run(["make", "lint", "typecheck"], cwd=project, env=environment_without_virtualenv())
    assert "All checks passed!" in result.stdout
    assert "Success: no issues found" in result.stdout


def test_make_lint_fails_on_badly_formatted_code(project: Path) -> None:
    module = next((project / "src").iterdir()) / "badly_formatted.py"
    module.write_text("VALUE    =  1\n")
    try:
        result = subprocess.run(
            ["make", "lint"],
            cwd=project,
            env=environment_without_virtualenv(),
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        module.unlink()
    assert result.returncode != 0
    assert "badly_formatted.py" in result.stdout + result.stderr


# A revision that builds an index on a table in use, blocking its writes for the build.
BLOCKING_REVISION = """\
from alembic import op

revision = "lintprobe"
down_revision = "{head}"


def upgrade() -> None:
{reviewed}    op.execute("CREATE INDEX ix_lint_probe ON lint_probe (id)")


def downgrade() -> None:
    pass
"""
REVIEWED = """\
    from {package}.infrastructure.online_migrations import squawk_ignore

    squawk_ignore("require-concurrent-index-creation", reason="the table is empty")
"""


def make_lint(project: Path) -> subprocess.CompletedProcess[str]:
    """Run `make lint` in `project` without a database, as on a laptop or in CI's lint step."""
    environment = {
        name: value
        for name, value in environment_without_virtualenv().items()
        if not name.startswith(("DATABASE_", "DATABASES__"))
    }
    return subprocess.run(
        ["make", "lint"], cwd=project, env=environment, capture_output=True, text=True, check=False
    )


def test_make_lint_checks_the_migrations_sql_and_lets_a_reviewed_exception_pass(
    project: Path,
) -> None:
    heads = run([str(project / ".venv" / "bin" / "alembic"), "heads"], cwd=project).stdout
    head = heads.split()[0]
    package = next((project / "src").iterdir()).name
    revision = project / "migrations" / "versions" / "2999_01_01_0000-lintprobe_index.py"
    try:
        revision.write_text(BLOCKING_REVISION.format(head=head, reviewed=""))
        flagged = make_lint(project)
        revision.write_text(
            BLOCKING_REVISION.format(head=head, reviewed=REVIEWED.format(package=package))
        )
        reviewed = make_lint(project)
    finally:
        revision.unlink()
    assert flagged.returncode != 0
    assert "require-concurrent-index-creation" in flagged.stdout + flagged.stderr
    assert "lintprobe_index" in flagged.stdout + flagged.stderr
    assert reviewed.returncode == 0, reviewed.stdout + reviewed.stderr


def test_pre_commit_runs_ruff_and_mypy(pre_commit_config: dict[str, Any], project: Path) -> None:
    ruff = hooks_of(pre_commit_config, RUFF_HOOKS)
    assert set(ruff) == {"ruff-check", "ruff-format"}
    assert ruff["ruff-check"]["args"] == ["--fix"]
    (mypy,) = hooks_of(pre_commit_config, "local").values()
    assert mypy["id"] == "mypy"
    assert mypy["language"] == "system"
    # The whole project, as `make typecheck` checks it: a change to one file
    # can break the types of another.
    assert mypy["pass_filenames"] is False
    assert [mypy["entry"]] == make_targets(project)["typecheck"]


def test_ruff_hooks_are_pinned_to_the_locked_ruff(pre_commit_config: dict[str, Any]) -> None:
    (ruff,) = [entry for entry in pre_commit_config["repos"] if entry["repo"] == RUFF_HOOKS]
    lock = tomllib.loads((TEMPLATE_DIR / "uv.lock").read_text())
    (locked,) = [package["version"] for package in lock["package"] if package["name"] == "ruff"]
    assert ruff["rev"] == f"v{locked}"


def test_pre_commit_accepts_the_configuration(project: Path) -> None:
    run([tool("pre-commit"), "validate-config", str(PRE_COMMIT_CONFIG)], cwd=project)


def test_the_local_mypy_hook_runs(
    pre_commit_config: dict[str, Any], project: Path, tmp_path: Path
) -> None:
    # Only the local hooks: the ruff hooks would be cloned from GitHub.
    local = {"repos": [entry for entry in pre_commit_config["repos"] if entry["repo"] == "local"]}
    config = tmp_path / "local-hooks.yaml"
    config.write_text(yaml.safe_dump(local))
    env = environment_without_virtualenv() | {"PRE_COMMIT_HOME": str(tmp_path / "cache")}
    if not (project / ".git").exists():
        run(["git", "init", "--quiet"], cwd=project)
    run(["git", "add", "--all"], cwd=project)
    result = run(
        [tool("pre-commit"), "run", "--all-files", "--config", str(config)], cwd=project, env=env
    )
    assert re.search(r"^mypy\.+Passed$", result.stdout, re.MULTILINE), result.stdout
