"""Steps for migrations that change a table the running service uses (docs/online-migrations.md).

Revisions import the module as `online`:

    from {{ cookiecutter.package_name }}.infrastructure import online_migrations as online

Each takes at most a brief lock on a busy table, so that migrating while the
service answers never queues its requests for long.
"""

from collections.abc import Sequence
from typing import Final

from alembic import op
from sqlalchemy import text

# Rows one batch of a backfill changes: small enough to hold each row lock briefly.
DEFAULT_BATCH_SIZE: Final = 5000


def squawk_ignore(*rules: str, reason: str) -> None:
    """Let the next statement of this revision pass squawk's `rules`: a reviewed exception.

    The comment appears only in the SQL squawk reads (`make lint`); the reason is for
    the reviewer, in the revision itself.
    """
    if not rules or not reason.strip():
        raise ValueError("squawk_ignore needs the rules to ignore and the reason they may be")
    output = op.get_context().impl.output_buffer
    if op.get_context().as_sql and output is not None:
        # Right above the statement: squawk ignores a comment separated by a blank line.
        output.write(f"-- squawk-ignore {', '.join(rules)}\n")


def squawk_ignore_revision(*rules: str, reason: str) -> None:
    """Let every statement of this revision pass squawk's `rules`: a reviewed exception."""
    if not rules or not reason.strip():
        raise ValueError("squawk_ignore_revision needs the rules to ignore and the reason")
    output = op.get_context().impl.output_buffer
    if op.get_context().as_sql and output is not None:
        # squawk reads one file per revision; this comment covers all of it.
        output.write(f"-- squawk-ignore-file {', '.join(rules)}\n")


def create_index_concurrently(
    index_name: str, table_name: str, columns: Sequence[str], *, unique: bool = False
) -> None:
    """Build an index without blocking writes, outside the revision's transaction.

    CONCURRENTLY cannot run in a transaction: give it a revision of its own. A failed
    build leaves an INVALID index behind, so an earlier attempt's index is dropped first.
    """
    with op.get_context().autocommit_block():
        op.drop_index(
            index_name, table_name=table_name, postgresql_concurrently=True, if_exists=True
        )
        squawk_ignore("prefer-robust-stmts", reason="the line above drops a half-built index")
        op.create_index(
            index_name, table_name, list(columns), unique=unique, postgresql_concurrently=True
        )


def drop_index_concurrently(index_name: str, table_name: str) -> None:
    """Drop an index without blocking reads or writes, outside the revision's transaction."""
    with op.get_context().autocommit_block():
        op.drop_index(
            index_name, table_name=table_name, postgresql_concurrently=True, if_exists=True
        )


def add_check_not_valid(constraint_name: str, table_name: str, condition: str) -> None:
    """Add a CHECK that new rows must pass at once, without reading the existing ones.

    Validate it in a later revision with validate_constraint: that reads the table
    under a lock that lets reads and writes go on.
    """
    op.execute(
        text(
            f"ALTER TABLE {_quote(table_name)} ADD CONSTRAINT {_quote(constraint_name)} "
            f"CHECK ({condition}) NOT VALID"
        )
    )


def add_foreign_key_not_valid(
    constraint_name: str,
    table_name: str,
    columns: Sequence[str],
    referred_table: str,
    referred_columns: Sequence[str],
    *,
    ondelete: str | None = None,
) -> None:
    """Add a foreign key that new rows must satisfy, without checking the existing ones."""
    on_delete = f" ON DELETE {ondelete}" if ondelete else ""
    op.execute(
        text(
            f"ALTER TABLE {_quote(table_name)} ADD CONSTRAINT {_quote(constraint_name)} "
            f"FOREIGN KEY ({_columns(columns)}) REFERENCES {_quote(referred_table)} "
            f"({_columns(referred_columns)}){on_delete} NOT VALID"
        )
    )


def validate_constraint(constraint_name: str, table_name: str) -> None:
    """Check the existing rows against a NOT VALID constraint, letting reads and writes go on."""
    op.execute(
        text(f"ALTER TABLE {_quote(table_name)} VALIDATE CONSTRAINT {_quote(constraint_name)}")
    )


def set_not_null_after_check(table_name: str, column_name: str, constraint_name: str) -> None:
    """Make a column NOT NULL using a validated CHECK, so PostgreSQL need not scan the table.

    The contract step of expand/contract: run it once add_check_not_valid(constraint_name,
    table_name, "<column> IS NOT NULL") has been validated in an earlier revision.
    """
    table, column = _quote(table_name), _quote(column_name)
    squawk_ignore(
        "adding-not-nullable-field",
        reason="the validated CHECK proves the column has no NULL: PostgreSQL skips the scan",
    )
    op.execute(text(f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL"))
    squawk_ignore("ban-drop-constraint", reason="NOT NULL now guarantees what the CHECK did")
    op.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {_quote(constraint_name)}"))


def backfill_in_batches(
    table_name: str, assignments: str, pending: str, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> int:
    """Run `UPDATE table SET assignments WHERE pending` a batch at a time, each committed.

    `pending` must stop matching a row once it is updated (for example
    `new_column IS NULL`), or the backfill never ends. Returns the rows updated.
    """
    table = _quote(table_name)
    # The fragments are the migration author's SQL, as op.execute would take them.
    statement = text(
        f"UPDATE {table} SET {assignments} WHERE ctid = ANY (ARRAY("  # noqa: S608
        f"SELECT ctid FROM {table} WHERE {pending} LIMIT :batch_size FOR UPDATE))"
    )
    migration = op.get_context()
    if migration.as_sql:
        # The SQL for review shows one batch; online, the loop runs until none is left.
        op.execute(statement.bindparams(batch_size=batch_size))
        return 0
    updated = 0
    with migration.autocommit_block():
        while True:
            count = op.get_bind().execute(statement, {"batch_size": batch_size}).rowcount
            updated += count
            if count == 0:
                return updated


def _quote(name: str) -> str:
    return str(op.get_context().dialect.identifier_preparer.quote(name))


def _columns(names: Sequence[str]) -> str:
    return ", ".join(_quote(name) for name in names)
