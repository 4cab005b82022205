"""Ending a request's session: its transaction and its connection in one greenlet switch."""

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session


async def end_session(session: AsyncSession, *, commit: bool) -> None:
    """Commit (or roll back) and close `session`, and see it through even if cancelled."""
    # One switch into SQLAlchemy's greenlet rather than one for the transaction and
    # one for the close; in a task of its own, so that a cancelled request cannot
    # abandon it halfway and return the connection mid-transaction.
    task = asyncio.ensure_future(session.run_sync(_end, commit=commit))
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as error:
            cancelled = error
    task.result()
    if cancelled is not None:
        raise cancelled


def _end(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
