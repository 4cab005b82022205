"""A service's life: generated, grown by its team by the docs' steps, then updated to a release.

The team works as docs/development.md tells it to (tests/fixtures/first_domain is its
`orders` domain, whose orders refer to items); the release (tests/fixtures/simulated_release)
touches what a team touches too: a setting and its variable, a route, a runtime dependency,
the reference docs and a test fixture. The update must merge with nothing left to resolve, and
the merged project must pass its own gates.
"""

import json
import re
import shutil
from pathlib import Path

import pytest

from tests import test_updates
from tests.baking import run
from tests.test_first_domain import (
    FIXTURES,
    PACKAGE,
    code_blocks,
    docs_section,
    insert_after,
    passes_the_gates_and_the_suite,
    replace_line,
    write_migration,
)
from tests.test_updates import commit, cruft_create, git, release

pytestmark = pytest.mark.slow

RELEASE_PATCH = Path(__file__).parent / "fixtures" / "simulated_release" / "release.patch"
TEAM_DEPENDENCY = "python-slugify"  # pure Python and small: any would do
TEAM_RULES = ["C4", "DTZ", "PERF"]
TEAM_INTRO = "Orders, as the shop's customers place them.\n"

# The fixtures of the update tests: the environment, and the template in a git repository.
env = test_updates.env
template = test_updates.template


def generate(template: Path, tmp_path: Path, env: dict[str, str]) -> Path:
    """Generate the default project with cruft, install it and commit it."""
    project = cruft_create(template, tmp_path / "out", env)
    git(project, env, "init", "--quiet", "--initial-branch=main")
    run(["uv", "sync", "--quiet"], cwd=project, env=env)
    commit(project, env, "Generate from template")
    return project


def add_the_orders_domain(project: Path, env: dict[str, str]) -> None:
    """Steps 1-7 of "Adding a domain": the package, its registration, its migration, its tests."""
    steps = docs_section(project, "Adding a domain")
    (registration, _) = code_blocks(steps, "python")
    (commands,) = code_blocks(steps, "sh")
    domains = project / "src" / PACKAGE / "domains.py"
    shutil.copytree(
        FIXTURES, project, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    imports = [line for line in registration if line.startswith(("from ", "import "))]
    (routers,) = [line for line in registration if line.startswith("ROUTERS")]
    insert_after(domains, f"from {PACKAGE}.items.router import", imports)
    replace_line(domains, "ROUTERS", routers)
    run(["make", "format"], cwd=project, env=env)
    written = write_migration(project, env, commands)
    assert "fk_orders_item_id_items" in written, written


def add_an_own_setting(project: Path) -> str:
    """Step 8: a field in ServiceSettings and its variable in .env.example; return the variable."""
    (_, own_setting) = code_blocks(docs_section(project, "Adding a domain"), "python")
    imports = [line for line in own_setting if line.startswith(("from ", "import "))]
    (field,) = [line for line in own_setting if line not in imports]
    settings = project / "src" / PACKAGE / "settings.py"
    insert_after(settings, "from pydantic_settings import", imports)
    insert_after(settings, '"""The variables your domains read', [field])
    variable = field.split(":", 1)[0].upper()
    with (project / ".env.example").open("a") as env_example:
        env_example.write(f"{variable}=100\n")
    return variable


def add_a_runtime_dependency(project: Path, env: dict[str, str]) -> None:
    """`uv add`, as a team adds a library; it appends to the dependencies below the template's."""
    run(["uv", "add", "--quiet", TEAM_DEPENDENCY], cwd=project, env=env)


def write_an_own_introduction(project: Path) -> None:
    """Replace the README's introduction, up to its first heading, with the team's."""
    readme = project / "README.md"
    title, rest = readme.read_text().split("\n", 1)
    readme.write_text(f"{title}\n\n{TEAM_INTRO}\n##{rest.split('##', 1)[1]}")


def switch_on_more_lint_rules(project: Path) -> None:
    """A ruff.toml of the team's own that extends pyproject.toml's rules.

    The template ships no extension point for lint rules; ruff's own `extend` is one that
    needs no edit of a template-owned file.
    """
    (project / "ruff.toml").write_text(
        f'extend = "pyproject.toml"\n\n[lint]\nextend-select = {json.dumps(TEAM_RULES)}\n'
    )


def release_the_next_version(template: Path, env: dict[str, str]) -> str:
    """Apply the simulated release to the template repository and release it."""
    git(template, env, "apply", str(RELEASE_PATCH))
    return release(template, env)


def test_a_teams_project_takes_a_release_that_touches_every_registration_point(
    template: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    project = generate(template, tmp_path, env)
    add_the_orders_domain(project, env)
    variable = add_an_own_setting(project)
    add_a_runtime_dependency(project, env)
    write_an_own_introduction(project)
    switch_on_more_lint_rules(project)
    run(["make", "format"], cwd=project, env=env)
    commit(project, env, "Take orders")
    team_pyproject = (project / "pyproject.toml").read_text()

    version = release_the_next_version(template, env)
    result = run(["uv", "run", "scripts/update_template.py"], cwd=project, env=env)

    verdict = result.stdout.splitlines()[0]
    assert f"-> {version} (" in verdict and "nothing to resolve" in verdict, result.stdout
    assert "Conflicts" not in result.stdout and "Rejected" not in result.stdout, result.stdout
    assert "Skipped" not in result.stdout, result.stdout
    assert not list(project.rglob("*.rej"))
    assert git(project, env, "diff", "--name-only", "--diff-filter=U") == ""
    # The team's work is all there...
    pyproject = (project / "pyproject.toml").read_text()
    (team_line,) = [line for line in team_pyproject.splitlines() if TEAM_DEPENDENCY in line]
    assert team_line in pyproject
    assert (project / "README.md").read_text().startswith(f"# Orders Service\n\n{TEAM_INTRO}")
    assert f"{variable}=100\n" in (project / ".env.example").read_text()
    assert "orders_router" in (project / "src" / PACKAGE / "domains.py").read_text()
    # ...beside the release's, rendered for this project.
    assert '"python-dateutil>=2.9"' in pyproject
    assert "SERVICE_ENVIRONMENT" in (project / "docs" / "configuration.md").read_text()
    assert "/health/about" in (project / "docs" / "operations.md").read_text()
    assert 'service_environment="test"' in (project / "tests" / "conftest.py").read_text()

    # The merged project passes its gates; uv.lock is the team's, so sync locks the new dependency.
    run(["uv", "sync", "--quiet"], cwd=project, env=env)
    output = passes_the_gates_and_the_suite(project, env, verbosity="-v")
    # Among them the team's tests and the release's, on the release's fixture.
    assert re.search(r"PASSED tests/orders/\S+", output), output
    assert "PASSED tests/test_health.py::test_about_names_the_environment" in output
