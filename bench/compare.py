"""6. daphne (what we ship) against uvicorn on the same application: GET
/healthz and one transition (accept) at concurrency 8, and the
assignment-to-notified latency with 100 idle sockets. Measured back to back in
one run on the same data. Also two daphne processes with the load spread over
both (round robin by the client, standing in for the proxy): what a second
process buys on two cores.

uvicorn is a benchmark-only dependency (requirements-dev.txt); without it this
benchmark reports only daphne.
"""

from __future__ import annotations

from . import data, latency, throughput
from .harness import ratio, servers, sized, uvicorn_available


def _http(world: data.World, pool: throughput.Pool, kind: str, processes: int) -> dict:
    count = sized(400, 80)
    out = {}
    with servers(kind, processes) as server_list:
        for endpoint in ("healthz", "accept"):
            n = count * (4 if endpoint == "healthz" else 1)
            out[endpoint] = throughput.measure(server_list, endpoint, pool, 8, n, warmup=16)
    return out


def run(world: data.World, idle_sessions: list[str]) -> dict:
    pool = throughput.Pool(world)
    kinds = ["daphne", "uvicorn"] if uvicorn_available() else ["daphne"]
    http = {kind: _http(world, pool, kind, 1) for kind in kinds}
    http["daphne_x2"] = _http(world, pool, "daphne", 2)
    lat = {kind: latency.run(world, kind=kind, levels=[100], idle_sessions=idle_sessions)["levels"]["100"]
           for kind in kinds}
    out = {"http_concurrency_8": http, "latency_100_idle": lat}
    if "uvicorn" in kinds:
        out["uvicorn_vs_daphne"] = {
            "healthz_rps": ratio(http["uvicorn"]["healthz"]["rps"], http["daphne"]["healthz"]["rps"]),
            "accept_rps": ratio(http["uvicorn"]["accept"]["rps"], http["daphne"]["accept"]["rps"]),
            "notified_median": ratio(lat["uvicorn"]["notified_ms"]["median"], lat["daphne"]["notified_ms"]["median"]),
            "notified_p99": ratio(lat["uvicorn"]["notified_ms"]["p99"], lat["daphne"]["notified_ms"]["p99"]),
        }
    else:
        out["note"] = "uvicorn is not installed: pip install -r requirements-dev.txt"
    out["daphne_x2_vs_x1"] = {
        "healthz_rps": ratio(http["daphne_x2"]["healthz"]["rps"], http["daphne"]["healthz"]["rps"]),
        "accept_rps": ratio(http["daphne_x2"]["accept"]["rps"], http["daphne"]["accept"]["rps"]),
    }
    return out
