"""The project's own migration history: one head, every step reversible, the models matched.

These walk whatever revisions migrations/versions holds, the team's included.
Hand-written rather than pytest-alembic's: its fixtures hand env.py a connection,
and ours opens its own, with the migrator lock and timeouts that are under test.
"""

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.conftest import PROJECT_ROOT


def project_config(database_url: str) -> Config:
    """Alembic's configuration for the project's history, on `database_url`."""
    config = Config(PROJECT_ROOT / "alembic.ini")
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def test_the_history_has_a_single_head() -> None:
    heads = ScriptDirectory.from_config(project_config("unused")).get_heads()
    assert len(heads) == 1, f"merge the heads {heads}: `uv run alembic merge heads`"


def test_every_revision_upgrades_downgrades_and_upgrades_again(empty_database: str) -> None:
    config = project_config(empty_database)
    script = ScriptDirectory.from_config(config)
    # From the first revision to the last, each step up, down and up again (a stairway):
    # a downgrade that leaves something behind fails the second upgrade.
    for revision in reversed(list(script.walk_revisions())):
        command.upgrade(config, revision.revision)
        command.downgrade(config, "-1")
        command.upgrade(config, revision.revision)
    command.downgrade(config, "base")
    command.upgrade(config, "head")


def test_the_models_match_the_migrations(database_url: str) -> None:
    # The session's database is at head; autogenerate finds nothing to add.
    command.check(project_config(database_url))
