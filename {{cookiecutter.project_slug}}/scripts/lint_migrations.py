"""Check the SQL of every migration with squawk, one file per revision, without a database.

    uv run scripts/lint_migrations.py [squawk options]

Alembic writes each revision's upgrade as SQL (offline mode, `alembic upgrade
--sql`), as PostgreSQL would run it; squawk reads it for statements that lock
tables for long or cannot run online. Its settings and the rules turned off,
with the reasons, are in .squawk.toml. Exit code: squawk's (0 when nothing is found).
"""

import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from {{ cookiecutter.package_name }}.infrastructure.migrations import find_alembic_ini

PROJECT = Path(__file__).resolve().parents[1]


def revision_sql(config: Config, script: ScriptDirectory) -> dict[str, str]:
    """Each revision's upgrade SQL, named after its file, oldest first."""
    written: dict[str, str] = {}
    for revision in reversed(list(script.walk_revisions())):
        if isinstance(revision.down_revision, tuple):
            # A merge revision has nothing of its own to check.
            continue
        output = io.StringIO()
        config.output_buffer = output
        start = revision.down_revision
        target = revision.revision if start is None else f"{start}:{revision.revision}"
        command.upgrade(config, target, sql=True)
        written[Path(revision.path).stem] = output.getvalue()
    return written


def main(squawk_options: list[str]) -> int:
    """Write each revision's SQL to a temporary folder and run squawk over it."""
    # The project's alembic.ini, or the one $ALEMBIC_CONFIG names.
    config = Config(find_alembic_ini(), stdout=io.StringIO())
    # Alembic's progress lines would bury squawk's report.
    config.attributes["configure_logger"] = False
    squawk = shutil.which("squawk")
    if squawk is None:
        print("error: squawk is not installed; run `uv sync`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="migrations-sql-") as folder:
        paths = []
        for name, sql in revision_sql(config, ScriptDirectory.from_config(config)).items():
            path = Path(folder) / f"{name}.sql"
            path.write_text(sql)
            paths.append(str(path))
        if not paths:
            return 0
        config_file = ["--config", str(PROJECT / ".squawk.toml")]
        return subprocess.run(
            [squawk, *config_file, *squawk_options, *paths], check=False
        ).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
