"""The report of benches/run.py: the markdown table of every figure with
its goal, and the chart."""

import statistics
import sys


def log(message):
    print(message, file=sys.stderr, flush=True)


def median(values):
    return statistics.median(values)


def paired(numerators, denominators):
    """Median of the ratios of figures measured in the same round."""
    return median([a / b for a, b in zip(numerators, denominators)])


def fmt_seconds(seconds):
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_rate(per_second):
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f} M/s"
    return f"{per_second / 1e3:.1f} k/s"


def fmt_bytes(n):
    return f"{n / 1e6:.1f} MB"


def check(ok):
    return "met" if ok else "**missed**"


def server_rows(servers):
    """The rows of the server throughput benchmark."""
    rows = []

    def cpu_per_request(entry):
        us = median(r["server_cpu"] / r["replies"] * 1e6 for r in entry["loadgen"])
        return f"{us:.2f} µs CPU/request"
    for pipeline in (1, 16):
        label = "no pipelining" if pipeline == 1 else f"pipelined, {pipeline} per batch"
        title = f"server `put` throughput, 50 connections, {label}"
        emb = servers.get("embedded", {}).get(pipeline)
        if emb:
            cpu = median(r["server_cpu"] / (r["cpu_user"] + r["cpu_sys"]) for r in emb["loadgen"])
            rows.append((title, "embedded server (metrics-load)", fmt_rate(emb["rps"]), "1",
                         f"server CPU = {cpu:.1f}x loadgen CPU; {cpu_per_request(emb)}"))
        else:
            rows.append((title, "embedded server", "not available", "", ""))
        asy = servers.get("asyncio", {}).get(pipeline)
        if asy:
            rel = tgt = ""
            if emb:
                ratio = paired(emb["rps_runs"], asy["rps_runs"])
                rel, tgt = f"embedded {ratio:.1f}x faster", f"≥ 20x: {check(ratio >= 20)}"
            rows.append(("", "course-style asyncio server", fmt_rate(asy["rps"]), rel, tgt))
        red = servers.get("redis", {}).get(pipeline)
        if red:
            rel = tgt = ""
            if emb:
                ratio = paired(emb["rps_runs"], red["rps_runs"])
                rel, tgt = f"embedded = {ratio:.2f}x redis", f"≥ 1x: {check(ratio >= 1)}"
            tgt += f"; redis {cpu_per_request(red)}"
            rows.append(("", "redis-server SET (metrics-load)", fmt_rate(red["rps"]), rel, tgt))
            if red.get("redis_benchmark_rps"):
                rel = tgt = ""
                if emb:
                    ratio = paired(emb["rps_runs"], red["redis_benchmark"])
                    rel, tgt = f"embedded = {ratio:.2f}x redis", f"≥ 1x: {check(ratio >= 1)}"
                rows.append(("", "redis-server SET (redis-benchmark)",
                             fmt_rate(red["redis_benchmark_rps"]), rel, tgt))
        else:
            rows.append(("", "redis-server", "not installed: skipped", "", ""))
    return rows


def markdown(rows):
    lines = ["| Benchmark | Contender | Median | Ratio | Target |",
             "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def build_server_table(servers):
    """The table of `--only server`."""
    return markdown(server_rows(servers))


def build_table(meta, get, served, memory, put, many, servers):
    rows = []
    times = get["times"]
    t = {n: median(v) for n, v in times.items()}

    def per_round(a, b):
        return paired(times[a], times[b])

    mb = meta["reply_bytes"] / 1e6
    title = f"`get(\"*\")`, {get['points']:,} points, {mb:.1f} MB reply"
    rows.append((title, "client.Client", fmt_seconds(t["client"]), "1", ""))
    ratio = per_round("client", "floor")
    rows.append(("", "floor: recv_into + C-speed build", fmt_seconds(t["floor"]),
                 f"client = {ratio:.2f}x floor", f"≤ 1.5x floor: {check(ratio <= 1.5)}"))
    rows.append(("", "floor with the cycle collector off", fmt_seconds(t["floor_nogc"]),
                 f"client = {per_round('client', 'floor_nogc'):.2f}x", "(for reference)"))
    ratio = per_round("careful", "client")
    rows.append(("", "careful pure Python", fmt_seconds(t["careful"]),
                 f"client {ratio:.1f}x faster", f"≥ 4x: {check(ratio >= 4)}"))
    if "canonical" in t:
        ratio = per_round("canonical", "client")
        rows.append(("", f"canonical course client ({len(times['canonical'])} runs)",
                     fmt_seconds(t["canonical"]), f"client {ratio:.0f}x faster",
                     f"≥ 20x: {check(ratio >= 20)}"))
    else:
        rows.append(("", "canonical course client", "skipped (--quick)", "", ""))
    if served:
        st = {n: median(v) for n, v in served["times"].items()}
        rows.append(("`get(\"*\")` of the same points from the embedded server", "client.Client",
                     fmt_seconds(st["client"]), "1", "(end to end, for reference)"))
        rows.append(("", "floor: recv_into + C-speed build", fmt_seconds(st["floor"]),
                     f"client = {paired(served['times']['client'], served['times']['floor']):.2f}x floor", ""))
        rows.append(("", "careful pure Python", fmt_seconds(st["careful"]),
                     f"client {paired(served['times']['careful'], served['times']['client']):.1f}x faster", ""))
    reply = meta["reply_bytes"]
    for i, (name, label) in enumerate([("client", "client.Client"), ("floor", "floor"),
                                       ("careful", "careful pure Python"),
                                       ("canonical", "canonical course client")]):
        if name not in memory:
            continue
        m = memory[name]
        ratio = m["overhead_bytes"] / reply
        target = f"≤ 1.5x reply: {check(ratio <= 1.5)}" if name == "client" else ""
        rows.append(("peak memory above the result (RSS)" if i == 0 else "", label,
                     f"{fmt_bytes(m['overhead_bytes'])} (result {fmt_bytes(m['result_bytes'])})",
                     f"{ratio:.2f}x reply bytes", target))
    p = {n: median(v) for n, v in put["per_op"].items()}
    ratio = paired(put["per_op"]["client"], put["per_op"]["floor"])
    rows.append((f"single `put` ({meta['put_server']})", "client.Client",
                 fmt_seconds(p["client"]), "1", ""))
    rows.append(("", "floor: raw sendall/recv, same connection", fmt_seconds(p["floor"]),
                 f"client = {ratio:.3f}x floor", f"≤ 1.10x: {check(ratio <= 1.10)}"))
    for name, label in (("careful", "careful pure Python"), ("canonical", "canonical course client")):
        ratio = paired(put["per_op"][name], put["per_op"]["client"])
        rows.append(("", label, fmt_seconds(p[name]), f"client {ratio:.2f}x faster", ""))
    m = {n: median(v) for n, v in many["times"].items()}
    n = many["points"]
    rows.append((f"`put_many`, {n:,} points ({meta['put_server']})", "client.put_many",
                 f"{fmt_seconds(m['put_many'])} ({fmt_rate(n / m['put_many'])})", "1", ""))
    ratio = paired(many["times"]["sequential"], many["times"]["put_many"])
    rows.append(("", "sequential client.put", f"{fmt_seconds(m['sequential'])} "
                 f"({fmt_rate(n / m['sequential'])})",
                 f"put_many {ratio:.0f}x the throughput", f"≥ 20x: {check(ratio >= 20)}"))
    ratio = paired(many["times"]["put_many"], many["times"]["floor"])
    rows.append(("", "floor: raw pipelined sendall + recv", f"{fmt_seconds(m['floor'])} "
                 f"({fmt_rate(n / m['floor'])})", f"put_many = {ratio:.2f}x floor", ""))
    rows += server_rows(servers)
    return markdown(rows)


def draw_chart(path, get, put, many, servers):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("  matplotlib is not installed (pip install matplotlib): no chart")
        return False
    colors = {"client.Client": "#d2691e", "floor": "#7f7f7f", "careful": "#4c72b0",
              "canonical": "#8c8cbf", "embedded": "#d2691e", "asyncio": "#4c72b0",
              "redis": "#c44e52"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))

    ax = axes[0]
    labels = ["client.Client", "floor", "careful", "canonical"]
    names = ["client", "floor", "careful", "canonical"]
    values = [median(get["times"][n]) for n in names if n in get["times"]]
    labels = [label for label, n in zip(labels, names) if n in get["times"]]
    bars = ax.bar(labels, values, color=[colors[label] for label in labels])
    ax.set_yscale("log")
    ax.set_ylim(min(values) / 3, max(values) * 2)
    ax.set_ylabel("seconds (log scale)")
    ax.set_title(f'get("*"): {get["points"]:,} points')
    for bar, v in zip(bars, values):
        ax.annotate(fmt_seconds(v), (bar.get_x() + bar.get_width() / 2, v),
                    ha="center", va="bottom", fontsize=9)

    ax = axes[1]
    labels = ["client.Client", "floor", "careful", "canonical"]
    values = [median(put["per_op"][n]) * 1e6 for n in ["client", "floor", "careful", "canonical"]]
    values.append(1e6 * median(many["times"]["put_many"]) / many["points"])
    labels.append("put_many")
    bars = ax.bar(labels, values, color=[colors.get(label, "#d2691e") for label in labels])
    ax.set_ylabel("µs per put")
    ax.set_title("put: one round trip each; put_many pipelined")
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:.1f}", (bar.get_x() + bar.get_width() / 2, v),
                    ha="center", va="bottom", fontsize=9)

    ax = axes[2]
    groups = [n for n in ("embedded", "asyncio", "redis") if n in servers]
    width = 0.8 / max(1, len(groups))
    for i, name in enumerate(groups):
        xs = [j + i * width for j in range(2)]
        ys = [servers[name][p]["rps"] for p in (1, 16)]
        ax.bar(xs, ys, width, label=name, color=colors[name])
        for x, y in zip(xs, ys):
            ax.annotate(fmt_rate(y).replace(" ", ""), (x, y), ha="center", va="bottom", fontsize=8)
    ax.set_xticks([j + width * (len(groups) - 1) / 2 for j in range(2)])
    ax.set_xticklabels(["no pipelining", "16 per batch"])
    ax.set_yscale("log")
    rates = [servers[n][p]["rps"] for n in groups for p in (1, 16)]
    if rates:
        ax.set_ylim(min(rates) / 3, max(rates) * 2)
    ax.set_ylabel("puts per second (log scale)")
    ax.set_title("server put throughput, 50 connections")
    ax.legend()
    fig.suptitle("metrics-client benchmarks (medians; same machine, same run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
