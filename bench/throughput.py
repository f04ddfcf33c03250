"""2. Workflow API throughput: assign, accept, reject and review at concurrency
1, 8 and 32 against one server process, beside GET /healthz (the ceiling: no
database, no auth); then each at concurrency 8 over two daphne processes, the
setup the targets name. Every request is a valid transition of its own
pre-created appointment, so nothing answers 409; each request carries a token.
"""

from __future__ import annotations

import asyncio

from . import data
from .clients import Request, load
from .harness import Server, ratio, servers, sized

BASE = "/api/scheduling/appointments"
ENDPOINTS = ("healthz", "assign", "accept", "reject", "review_deny", "review_accept")


class Pool:
    """Therapists for the transitions: enough that concurrent assignments rarely
    wait on the same therapist's row lock."""

    def __init__(self, world: data.World, size: int = 100):
        self.world = world
        self.therapists = data.create_therapists(world, size, prefix="load")
        self.next_slot = 0

    def slots(self, count: int) -> int:
        """The first of the fresh 90-minute slots `count` bookings take, so the
        pool's therapists are never double-booked across measurements."""
        first = self.next_slot
        self.next_slot += -(-count // len(self.therapists))
        return first


def requests_for(endpoint: str, pool: Pool, count: int) -> list[Request]:
    world = pool.world
    op_headers = world.token_header(world.operator)
    if endpoint == "healthz":
        return [Request("GET", "/healthz") for _ in range(count)]
    if endpoint == "assign":
        appts = data.unassigned(world, count, per_slot=len(pool.therapists), first_slot=pool.slots(count))
        therapists = pool.therapists
        return [Request("POST", f"{BASE}/{a.id}/assign/", op_headers, {"therapist": therapists[i % len(therapists)].id})
                for i, a in enumerate(appts)]
    if endpoint in ("accept", "reject"):
        appts = data.assigned(world, pool.therapists, count, first_slot=pool.slots(count))
        body = {"rejection_reason": "Too far from my area today"} if endpoint == "reject" else None
        return [Request("POST", f"{BASE}/{a.id}/{endpoint}/", world.token_header(a.therapist_id), body)
                for a in appts]
    if endpoint in ("review_deny", "review_accept"):
        appts = data.rejected(world, pool.therapists, count, first_slot=pool.slots(count))
        decision = endpoint.split("_")[1]
        return [Request("POST", f"{BASE}/{a.id}/review_rejection/", op_headers,
                        {"review_decision": decision, "review_note": "Benchmark review"}) for a in appts]
    raise ValueError(endpoint)


def measure(server_list: list[Server], endpoint: str, pool: Pool, concurrency: int, count: int,
            warmup: int) -> dict:
    reqs = requests_for(endpoint, pool, count + warmup)
    return asyncio.run(load(server_list, reqs, concurrency, warmup=warmup))


def ceiling(result: dict, healthz: dict) -> float | None:
    """The share of /healthz's req/s the transition would reach if the server's
    own work per request were only what /healthz costs it: everything else the
    request costs the machine (PostgreSQL, Redis, the load generator) as
    measured, and the cores as busy. Trimming only the servers' own Python
    cannot take a transition beyond it; fewer or cheaper statements (less work
    for PostgreSQL) or a lighter answer (less for the client) raise it."""
    extra = result["server_cpu_ms_per_request"] - healthz["server_cpu_ms_per_request"]
    rest = result["machine_cpu_ms_per_request"] - extra
    if rest <= 0:
        return None
    return ratio(result["rps"] * result["machine_cpu_ms_per_request"] / rest, healthz["rps"])


def counts_for(concurrency: int) -> int:
    return {1: sized(150, 30), 8: sized(400, 80), 32: sized(500, 100)}[concurrency]


def run(world: data.World, *, concurrencies: tuple[int, ...] = (1, 8, 32)) -> dict:
    pool = Pool(world)
    results: dict[str, dict] = {endpoint: {} for endpoint in ENDPOINTS}
    with servers("daphne", 1) as server_list:
        for concurrency in concurrencies:
            for endpoint in ENDPOINTS:
                count = counts_for(concurrency) * (4 if endpoint == "healthz" else 1)
                results[endpoint][str(concurrency)] = measure(server_list, endpoint, pool, concurrency, count,
                                                              warmup=max(10, concurrency))
    # The targets' setup: two daphne, the load spread over both (round robin by
    # the client, standing in for the proxy), every endpoint at concurrency 8.
    two: dict[str, dict] = {endpoint: {} for endpoint in ENDPOINTS}
    with servers("daphne", 2) as server_list:
        for endpoint in ENDPOINTS:
            count = counts_for(8) * (4 if endpoint == "healthz" else 1)
            two[endpoint]["8"] = measure(server_list, endpoint, pool, 8, count, warmup=16)
    for table in (results, two):
        for endpoint in ENDPOINTS[1:]:
            for concurrency, result in table[endpoint].items():
                result["x_healthz_rps"] = ratio(result["rps"], table["healthz"][concurrency]["rps"])
                result["ceiling_x_healthz"] = ceiling(result, table["healthz"][concurrency])
    return {"server": "daphne", "processes": 1, "endpoints": results, "two_processes": two}
