"""Run every benchmark, print a table and write bench/results.json.

    .venv/bin/python -m bench.run            # what `make bench` runs
    QUICK=1 .venv/bin/python -m bench.run    # smaller sizes: a smoke run
    BENCH_ONLY=latency,sweep ...             # a subset, in the usual order (the other
                                             # benchmarks' last results stay in results.json)

Everything it needs it starts itself: a fresh PostgreSQL database
(guitara_bench, dropped and recreated), its own Redis database number and
channel prefix, and daphne/uvicorn subprocesses on loopback ports, all stopped
at the end.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from bench import harness

ORDER = ("pages", "insights", "latency", "fanout", "throughput", "compare", "sweep")
RESULTS = Path(__file__).resolve().parent / "results.json"


def _stop(signum, frame):
    harness.stop_all_servers()
    sys.exit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    wanted = [n.strip() for n in os.environ.get("BENCH_ONLY", "").split(",") if n.strip()] or list(ORDER)
    unknown = set(wanted) - set(ORDER)
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(ORDER)}")
    started = time.monotonic()
    harness.configure()
    print(f"bench: QUICK={int(harness.QUICK)} database={harness.database_name()} "
          f"redis={os.environ['REDIS_URL']} logs={harness.LOG_DIR}", flush=True)
    harness.recreate_database()
    harness.flush_redis_db()
    migrate_seconds = harness.migrate()

    import django

    django.setup()
    from bench import data, report

    results: dict = {"machine": harness.machine_info(), "quick": harness.QUICK, "benchmarks": {}}
    world = data.create_world()
    idle_sessions: list[str] = []
    try:
        for name in ORDER:
            if name not in wanted:
                continue
            step = time.monotonic()
            print(f"bench: {name} ...", flush=True)
            try:
                out = _one(name, world, idle_sessions)
            except Exception as exc:
                traceback.print_exc()
                out = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            finally:
                harness.stop_all_servers()
            errors = harness.take_server_errors()
            if errors:
                out["server_errors"] = errors
            if "idle_sessions" in out:
                idle_sessions = out.pop("idle_sessions")
            out["elapsed_s"] = round(time.monotonic() - step, 1)
            results["benchmarks"][name] = out
            print(f"bench: {name} done in {out['elapsed_s']} s" + (f" ({out['error']})" if "error" in out else ""),
                  flush=True)
    finally:
        harness.stop_all_servers()
        from django.db import connections

        connections.close_all()
    results["migrate_s"] = round(migrate_seconds, 1)
    results["total_s"] = round(time.monotonic() - started, 1)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if set(wanted) != set(ORDER):
        _keep_the_others(results)
    results["targets"] = report.targets(results["benchmarks"])
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(RESULTS)
    print(report.table(results))
    print(f"bench: wrote {RESULTS.relative_to(harness.ROOT)} ({results['total_s']} s in all)")
    if os.environ.get("BENCH_KEEP_DB") != "1":
        harness.drop_database()
    harness.flush_redis_db()
    return 0


def _keep_the_others(results: dict) -> None:
    """A subset run (BENCH_ONLY) replaces only its own benchmarks in results.json:
    the others stay as they were last measured, with the machine facts of that run."""
    if not RESULTS.exists():
        return
    previous = json.loads(RESULTS.read_text())
    kept = {name: out for name, out in previous.get("benchmarks", {}).items() if name not in results["benchmarks"]}
    if not kept:
        return
    earlier = previous.get("earlier_runs", [])
    earlier = [run for run in earlier if set(run["benchmarks"]) & set(kept)]
    if previous.get("machine") and set(previous["benchmarks"]) & set(kept):
        earlier.append({"machine": previous["machine"], "quick": previous.get("quick"),
                        "benchmarks": sorted(set(previous["benchmarks"]) & set(kept))})
    for run in earlier:
        run["benchmarks"] = sorted(set(run["benchmarks"]) & set(kept))
    results["earlier_runs"] = earlier
    results["benchmarks"] = {name: results["benchmarks"].get(name) or kept[name] for name in ORDER
                             if name in results["benchmarks"] or name in kept}


def _one(name: str, world, idle_sessions: list[str]) -> dict:
    from bench import compare, fanout, insights, latency, pages, sweep, throughput

    if name == "pages":
        return pages.run(world)
    if name == "insights":
        return insights.run(world)
    if name == "latency":
        sessions = latency.idle_crowd(world, 1000)
        out = latency.run(world, idle_sessions=sessions)
        out["idle_sessions"] = sessions
        return out
    if name == "fanout":
        return fanout.run(world)
    if name == "throughput":
        return throughput.run(world)
    if name == "compare":
        return compare.run(world, idle_sessions[:100] or latency.idle_crowd(world, 100))
    return sweep.run(world)


if __name__ == "__main__":
    sys.exit(main())
