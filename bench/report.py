"""The printed table and where we stand against the product owner's targets
(reported, never asserted: these are measurements, not tests)."""

from __future__ import annotations

import itertools


def _ms(summary: dict | None) -> str:
    if not summary or not summary.get("n"):
        return "-"
    return f"{summary['median']:.1f} / {summary['p95']:.1f} / {summary['p99']:.1f}"


def _cpu_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False))


def _section(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["", title, _row(header, widths), _row(["-" * w for w in widths], widths),
            *(_row([str(c) for c in r], widths) for r in rows)]


def table(results: dict) -> str:
    b = results["benchmarks"]
    m = results["machine"]
    lines = [f"Machine: {m['nproc']} cores, {m['cpu_model']}, {m['ram_gib']} GiB, Python {m['python']}, "
             f"PostgreSQL {m['postgresql']}, Redis {m['redis']}, {m['date']}"
             + ("  [QUICK sizes]" if results.get("quick") else "")]
    if "latency" in b:
        lat = b["latency"]
        floor = lat.get("floor", {})
        rows = [["Redis PING", _ms(floor.get("ping_ms")), "-", "-"],
                ["channels_redis group_send->receive", _ms(floor.get("group_send_receive_ms")), "-", "1.0"]]
        for r in lat["levels"].values():
            rows.append([f"assign->notified, {r['idle_sockets']} idle sockets", _ms(r["notified_ms"]),
                         _ms(r["http_response_ms"]), f"{r.get('x_floor_median')} / {r.get('x_floor_p99')}"])
        lines += _section("1. Assignment-to-notified latency (ms: median / p95 / p99), server A -> Redis -> server B",
                          ["what", "latency", "assign HTTP answer", "x floor (median / p99)"], rows)
    if "throughput" in b:
        rows = []
        for endpoint, by_c in b["throughput"]["endpoints"].items():
            for c, r in by_c.items():
                rows.append([endpoint, c, f"{r['rps']:.0f}", _ms(r["latency_ms"]), r.get("x_healthz_rps", "1.0"),
                             f"{r['server_cpu_ms_per_request']:.1f}",
                             f"{r['server_cpu_pct']:.0f} / {r['client_cpu_pct']:.0f} / {r['machine_cpu_pct']:.0f}",
                             ",".join(f"{k}:{v}" for k, v in r["errors"].items()) or "-"])
        lines += _section("2. Workflow API throughput, 1 daphne process (latency ms: median / p95 / p99)",
                          ["endpoint", "conc", "req/s", "latency", "x healthz", "server CPU ms/req",
                           "CPU% srv/client/machine", "errors"], rows)
        two = b["throughput"].get("two_processes")
        if two:
            rows = [[endpoint, f"{r['rps']:.0f}", _ms(r["latency_ms"]), r.get("x_healthz_rps", "1.0"),
                     r.get("ceiling_x_healthz") or "-",
                     f"{r['server_cpu_ms_per_request']:.1f}", _cpu_ms(r.get("machine_cpu_ms_per_request")),
                     f"{r['server_cpu_pct']:.0f} / {r['client_cpu_pct']:.0f} / {r['machine_cpu_pct']:.0f}",
                     ",".join(f"{k}:{v}" for k, v in r["errors"].items()) or "-"]
                    for endpoint, by_c in two.items() for r in [by_c["8"]]]
            lines += _section("2b. The same at concurrency 8 over 2 daphne processes (the targets' setup); ceiling: "
                              "x healthz if the servers' own work per request were /healthz's",
                              ["endpoint", "req/s", "latency", "x healthz", "ceiling", "server CPU ms/req",
                               "machine CPU ms/req", "CPU% srv/client/machine", "errors"], rows)
    if "sweep" in b:
        rows = [[r["due"], f"{r['seconds']:.2f}", f"{r['per_second']:.0f}", r["queries"], r["batches"],
                 r["queries_per_batch"], f"{r['cpu_seconds']:.2f}", f"{r['db_seconds']:.2f}",
                 f"{r['publish_seconds']:.2f}", r["messages_published"], r["per_second_without_publish"],
                 r.get("peak_rss_growth_mb", "-")]
                for r in b["sweep"]["levels"].values()]
        lines += _section(f"3. Sweep (batch {b['sweep']['batch_size']}, {b['sweep']['operators']} operators)",
                          ["due", "seconds", "cancelled/s", "queries", "batches", "queries/batch", "CPU s",
                           "DB s", "publish s", "messages", "cancelled/s w/o publish", "peak RSS +MB"], rows)
    if "pages" in b:
        rows = []
        for level, by_name in b["pages"]["levels"].items():
            for name, r in by_name.items():
                rows.append([level, name, _ms(r["latency_ms"]), r["queries"], r["bytes"]])
        lines += _section("4. Dashboards and lists (ms: median / p95 / p99 over HTTP; queries in-process)",
                          ["appointments", "what", "latency", "queries", "bytes"], rows)
    if "fanout" in b:
        rows = []
        for name in ("one_server", "split_two_servers"):
            r = b["fanout"].get(name)
            if not r:
                continue
            rows.append([name, r["sockets"], r["events"], _ms(r["first_ms"]), _ms(r["median_socket_ms"]),
                         _ms(r["last_ms"]), r["missed_max"], f"{r['server_cpu_pct']:.0f}"])
        lines += _section("5. Fan-out of one event to operator sockets (ms from the POST; median / p95 / p99 "
                          "over events)", ["placement", "sockets", "events", "first", "median socket", "last",
                                           "missed (max)", "server CPU%"], rows)
        mass = b["fanout"].get("split_two_servers", {}).get("mass_close")
        if mass and "socket_channels_left" in mass:
            lines.append(f"Closing {mass['sockets']} sockets at once: socket channels subscribed in Redis went from "
                         f"{mass['socket_channels_before']} to {mass['socket_channels_left']} "
                         "(anything above 0 is left behind).")
    if "compare" in b:
        cmp = b["compare"]
        rows = []
        for kind, by_endpoint in cmp["http_concurrency_8"].items():
            for endpoint, r in by_endpoint.items():
                rows.append([kind, f"{endpoint} c=8", f"{r['rps']:.0f} req/s", _ms(r["latency_ms"])])
        for kind, r in cmp["latency_100_idle"].items():
            rows.append([kind, "assign->notified, 100 idle", "-", _ms(r["notified_ms"])])
        lines += _section("6. daphne vs uvicorn (and 2 daphne processes)", ["server", "what", "throughput",
                                                                            "latency ms"], rows)
        for key in ("uvicorn_vs_daphne", "daphne_x2_vs_x1"):
            if key in cmp:
                lines.append(f"{key}: " + ", ".join(f"{k} x{v}" for k, v in cmp[key].items()))
    if "insights" in b and "http_json" in b["insights"]:
        ins = b["insights"]
        rows = [["GET /api/scheduling/insights/ (JSON)", _ms(ins["http_json"]["latency_ms"]), ins["queries"],
                 ins["http_json"]["bytes"]],
                ["GET /api/scheduling/insights/?format=csv", _ms(ins["http_csv"]["latency_ms"]), ins["queries"],
                 ins["http_csv"]["bytes"]],
                ["the report alone, in process", _ms(ins["in_process_ms"]), "-", "-"]]
        load = ins.get("load_average", {}).get("before")
        lines += _section(f"7. Insights over {ins['range'][0]}..{ins['range'][1]}: {ins['events_in_range']:,} events, "
                          f"{ins['offers']:,} offers, {ins['therapists']} therapists (ms: median / p95 / p99"
                          + (f"; load average {load[0]} when timed)" if load else ")"),
                          ["what", "latency", "queries", "bytes"], rows)
    if results.get("earlier_runs"):
        for run in results["earlier_runs"]:
            lines.append(f"(kept from the run of {run['machine']['date']} at {run['machine'].get('git_commit')}: "
                         + ", ".join(run["benchmarks"]) + ")")
    if results.get("targets"):
        rows = [[t["target"], t["measured"], {True: "yes", False: "NO", None: "-"}[t["met"]]]
                for t in results["targets"]]
        lines += _section("Targets (2 cores)", ["target", "measured", "met"], rows)
    return "\n".join(lines)


def targets(b: dict) -> list[dict]:
    out = []
    lat = b.get("latency", {}).get("levels", {}).get("1000")
    if lat:
        p99 = lat["notified_ms"]["p99"]
        out.append({"target": "assign->notified p99 < 20 ms with 1,000 idle sockets",
                    "measured": f"p99 {p99:.1f} ms", "met": p99 < 20})
    tp = b.get("throughput", {}).get("endpoints")
    if tp:
        two = b["throughput"].get("two_processes")

        def shares(table):
            return ", ".join(f"{e} {table[e]['8']['x_healthz_rps']:.0%}" for e in table if e != "healthz")
        judged = two or tp
        worst = min(judged[e]["8"]["x_healthz_rps"] for e in judged if e != "healthz" and "8" in judged[e])
        measured = (f"two daphne: {shares(two)}; one daphne: {shares(tp)}" if two else shares(tp))
        ceilings = [(e, judged[e]["8"].get("ceiling_x_healthz")) for e in judged if e != "healthz" and "8" in judged[e]]
        if all(c is not None for _, c in ceilings):
            measured += ("; ceiling with the servers' own work cut to /healthz's: "
                         + ", ".join(f"{e} {c:.0%}" for e, c in ceilings))
        out.append({"target": "transitions >= 40% of /healthz req/s at concurrency 8",
                    "measured": measured, "met": worst >= 0.4})
    split = b.get("fanout", {}).get("split_two_servers")
    if split:
        last = split["last_ms"]["median"]
        out.append({"target": f"fan-out: one event to {split['sockets']:,} operator sockets over two daphne, "
                              "last socket within 500 ms",
                    "measured": f"last socket median {last:.0f} ms (worst {split['last_ms']['max']:.0f} ms)",
                    "met": split["sockets"] >= 5000 and last < 500})
    levels = b.get("sweep", {}).get("levels", {})
    for due in ("10000", "100000"):
        sw = levels.get(due)
        if sw:
            out.append({"target": f"sweep >= 2,000 appointments/s at {int(due):,} due",
                        "measured": f"{sw['per_second']:.0f}/s ({sw['queries_per_batch']} queries/batch)",
                        "met": sw["per_second"] >= 2000})
    small, big = levels.get("10000"), levels.get("100000")
    if small and big:
        # Per batch beyond the fixed start-up and closing statements: what each
        # further batch of 500 costs, from one backlog size to the next.
        rows = sorted(levels.values(), key=lambda r: r["due"])
        marginal = [round((b["queries"] - a["queries"]) / (b["batches"] - a["batches"]), 1)
                    for a, b in itertools.pairwise(rows) if b["batches"] > a["batches"]]
        out.append({"target": "sweep: constant queries per batch",
                    "measured": " / ".join(str(m) for m in marginal) + " queries per further batch ("
                                + " → ".join(f"{r['due']:,}" for r in rows) + " due)",
                    "met": bool(marginal) and max(marginal) - min(marginal) <= 1})
        if small.get("peak_rss_growth_mb") is not None and big.get("peak_rss_growth_mb") is not None:
            out.append({"target": "sweep: peak memory flat in the backlog (10,000 vs 100,000 due)",
                        "measured": f"+{small['peak_rss_growth_mb']} MB vs +{big['peak_rss_growth_mb']} MB",
                        "met": big["peak_rss_growth_mb"] <= small["peak_rss_growth_mb"] * 1.5 + 10})
        ratio = (big["seconds"] / int(big["due"])) / (small["seconds"] / int(small["due"]))
        out.append({"target": "sweep: time per appointment flat as N grows (100,000 vs 10,000)",
                    "measured": f"x{ratio:.2f} per appointment", "met": ratio <= 1.3})
    pg = b.get("pages", {}).get("levels")
    if pg and "10000" in pg:
        constant = all(len({pg[level][name]["queries"] for level in pg}) == 1 for name in pg["10000"])
        worst = max(r["latency_ms"]["p95"] for r in pg["10000"].values())
        out.append({"target": "dashboard/list query counts constant in the number of appointments",
                    "measured": "; ".join(f"{name} " + "/".join(str(pg[level][name]["queries"]) for level in pg)
                                          for name in pg["10000"]),
                    "met": constant})
        out.append({"target": "dashboard/list p95 < 150 ms at 10,000 appointments",
                    "measured": ", ".join(f"{name} {r['latency_ms']['p95']:.0f} ms" for name, r in pg["10000"].items()),
                    "met": worst < 150})
    ins = b.get("insights")
    if ins and "http_json" in ins:
        p95 = ins["http_json"]["latency_ms"]["p95"]
        out.append({"target": "insights p95 < 150 ms at 100,000 events",
                    "measured": f"p95 {p95:.1f} ms at {ins['events_in_range']:,} events ({ins['queries']} queries)",
                    "met": p95 < 150 and ins["events_in_range"] >= 100_000})
    return out
