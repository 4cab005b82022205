"""A team's first domain, and deleting the example, by the generated docs' steps, keep the suite green.

The domain (tests/fixtures/first_domain: `orders`, whose orders refer to items)
is real code; where it goes, the lines that register it and the commands that
write its migration come from the "Adding a domain" section of docs/development.md,
as typed; the deletion follows its "Deleting the example" section the same way.
"""

import re
import shutil
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.baking import GENERATED_SUITE, bake_into, environment_without_virtualenv, run

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "first_domain"
PACKAGE = "orders_service"  # the default project's; the fixtures import from it
DEV_DATABASE = f"{PACKAGE}_dev"  # the database the docs' commands create and use


def docs_section(project: Path, title: str) -> str:
    """The section `## title` of docs/development.md."""
    text = (project / "docs" / "development.md").read_text()
    section = text.split(f"\n## {title}\n", 1)[1]
    return section.split("\n## ", 1)[0]


def code_blocks(section: str, language: str) -> list[list[str]]:
    """The lines of each fenced `language` block of `section`, without their indentation."""
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    return [[line.strip() for line in block.splitlines() if line.strip()] for block in blocks]


def raw_code_blocks(section: str, language: str) -> list[str]:
    """The text of each fenced `language` block of `section`, as indented in the docs."""
    return re.findall(rf"```{language}\n(.*?)^\s*```", section, flags=re.DOTALL | re.MULTILINE)


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


def replace_line(path: Path, anchor: str, line: str) -> None:
    """Replace the one line of `path` that starts with `anchor` by `line`."""
    text = path.read_text().splitlines(keepends=True)
    (index,) = [n for n, old in enumerate(text) if old.startswith(anchor)]
    text[index] = f"{line}\n"
    path.write_text("".join(text))


def passes_the_gates(project: Path, env: dict[str, str]) -> None:
    """The project's own lint and type gates, as CI runs them."""
    run(["make", "lint"], cwd=project, env=env)
    run(["uv", "run", "--no-sync", "mypy"], cwd=project, env=env)


def collected_tests(project: Path, env: dict[str, str], *paths: str) -> str:
    """What pytest collects in the project (under `paths`, else everywhere), without running it."""
    result = run(
        ["uv", "run", "--no-sync", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"]
        + list(paths),
        cwd=project,
        env=env,
    )
    return result.stdout


def passes_the_gates_and_the_suite(
    project: Path, env: dict[str, str], verbosity: str = "-q"
) -> str:
    """The project's own gates, as CI runs them, and the generated suite but its slow tier, green.

    Returns pytest's output, one line per test with verbosity="-v".
    """
    passes_the_gates(project, env)
    # The floods and real servers (slow) prove the template's machinery, which a team's edits
    # leave alone; the full suite runs in test_generation.py for every offered Python.
    result = run(
        [*GENERATED_SUITE, verbosity, "-m", "not slow"],
        cwd=project,
        env=env,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    assert "skipped" not in summary, summary
    return result.stdout


def write_migration(project: Path, env: dict[str, str], commands: list[str]) -> str:
    """Run the docs' migration commands on a database of the test's own; return the new file."""
    versions = project / "migrations" / "versions"
    before = set(versions.glob("*.py"))
    database = f"{DEV_DATABASE}_{uuid.uuid4().hex[:8]}"
    script = "\n".join(["set -eu", *commands]).replace(DEV_DATABASE, database)
    assert database in script, "the docs' commands no longer name the development database"
    try:
        run(["bash", "-c", script], cwd=project, env=env)
    finally:
        drop_database(database)
    (migration,) = set(versions.glob("*.py")) - before
    return migration.read_text()


def test_a_first_domain_with_a_foreign_key_and_its_migration_passes_the_gates(
    tmp_path: Path,
) -> None:
    # The suite, green after these same steps, runs in test_simulated_life.py, once the
    # project has also taken a release: one run of it proves both.
    project = bake_into(tmp_path / "out")
    env = environment_without_virtualenv()
    run(["uv", "sync", "--quiet"], cwd=project, env=env)
    steps = docs_section(project, "Adding a domain")
    (registration, own_setting) = code_blocks(steps, "python")
    (commands,) = code_blocks(steps, "sh")
    package = project / "src" / PACKAGE

    # Steps 1-4 and 7: the domain's package and its tests.
    shutil.copytree(
        FIXTURES, project, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    # Step 5: the router in domains.py, then `make format`.
    imports = [line for line in registration if line.startswith(("from ", "import "))]
    (routers,) = [line for line in registration if line.startswith("ROUTERS")]
    insert_after(package / "domains.py", f"from {PACKAGE}.items.router import", imports)
    replace_line(package / "domains.py", "ROUTERS", routers)
    # Step 8: a setting of the team's own, below ServiceSettings' docstring.
    setting_imports = [line for line in own_setting if line.startswith(("from ", "import "))]
    (field,) = [line for line in own_setting if line not in setting_imports]
    insert_after(package / "settings.py", "from pydantic_settings import", setting_imports)
    insert_after(package / "settings.py", '"""The variables your domains read', [field])
    run(["make", "format"], cwd=project, env=env)

    # Step 6: the migration, on a database of this test's own.
    written = write_migration(project, env, commands)
    assert 'op.create_table(\n        "orders"' in written
    assert "fk_orders_item_id_items" in written

    # The new domain needs no contract edit; reaching past the surface breaks one.
    leak = package / "orders" / "leak.py"
    leak.write_text(f'"""Past the surface."""\n\nimport {PACKAGE}.infrastructure.database\n')
    refused = subprocess.run(
        ["uv", "run", "--no-sync", "lint-imports", "--no-logo"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    leak.unlink()
    assert refused.returncode != 0, refused.stdout
    assert f"{PACKAGE}.orders.leak -> {PACKAGE}.infrastructure.database" in refused.stdout

    # The team's variable, set wrong, stops start-up with one line naming it.
    variable = field.split(":", 1)[0].upper()
    bad = subprocess.run(
        ["uv", "run", "--no-sync", "orders-service", "serve"],
        cwd=project,
        env={**env, variable: "many"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2, bad.stderr
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith(f"error: {variable}='many': "), line

    passes_the_gates(project, env)
    # The domain's own tests are collected with the rest.
    collected = collected_tests(project, env, "tests/orders")
    assert "4 tests collected" in collected, collected


def test_deleting_the_example_by_the_docs_passes_the_gates(tmp_path: Path) -> None:
    # No template-owned file imports the example (test_generation.py holds the template to
    # that), so the gates and a collection of every test show that nothing refers to it.
    project = bake_into(tmp_path / "out")
    env = environment_without_virtualenv()
    run(["uv", "sync", "--quiet"], cwd=project, env=env)
    steps = docs_section(project, "Deleting the example")
    ((routers,), _) = code_blocks(steps, "python")
    (new_revision,) = code_blocks(steps, "sh")
    package = project / "src" / PACKAGE

    # Step 1: the example's package and tests.
    shutil.rmtree(package / "items")
    shutil.rmtree(project / "tests" / "items")
    # Step 2: its registration.
    domains = package / "domains.py"
    domains.write_text(
        "".join(
            line
            for line in domains.read_text().splitlines(keepends=True)
            if f"{PACKAGE}.items" not in line
        )
    )
    replace_line(domains, "ROUTERS", routers)
    # Step 3: a migration that runs the example's backwards, the history kept.
    versions = project / "migrations" / "versions"
    before = set(versions.glob("*.py"))
    run(["bash", "-c", " && ".join(new_revision)], cwd=project, env=env)
    (migration,) = set(versions.glob("*.py")) - before
    block = textwrap.dedent(raw_code_blocks(steps, "python")[1])
    imports = [line for line in block.splitlines() if line.startswith(("from ", "import "))]
    rest = "\n".join(line for line in block.splitlines() if line not in imports)
    header = migration.read_text().split("\ndef upgrade()", 1)[0]
    insert = "from collections.abc import Sequence\n"
    header = header.replace(insert, insert + "\n".join(imports) + "\n", 1)
    migration.write_text(f"{header}\n{rest}")
    run(["make", "format"], cwd=project, env=env)
    database = f"{DEV_DATABASE}_{uuid.uuid4().hex[:8]}"
    run(["createdb", "-h", "127.0.0.1", "-U", "postgres", database], cwd=project, env=env)
    try:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
        upgrade = ["uv", "run", "--no-sync", "orders-service", "db", "upgrade"]
        run(upgrade, cwd=project, env={**env, "DATABASE_URL": url})
        query = "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'"
        tables = run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-tAc", query],
            cwd=project,
            env=env,
        )
        assert tables.stdout.strip() == "alembic_version", tables.stdout
    finally:
        drop_database(database)

    # Step 4: nothing of the template's refers to the example any more.
    passes_the_gates(project, env)
    collected = collected_tests(project, env)
    assert re.search(r"\d+ tests collected", collected), collected
    assert "tests/items" not in collected
