"""The online recipes (online_migrations) apply on a table with rows, and pass squawk."""

import asyncio
import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT
from tests.migrations.probe import ProbeHistory, revisions_of, scalar, upgrade


def expand_and_contract(probe: ProbeHistory) -> None:
    """A NOT NULL column added in steps, backfilled in batches, then indexed concurrently."""
    probe.add(
        "p1",
        """
        op.execute("CREATE TABLE probe (id bigint PRIMARY KEY, note text NOT NULL)")
        op.execute("INSERT INTO probe SELECT g, 'row ' || g FROM generate_series(1, 50) AS g")
        """,
    )
    probe.add(
        "p2",
        """
        op.add_column("probe", sa.Column("label", sa.Text()))
        online.add_check_not_valid("ck_probe_label_not_null", "probe", "label IS NOT NULL")
        """,
    )
    backfill = 'online.backfill_in_batches("probe", "label = note", "label IS NULL", batch_size=7)'
    probe.add("p3", backfill)
    probe.add(
        "p4",
        """
        online.validate_constraint("ck_probe_label_not_null", "probe")
        online.set_not_null_after_check("probe", "label", "ck_probe_label_not_null")
        """,
    )
    probe.add("p5", 'online.create_index_concurrently("ix_probe_label", "probe", ["label"])')


def test_the_recipes_apply_on_a_table_with_rows(probe: ProbeHistory, empty_database: str) -> None:
    expand_and_contract(probe)
    finished = upgrade(probe, empty_database)
    assert finished.code == 0, finished.stderr
    assert asyncio.run(revisions_of(empty_database)) == ["p5"]
    unlabelled = "SELECT count(*) FROM probe WHERE label IS DISTINCT FROM note"
    assert asyncio.run(scalar(empty_database, unlabelled)) == 0
    nullable = (
        "SELECT is_nullable FROM information_schema.columns "
        "WHERE table_name = 'probe' AND column_name = 'label'"
    )
    assert asyncio.run(scalar(empty_database, nullable)) == "NO"
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_probe_label'::regclass"
    assert asyncio.run(scalar(empty_database, valid)) is True


def test_the_recipes_pass_squawk(probe: ProbeHistory) -> None:
    expand_and_contract(probe)
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "lint_migrations.py")],
        env={**os.environ, "ALEMBIC_CONFIG": str(probe.alembic_ini)},
        cwd=probe.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Found 0 issues in 5 files" in result.stdout
