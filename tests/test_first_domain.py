"""A team's first domain, added by the generated docs' steps, leaves the generated suite green.

The domain (tests/fixtures/first_domain: `orders`, whose orders refer to items)
is real code; where it goes, the lines that register it and the commands that
write its migration come from the "Adding a domain" section of docs/development.md, as typed.
"""

import re
import shutil
import subprocess
import uuid
from pathlib import Path

from tests.baking import bake_into, environment_without_virtualenv, run

FIXTURES = Path(__file__).parent / "fixtures" / "first_domain"
PACKAGE = "orders_service"  # the default project's; the fixtures import from it
DEV_DATABASE = f"{PACKAGE}_dev"  # the database the docs' commands create and use


def adding_a_domain(project: Path) -> str:
    """The "Adding a domain" section of the development docs."""
    readme = (project / "docs" / "development.md").read_text()
    section = readme.split("\n## Adding a domain\n", 1)[1]
    return section.split("\n## ", 1)[0]


def code_blocks(section: str, language: str) -> list[list[str]]:
    """The lines of each fenced `language` block of `section`, without their indentation."""
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    return [[line.strip() for line in block.splitlines() if line.strip()] for block in blocks]


def insert_after(path: Path, anchor: str, lines: list[str]) -> None:
    """Insert `lines` after the one line of `path` that starts with `anchor`, as indented."""
    text = path.read_text().splitlines(keepends=True)
    (index,) = [n for n, line in enumerate(text) if line.strip().startswith(anchor)]
    indent = text[index][: len(text[index]) - len(text[index].lstrip())]
    text[index + 1 : index + 1] = [f"{indent}{line}\n" for line in lines]
    path.write_text("".join(text))


def drop_database(name: str) -> None:
    """Drop the docs' development database, if the steps created it."""
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", name],
        check=False,
        capture_output=True,
    )


def test_a_first_domain_with_a_foreign_key_and_its_migration_keeps_the_suite_green(
    tmp_path: Path,
) -> None:
    project = bake_into(tmp_path / "out")
    env = environment_without_virtualenv()
    run(["uv", "sync", "--quiet"], cwd=project, env=env)
    steps = adding_a_domain(project)
    (registration, env_import) = code_blocks(steps, "python")
    (commands,) = code_blocks(steps, "sh")

    # Steps 1-4 and 7: the domain's package and its tests.
    shutil.copytree(
        FIXTURES, project, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    main = project / "src" / PACKAGE / "main.py"
    imports = [line for line in registration if line.startswith(("from ", "import "))]
    calls = [line for line in registration if line.startswith("app.")]
    assert imports and calls, registration
    insert_after(main, f"from {PACKAGE}.items.router import", imports)
    insert_after(main, "app.include_router(items_router)", calls)
    # Step 5: the models for Alembic, then `make format`.
    env_py = project / "migrations" / "env.py"
    insert_after(env_py, f"from {PACKAGE}.items import models", env_import)
    run(["make", "format"], cwd=project, env=env)

    # Step 6: the migration, on a database of this test's own.
    database = f"{DEV_DATABASE}_{uuid.uuid4().hex[:8]}"
    script = "\n".join(["set -eu", *commands]).replace(DEV_DATABASE, database)
    assert database in script, "the docs' commands no longer name the development database"
    try:
        run(["bash", "-c", script], cwd=project, env=env)
    finally:
        drop_database(database)
    (migration,) = (project / "migrations" / "versions").glob("*_create_orders.py")
    written = migration.read_text()
    assert 'op.create_table(\n        "orders"' in written
    assert "fk_orders_item_id_items" in written

    # The project's own gates, as CI runs them.
    run(["uv", "run", "--no-sync", "ruff", "check"], cwd=project, env=env)
    run(["uv", "run", "--no-sync", "ruff", "format", "--check"], cwd=project, env=env)
    run(["uv", "run", "--no-sync", "mypy"], cwd=project, env=env)
    result = run(
        ["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=env
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    assert "skipped" not in summary, summary
    # The domain's own tests ran with the rest.
    collected = run(
        [
            "uv",
            "run",
            "--no-sync",
            "pytest",
            "-q",
            "--collect-only",
            "-p",
            "no:cacheprovider",
            "tests/orders",
        ],
        cwd=project,
        env=env,
    )
    assert "4 tests collected" in collected.stdout, collected.stdout
