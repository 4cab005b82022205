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
