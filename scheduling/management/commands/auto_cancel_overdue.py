"""The deadline sweep: a thin loop over the workflow's batch rules.

1. Time out every pending appointment whose therapist did not answer by the
   deadline: cancel it (response_timeout), disable the therapist, notify.
2. Cancel every unassigned pending booking nobody can take in time
   (no_available_therapist), notify the operators.
3. Reach the therapists who have not seen an offer: a reminder email after
   REMIND_AFTER_MINUTES, then an `unseen` notification to every operator after
   ESCALATE_AFTER_MINUTES (scheduling.reach), each once per offer.
Rows are claimed with select_for_update(skip_locked=True), so several hosts may
run this at the same minute without processing anything twice.

With AUTO_REOFFER on, step 1 cancels nothing: each booking goes on to the next
available therapist (or waits for the operators), inside the same batch.
"""

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from notifications import realtime
from scheduling import workflow

logger = logging.getLogger("scheduling.sweep")


class Command(BaseCommand):
    help = "Cancel appointments nobody answered in time (and disable their therapists), and unstaffable bookings."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List what would be done; change nothing.")
        parser.add_argument("--every", type=float, metavar="SECONDS",
                            help="Repeat every SECONDS until interrupted (development, cron-less containers).")
        parser.add_argument("--batch-size", type=int, default=500, metavar="N",
                            help="Appointments claimed per transaction (default 500).")

    def handle(self, *args, dry_run=False, every=None, batch_size=500, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if every is not None and every <= 0:
            raise CommandError("--every must be a positive number of seconds.")
        self._stop = False
        if every:
            # Ctrl-C / SIGTERM end the loop between passes, never inside a batch.
            signal.signal(signal.SIGINT, self._request_stop)
            signal.signal(signal.SIGTERM, self._request_stop)
        while True:
            self._run_once(dry_run=dry_run, batch_size=batch_size, keep_going=bool(every))
            if not every:
                return
            deadline = time.monotonic() + every
            while not self._stop and time.monotonic() < deadline:
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            if self._stop:
                self.stdout.write("Sweep stopped.")
                return

    def _request_stop(self, signum, frame):
        self._stop = True

    def _run_once(self, *, dry_run: bool, batch_size: int, keep_going: bool) -> None:
        # What it did goes to stdout only: cron appends stdout and stderr to the
        # same sweep.log, where a log record of each line would print it twice.
        def report(action: workflow.SweepAction) -> None:
            self.stdout.write(("[dry run] would be " if dry_run else "") + action.line)

        started = time.monotonic()
        try:
            # Each batch's socket messages go out while the next batch is worked on.
            with realtime.sending_in_background():
                counts = workflow.sweep(batch_size=batch_size, dry_run=dry_run, report=report)
        except DatabaseError as exc:
            # One line, no traceback: psycopg's own message spans several lines.
            detail = " ".join(str(exc).split())
            message = f"Sweep failed: the database is unreachable or refused the work ({detail})."
            if not keep_going:
                raise CommandError(message) from exc  # printed once on stderr, exit status 1
            logger.error(message)
            connection.close()  # reconnect on the next pass
            return
        elapsed = time.monotonic() - started
        total = counts.timed_out + counts.no_available_therapist
        prefix = "Dry run: would cancel" if dry_run else "Cancelled"
        if total == 0 and not counts.reoffered:
            summary = "Nothing due: no appointment is overdue or unstaffable."
        elif settings.AUTO_REOFFER and dry_run:
            summary = (f"Dry run: {counts.timed_out} without a response ({counts.therapists_disabled} therapist(s) "
                       "would be disabled), each to go on to the next available therapist; "
                       f"{counts.no_available_therapist} would be cancelled with no available therapist.")
        elif settings.AUTO_REOFFER:
            # Timeouts are not cancellations here: say where the bookings went.
            summary = (f"Handled: {counts.timed_out} without a response ({counts.therapists_disabled} therapist(s) "
                       f"disabled), {counts.reoffered} offered to the next therapist, "
                       f"{counts.no_available_therapist} cancelled with no available therapist; {elapsed:.2f}s.")
        else:
            summary = (f"{prefix} {total} appointment(s): {counts.timed_out} without a response "
                       f"({counts.therapists_disabled} therapist(s) disabled), "
                       f"{counts.no_available_therapist} with no available therapist; {elapsed:.2f}s.")
        if counts.reminded or counts.escalated:
            summary += (f" Unseen offers{' (would be)' if dry_run else ''}: {counts.reminded} reminded by email, "
                        f"{counts.escalated} escalated to the operators.")
        self.stdout.write(summary)
