"""The deadline sweep inside the server process, for the embedded default.

With the in-memory channel layer only code in the server's own process can
reach its open websockets: a sweep in another process (cron, or
`auto_cancel_overdue --every`) changes the database but no dashboard hears of it
until its 30 s catch-up. `make run` therefore sets `EMBEDDED_SWEEP_SECONDS`, and
`EmbeddedSweep` (wrapped around the ASGI application in guitara/asgi.py) starts
one asyncio task on the server's event loop the first time the application is
called. Every N seconds it runs the workflow's sweep in a worker thread
(`sync_to_async`, thread-sensitive, like Django's own sync code); the workflow
publishes on commit through `async_to_sync`, which hands the sends back to this
same loop, so they go through the very in-memory layer instance the consumers
listen on.

Several processes doing this at once is safe (the sweep claims rows with
`skip_locked`); with PostgreSQL + Redis the cron line stays the way to run it.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from . import workflow

logger = logging.getLogger("scheduling.sweep")


def sweep_once() -> workflow.SweepCounts:
    close_old_connections()
    try:
        counts = workflow.sweep()
    finally:
        close_old_connections()
    if counts.timed_out or counts.no_available_therapist:
        logger.info("embedded sweep: %s", counts.as_dict())
    return counts


async def run_every(seconds: float) -> None:
    """Sweep every `seconds` until cancelled; a failed pass is logged, never fatal."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await sync_to_async(sweep_once, thread_sensitive=True)()
        except Exception:  # the next pass tries again (a locked or unreachable database, say)
            logger.exception("embedded sweep failed; trying again in %s s", seconds)


class EmbeddedSweep:
    """ASGI middleware: starts `run_every(seconds)` on the server's loop on first use."""

    def __init__(self, app, seconds: float):
        self.app = app
        self.seconds = seconds
        self.task: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        if self.task is None and self.seconds > 0:
            self.task = asyncio.get_running_loop().create_task(run_every(self.seconds), name="embedded-sweep")
        return await self.app(scope, receive, send)
