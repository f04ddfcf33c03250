"""Demo data for a local install: `python manage.py seed_demo`.

Two operators, six therapists with a week of availability, the services they
are qualified for, fifteen Metro Manila clients and appointments in every
state, plus an `admin` superuser. Every appointment reaches its state through
`scheduling.workflow`, so each change of status has its `AppointmentEvent`, its
notifications and, for timeouts, its disabled therapist and account history.

Idempotent: when the demo operators already exist the command changes nothing
and only prints the logins again. Everything is created in one transaction, so
an interrupted run leaves nothing half-loaded.

The password is `DEMO_PASSWORD` from the environment, else the fixed demo
password below: these are demo accounts for a local embedded install, and the
command prints the password with the logins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import User
from scheduling import workflow
from scheduling.models import Appointment, Client, Service

DEFAULT_DEMO_PASSWORD = "royalcare-demo"  # noqa: S105 - a published demo password, printed by the command
SITE_URL = "http://127.0.0.1:8000/"
ADMIN_USERNAME = "admin"

OPERATORS = [
    ("carmela", "Carmela", "Villanueva", "+63 917 800 1101"),
    ("rodel", "Rodel", "Mendoza", "+63 918 800 1102"),
]
THERAPISTS = [
    ("maria", "Maria", "Santos", "+63 917 555 0201"),
    ("jose", "Jose", "Reyes", "+63 918 555 0202"),
    ("ana", "Ana", "Dela Cruz", "+63 919 555 0203"),
    ("juan", "Juan", "Bautista", "+63 920 555 0204"),
    ("liza", "Liza", "Garcia", "+63 921 555 0205"),
    ("ramon", "Ramon", "Aquino", "+63 922 555 0206"),
]
# name, minutes, price (PHP), qualified therapists
SERVICES = [
    ("Swedish massage", 60, "800.00", ["maria", "jose", "ana", "juan", "liza", "ramon"]),
    ("Shiatsu", 90, "1100.00", ["maria", "jose", "liza"]),
    ("Hot stone massage", 120, "1600.00", ["ana", "juan", "ramon"]),
    ("Foot reflexology", 60, "600.00", ["maria", "jose", "ana", "juan", "liza", "ramon"]),
    ("Hilot", 90, "1000.00", ["maria", "jose", "liza"]),
    # Only Ramon gives Thai massage: when his rejection is accepted nobody is
    # left, which shows the no-available-therapist rule.
    ("Thai massage", 120, "1300.00", ["ramon"]),
]
CLIENTS = [
    ("Lourdes Mercado", "+63 917 301 4410", "12 Mabini St, Poblacion, Makati City"),
    ("Ricardo Tan", "+63 918 302 5521", "Unit 23B, One Serendra, BGC, Taguig City"),
    ("Patricia Lim", "+63 919 303 6632", "45 Kapitolyo St, Pasig City"),
    ("Emmanuel Ramos", "+63 920 304 7743", "8 Scout Tuason Ave, Quezon City"),
    ("Cristina Navarro", "+63 921 305 8854", "101 Aguirre Ave, BF Homes, Parañaque City"),
    ("Antonio Villareal", "+63 922 306 9965", "Tower 2, Greenbelt Residences, Legazpi Village, Makati City"),
    ("Teresa Domingo", "+63 923 307 1076", "17 Maginhawa St, Teachers Village, Quezon City"),
    ("Miguel Castillo", "+63 925 308 2187", "3F, 28 Jupiter St, Bel-Air, Makati City"),
    ("Isabel Fernandez", "+63 926 309 3298", "55 Wilson St, Greenhills, San Juan City"),
    ("Francisco Ocampo", "+63 927 310 4309", "220 Roxas Blvd, Malate, Manila"),
    ("Angelica Soriano", "+63 928 311 5410", "9 Shaw Blvd, Mandaluyong City"),
    ("Benjamin Uy", "+63 929 312 6521", "Unit 1508, Eastwood Global Plaza, Libis, Quezon City"),
    ("Rosario Pascual", "+63 930 313 7632", "14 Alabang-Zapote Rd, Muntinlupa City"),
    ("Gabriel Salazar", "+63 931 314 8743", "6 E. Rodriguez Jr Ave, Marikina City"),
    ("Josefina Manalo", "+63 932 315 9854", "31 Tomas Morato Ave, Quezon City"),
]
AVAILABILITY_DAYS = 7
DAY_STARTS, DAY_ENDS = time(8), time(20)


@dataclass
class DemoLogin:
    username: str
    role: str
    note: str = ""


class Command(BaseCommand):
    help = "Load demo users, services, clients and appointments in every state (idempotent)."

    def handle(self, *args, **options):
        password = os.environ.get("DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD
        operator_names = [username for username, *_ in OPERATORS]
        if User.objects.filter(username__in=operator_names).exists():
            self.stdout.write("Demo data already loaded; nothing changed.")
            self._print_logins(password)
            return
        with transaction.atomic():
            summary = DemoBuilder(password).build()
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded: {summary}."))
        self._print_logins(password)

    def _print_logins(self, password: str) -> None:
        users = {u.username: u for u in User.objects.filter(
            username__in=[ADMIN_USERNAME, *(username for username, *_ in OPERATORS + THERAPISTS)],
        )}

        def knows(username: str) -> bool:
            user = users.get(username)
            return user is not None and user.check_password(password)

        self.stdout.write(f"\nOpen {SITE_URL} and sign in with one of these demo logins.")
        if knows(OPERATORS[0][0]):
            self.stdout.write(f"Password for every demo login: {password}")
        else:
            self.stdout.write("Password: the one in effect when the demo data was loaded "
                              f"(DEMO_PASSWORD then, else {DEFAULT_DEMO_PASSWORD}).")
        admin_note = "superuser: the operator dashboard, and the Django admin at /admin/"
        if not knows(ADMIN_USERNAME):
            admin_note += " (an existing account: its own password)"
        logins = [DemoLogin(ADMIN_USERNAME, User.Role.OPERATOR, admin_note)]
        logins += [DemoLogin(username, User.Role.OPERATOR) for username, *_ in OPERATORS]
        for username, *_ in THERAPISTS:
            user = users.get(username)
            disabled = user is not None and not user.is_active
            note = "disabled (missed a deadline): re-enable in the admin" if disabled else ""
            logins.append(DemoLogin(username, User.Role.THERAPIST, note))
        for login in logins:
            self.stdout.write(f"  {login.username:<10} {login.role:<10} {login.note}".rstrip())


class DemoBuilder:
    """Builds the demo, driving the workflow as the operators and therapists would."""

    def __init__(self, password: str):
        self.password_hash = make_password(password)
        self.today = timezone.localdate()
        self.users: dict[str, User] = {}
        self.services: dict[str, Service] = {}
        self.clients: list[Client] = []
        self._next_client = 0

    # -- people, services, clients, availability ------------------------------

    def build(self) -> str:
        admin = User.objects.filter(username=ADMIN_USERNAME).first()
        if admin is None:
            # An admin is an operator with the Django admin on top.
            self._user(ADMIN_USERNAME, "Royal Care", "Admin", "", User.Role.OPERATOR,
                       is_staff=True, is_superuser=True)
        for username, first, last, phone in OPERATORS:
            self._user(username, first, last, phone, User.Role.OPERATOR)
        for username, first, last, phone in THERAPISTS:
            self._user(username, first, last, phone, User.Role.THERAPIST, email=f"{username}@royalcare.example")
        for name, minutes, price, qualified in SERVICES:
            service, _ = Service.objects.get_or_create(
                name=name, defaults={"duration_minutes": minutes, "price": Decimal(price)},
            )
            service.therapists.add(*(self.users[username] for username in qualified))
            self.services[name] = service
        for name, phone, address in CLIENTS:
            client, _ = Client.objects.get_or_create(name=name, phone=phone, defaults={"address": address})
            self.clients.append(client)
        self._availability()
        self._appointments()
        by_status = dict(
            Appointment.objects.filter(client__in=self.clients).values("status")
            .annotate(n=Count("id")).values_list("status", "n")
        )
        spread = ", ".join(f"{by_status.get(status, 0)} {label.lower()}"
                           for status, label in Appointment.Status.choices)
        return (f"{len(OPERATORS)} operators, {len(THERAPISTS)} therapists, {len(self.services)} services, "
                f"{len(self.clients)} clients, {sum(by_status.values())} appointments ({spread})")

    def _user(self, username: str, first: str, last: str, phone: str, role: str, **extra) -> User:
        user = User(username=username, first_name=first, last_name=last, phone=phone, role=role,
                    password=self.password_hash, **extra)
        user.save()
        self.users[username] = user
        return user

    def _availability(self) -> None:
        operator = self.users["carmela"]
        for username, *_ in THERAPISTS:
            for offset in range(AVAILABILITY_DAYS):
                day = self.today + timedelta(days=offset)
                workflow.add_availability(actor=operator, therapist=self.users[username],
                                          starts_at=self._at(day, DAY_STARTS), ends_at=self._at(day, DAY_ENDS))
        # Maria also takes late bookings: a slot from 22:00 tomorrow into the
        # small hours of the day after, across midnight.
        tomorrow = self.today + timedelta(days=1)
        workflow.add_availability(actor=operator, therapist=self.users["maria"],
                                  starts_at=self._at(tomorrow, time(22)),
                                  ends_at=self._at(tomorrow + timedelta(days=1), time(2)))

    # -- appointments ---------------------------------------------------------

    def _at(self, day: date, at: time) -> datetime:
        return timezone.make_aware(datetime.combine(day, at))

    def _book(self, service: str, day_offset: int, hour: int, minute: int = 0, *,
              therapist: str | None = None, notes: str = "") -> Appointment:
        """Book a client (the next one in the list) `day_offset` days from today,
        at local `hour:minute`; with `therapist` it is assigned at once."""
        client = self.clients[self._next_client % len(self.clients)]
        self._next_client += 1
        starts_at = self._at(self.today + timedelta(days=day_offset), time(hour, minute))
        return workflow.create_appointment(
            actor=self.users["carmela"], client=client, service=self.services[service], starts_at=starts_at,
            location=client.address, notes=notes,
            therapist_id=self.users[therapist].pk if therapist else None,
        )

    def _move(self, appt: Appointment, starts_at: datetime) -> None:
        """Move a session that was booked (and run) in the future to the time it
        is meant to have taken place.

        The workflow only books future slots, and a demo cannot wait for hours to
        pass, so completed and in-progress sessions are booked and accepted on a
        future slot through the real transitions, moved back in time, and then
        started (a session can only be started from shortly before its start on)
        and completed. Only the
        schedule columns move, with a plain queryset update: starts_at, ends_at
        and the response deadline by the same offset. The status, and the times
        each transition stamped (assigned_at, responded_at, started_at,
        completed_at, and the events' created_at), are the workflow's and stay as
        it wrote them."""
        appt.refresh_from_db()
        shift = starts_at - appt.starts_at
        Appointment.objects.filter(pk=appt.pk).update(
            starts_at=starts_at, ends_at=appt.ends_at + shift,
            response_deadline=appt.response_deadline + shift if appt.response_deadline else None,
        )

    def _make_overdue(self, appt: Appointment, minutes_ago: int) -> None:
        # Same trick for an unanswered assignment: only its deadline moves into
        # the past, so the timeout rule (the sweep, or any write) finds it due.
        Appointment.objects.filter(pk=appt.pk).update(
            response_deadline=timezone.now() - timedelta(minutes=minutes_ago),
        )

    def _appointments(self) -> None:
        u = self.users
        carmela, rodel = u["carmela"], u["rodel"]

        # Pending, waiting for an operator to assign a therapist.
        self._book("Swedish massage", 1, 10, notes="Prefers a female therapist.")
        self._book("Hot stone massage", 2, 14)
        self._book("Foot reflexology", 3, 17, notes="Condo guard needs the therapist's name.")

        # Pending with a therapist: the 30-minute answer countdown is running.
        self._book("Shiatsu", 1, 9, therapist="maria")
        self._book("Swedish massage", 1, 13, therapist="jose")

        # A rejection the operator denied: same therapist, fresh deadline.
        appt = self._book("Hot stone massage", 2, 10, therapist="ana")
        workflow.reject(actor=u["ana"], appointment_id=appt.pk, reason="I have a clinic check-up that morning.",
                        reason_code="health")
        workflow.review_rejection(actor=rodel, appointment_id=appt.pk, decision="deny",
                                  note="The client asked for you; the check-up can move to the afternoon.")

        # Confirmed.
        appt = self._book("Hot stone massage", 1, 11, therapist="juan")
        workflow.accept(actor=u["juan"], appointment_id=appt.pk)
        appt = self._book("Hilot", 2, 15, therapist="maria")
        workflow.accept(actor=u["maria"], appointment_id=appt.pk)
        # A late session inside Maria's slot that crosses midnight.
        appt = self._book("Swedish massage", 1, 23, 30, therapist="maria", notes="Late check-in at the hotel.")
        workflow.accept(actor=u["maria"], appointment_id=appt.pk)
        # Rejected, the rejection accepted, back in the queue, assigned to someone else.
        appt = self._book("Swedish massage", 3, 9, therapist="jose")
        workflow.reject(actor=u["jose"], appointment_id=appt.pk, reason="Too far from my area that early.",
                        reason_code="too_far")
        workflow.review_rejection(actor=carmela, appointment_id=appt.pk, decision="accept")
        workflow.assign(actor=carmela, appointment_id=appt.pk, therapist_id=u["ana"].pk)
        workflow.accept(actor=u["ana"], appointment_id=appt.pk)

        # Rejected, waiting for an operator's review.
        appt = self._book("Foot reflexology", 2, 9, therapist="juan")
        workflow.reject(actor=u["juan"], appointment_id=appt.pk, reason="Sprained wrist; no deep pressure this week.",
                        reason_code="health")
        appt = self._book("Swedish massage", 4, 16, therapist="maria")
        workflow.reject(actor=u["maria"], appointment_id=appt.pk, reason="Family event that afternoon.",
                        reason_code="schedule_conflict")

        # In progress: started about 25 minutes ago.
        appt = self._book("Swedish massage", 5, 10, therapist="jose")
        workflow.accept(actor=u["jose"], appointment_id=appt.pk)
        self._move(appt, timezone.now() - timedelta(minutes=25))
        workflow.start(actor=u["jose"], appointment_id=appt.pk)

        # Completed, yesterday and the day before.
        for service, offset, hour, therapist, when in [
            ("Shiatsu", 5, 14, "maria", (-1, 10)),
            ("Foot reflexology", 5, 16, "ana", (-1, 15)),
            ("Hot stone massage", 6, 10, "ramon", (-2, 13)),
            ("Swedish massage", 6, 14, "liza", (-1, 11)),
        ]:
            appt = self._book(service, offset, hour, therapist=therapist)
            workflow.accept(actor=u[therapist], appointment_id=appt.pk)
            self._move(appt, self._at(self.today + timedelta(days=when[0]), time(when[1])))
            workflow.start(actor=u[therapist], appointment_id=appt.pk)
            workflow.complete(actor=u[therapist], appointment_id=appt.pk)

        # Cancelled by an operator: one confirmed, one never assigned.
        appt = self._book("Swedish massage", 4, 10, therapist="juan")
        workflow.accept(actor=u["juan"], appointment_id=appt.pk)
        workflow.cancel(actor=carmela, appointment_id=appt.pk, reason="Client is travelling; will rebook next week.")
        appt = self._book("Foot reflexology", 4, 13)
        workflow.cancel(actor=rodel, appointment_id=appt.pk, reason="Duplicate booking.")

        # Cancelled, no available therapist: Ramon is the only one who gives Thai
        # massage; once his rejection is accepted nobody can take it.
        appt = self._book("Thai massage", 2, 18, therapist="ramon")
        workflow.reject(actor=u["ramon"], appointment_id=appt.pk, reason="My mat is being repaired this week.",
                        reason_code="other")
        workflow.review_rejection(actor=carmela, appointment_id=appt.pk, decision="accept")

        # Overdue: Ramon has not answered; the sweep cancels it and disables him.
        overdue = self._book("Hot stone massage", 3, 10, therapist="ramon")
        # Cancelled for no response: Liza let a deadline pass; the timeout rule
        # cancelled it and disabled her account (re-enable her in the admin).
        timed_out = self._book("Swedish massage", 3, 14, therapist="liza")
        self._make_overdue(timed_out, minutes_ago=1)
        workflow.expire_overdue()
        # Only now does Ramon's deadline pass, so the timeout above left it for the sweep.
        self._make_overdue(overdue, minutes_ago=2)
