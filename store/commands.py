"""Commands answered 202 (api/commands.py), kept until their outcome is known so a
look-up can send one again: Temporal holds an update it admitted but no worker accepted
in memory only, and drops it when the workflow task it waits for times out or the server
restarts. The same update id makes sending it again safe (Temporal applies an id once)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from store.database import Database, utcnow
from store.tables import PendingCommand


@dataclass(frozen=True)
class Pending:
    run_id: str | None
    name: str
    argument: dict[str, Any]
    created_at: datetime


# a command nobody looked up for this long is forgotten (its outcome, if any, stays in
# the workflow's history, where the look-up finds it)
KEEP = timedelta(days=30)


class CommandRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def remember(
        self,
        workflow_id: str,
        update_id: str,
        name: str,
        argument: dict[str, Any],
        run_id: str | None,
    ) -> None:
        now = utcnow()

        def write(session: Session) -> None:
            session.execute(delete(PendingCommand).where(PendingCommand.created_at < now - KEEP))
            session.execute(
                self.db.insert(PendingCommand)
                .values(
                    workflow_id=workflow_id,
                    update_id=update_id,
                    run_id=run_id,
                    name=name,
                    argument=argument,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["workflow_id", "update_id"])
            )

        await self.db.write(write)

    async def find(self, workflow_id: str, update_id: str) -> Pending | None:
        """A pending command, or None."""
        async with self.db.sessions() as session:
            row = await session.get(PendingCommand, (workflow_id, update_id))
            return Pending(row.run_id, row.name, row.argument, row.created_at) if row else None

    async def forget(self, workflow_id: str, update_id: str) -> None:
        def write(session: Session) -> None:
            session.execute(
                delete(PendingCommand).where(
                    PendingCommand.workflow_id == workflow_id,
                    PendingCommand.update_id == update_id,
                )
            )

        await self.db.write(write)
