"""The table and the chart of ``storage.py``'s figures (see there for how
each is measured). Each row: what, ours, the other, the ratio, the target."""
from __future__ import annotations

import statistics
from typing import Any, Dict, List, Optional, Tuple

Row = Tuple[str, str, str, Optional[float], str, Optional[bool]]

#: Start-up and RSS may move this much with 10x the history and still be
#: called flat: about the spread of repeated restarts on this machine.
FLAT = 1.25


def _median(figures: Dict[str, Any], name: str, what: str) -> Optional[float]:
    runs = figures["startup"].get(name)
    return statistics.median(r[what] for r in runs) if runs else None


def _ms(s: Optional[float]) -> str:
    return "-" if s is None else f"{s * 1e3:,.0f} ms" if s >= 0.1 else f"{s * 1e3:,.1f} ms"


def _mb(b: Optional[float]) -> str:
    return "-" if b is None else f"{b / 2**20:,.1f} MiB"


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a / b


def rows(f: Dict[str, Any]) -> List[Row]:
    out: List[Row] = []
    disk, ingest = f["disk"], f["ingest"]

    def bpp(name: str) -> Optional[float]:
        return disk[name]["per_point"] if name in disk else None

    def le(r: Optional[float], limit: float = 1.0) -> Optional[bool]:
        return None if r is None else r <= limit

    for shape, label in (("series", "shape 1"), ("keys", "shape 2")):
        r = _ratio(bpp(f"new/{shape}"), bpp(f"vm/{shape}"))
        d = disk[f"new/{shape}"]
        vm = disk.get(f"vm/{shape}", {})
        parts = ", ".join(f"{k} {v / 1e6:,.2f} MB" for k, v in vm.items() if k not in ("bytes", "per_point") and v)
        out.append((f"bytes/point on disk, {label}", f"{bpp(f'new/{shape}'):.2f} (journal {d['journal']:,} B, "
                    f"keys {d['keys']:,} B)", f"{bpp(f'vm/{shape}') or 0:.2f} ({parts})", r, "≤ 1", le(r)))
    out.append(("bytes/point on disk, shape 1 x10 points", f"{bpp('new/growth'):.2f}", "", None, "", None))
    out.append(("bytes/point, old server (journal), shape 1", f"{bpp('old/series') or 0:.2f}", "", None, "", None))
    for shape, label in (("series", "shape 1"), ("keys", "shape 2")):
        ours, vm = _median(f, f"new/{shape}", "startup_s"), _median(f, f"vm/{shape}", "startup_s")
        r = _ratio(ours, vm)
        out.append((f"start-up to first answer, {label}", _ms(ours), _ms(vm), r, "≤ 1", le(r)))
    g = _ratio(_median(f, "new/growth", "startup_s"), _median(f, "new/series", "startup_s"))
    out.append(("start-up, shape 1 x10 points / shape 1", _ms(_median(f, "new/growth", "startup_s")),
                _ms(_median(f, "new/series", "startup_s")), g, f"flat (≤ {FLAT})", le(g, FLAT)))
    out.append(("start-up, old server, shape 1 (replays everything)", _ms(_median(f, "old/series", "startup_s")),
                "", None, "", None))
    out.append(("of which `python -c 'import client'` (interpreter, imports)", _ms(_median(f, "python", "startup_s")),
                "", None, "", None))
    for shape, label in (("series", "shape 1"), ("keys", "shape 2")):
        ours, vm = _median(f, f"new/{shape}", "rss"), _median(f, f"vm/{shape}", "rss")
        out.append((f"RSS after start-up, {label}", _mb(ours), _mb(vm), _ratio(ours, vm), "", None))
    g = _ratio(_median(f, "new/growth", "rss"), _median(f, "new/series", "rss"))
    out.append(("RSS, shape 1 x10 points / shape 1", _mb(_median(f, "new/growth", "rss")),
                _mb(_median(f, "new/series", "rss")), g, f"flat (≤ {FLAT})", le(g, FLAT)))
    out.append(("RSS after start-up, old server, shape 1", _mb(_median(f, "old/series", "rss")), "", None, "", None))
    for shape, label in (("series", "shape 1"), ("keys", "shape 2")):
        ours, vm = ingest.get(f"new/{shape}"), ingest.get(f"vm/{shape}")
        r = _ratio(ours, vm)
        out.append((f"ingest points/s, {label} (ours fsync everysec)", f"{ours:,.0f}",
                    f"{vm:,.0f}" if vm else "-", r, "≥ 1.5", None if r is None else r >= 1.5))
        always = ingest.get(f"new-always/{shape}")
        r = _ratio(always, vm)
        out.append((f"ingest points/s, {label} (ours fsync always)", f"{always:,.0f}",
                    f"{vm:,.0f}" if vm else "-", r, "≥ 1.5", None if r is None else r >= 1.5))
    if "old/series" in ingest:
        out.append(("ingest points/s, old server, shape 1", f"{ingest['old/series']:,.0f}", "", None, "", None))
    out.append(("ingest points/s, shape 1 x10 points", f"{ingest['new/growth']:,.0f}", "", None, "", None))
    for what, label in (("get_one", "`get <key>`, 20,000 points"), ("get_all", "`get *`, shape 1")):
        g = f.get("get", {}).get(what)
        if g:
            r = g["new"] / g["old"]
            out.append((f"{label} ({g['bytes'] / 2**20:,.1f} MiB), new vs old server", _ms(g["new"]),
                        _ms(g["old"]), r, "≤ 1", r <= 1))
    return out


def table(f: Dict[str, Any]) -> str:
    lines = ["| figure | ours (new server) | VictoriaMetrics / other | ratio | target | met |",
             "|---|---|---|---|---|---|"]
    for what, ours, other, r, target, met in rows(f):
        lines.append(f"| {what} | {ours} | {other} | {'' if r is None else f'{r:.2f}x'} | {target} | "
                     f"{'' if met is None else 'yes' if met else '**no**'} |")
    return "\n".join(lines)


def chart(f: Dict[str, Any], path: str) -> str:
    """Draws the figures in four panels; says why not when matplotlib is
    missing."""
    try:
        import matplotlib  # type: ignore[import-not-found]
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found]
    except ImportError:
        return "chart skipped: matplotlib is not installed"
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    colours = {"new": "tab:blue", "vm": "tab:orange", "old": "tab:gray"}

    def bars(ax: Any, title: str, items: List[Tuple[str, str, Optional[float]]], unit: str,
             log: bool = False) -> None:
        items = [i for i in items if i[2] is not None]
        if log:
            ax.set_yscale("log")
        ax.bar([i[0] for i in items], [i[2] for i in items], color=[colours[i[1]] for i in items])
        for x, (_, _, v) in enumerate(items):
            ax.annotate(f"{v:,.3g}", (x, v), ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", labelsize=8, rotation=20)

    d = {k: v["per_point"] for k, v in f["disk"].items()}
    bars(axes[0][0], "disk, bytes per point", [("ours s1", "new", d.get("new/series")),
         ("VM s1", "vm", d.get("vm/series")), ("ours s1x10", "new", d.get("new/growth")),
         ("ours s2", "new", d.get("new/keys")), ("VM s2", "vm", d.get("vm/keys"))], "bytes (log scale)", log=True)

    def med(name: str, what: str, k: float = 1.0) -> Optional[float]:
        v = _median(f, name, what)
        return None if v is None else v * k

    bars(axes[0][1], "start-up to first answer", [("ours s1", "new", med("new/series", "startup_s", 1e3)),
         ("ours s1x10", "new", med("new/growth", "startup_s", 1e3)), ("VM s1", "vm", med("vm/series", "startup_s", 1e3)),
         ("old s1", "old", med("old/series", "startup_s", 1e3)), ("ours s2", "new", med("new/keys", "startup_s", 1e3)),
         ("VM s2", "vm", med("vm/keys", "startup_s", 1e3))], "ms")
    bars(axes[0][2], "RSS after start-up", [("ours s1", "new", med("new/series", "rss", 2**-20)),
         ("ours s1x10", "new", med("new/growth", "rss", 2**-20)), ("VM s1", "vm", med("vm/series", "rss", 2**-20)),
         ("old s1", "old", med("old/series", "rss", 2**-20)), ("ours s2", "new", med("new/keys", "rss", 2**-20)),
         ("VM s2", "vm", med("vm/keys", "rss", 2**-20))], "MiB")
    i = {k: v / 1e6 for k, v in f["ingest"].items()}
    bars(axes[1][0], "ingest until readable", [("ours s1", "new", i.get("new/series")),
         ("ours s1 always", "new", i.get("new-always/series")), ("VM s1", "vm", i.get("vm/series")),
         ("old s1", "old", i.get("old/series")), ("ours s2", "new", i.get("new/keys")),
         ("ours s2 always", "new", i.get("new-always/keys")), ("VM s2", "vm", i.get("vm/keys"))],
         "M points/s (log scale)", log=True)
    g = f.get("get", {})
    for ax, what, title in ((axes[1][1], "get_one", "get <key>, 20,000 points"),
                            (axes[1][2], "get_all", "get *, shape 1")):
        if what in g:
            bars(ax, title + " (best)", [("new (blocks)", "new", g[what]["new"] * 1e3),
                 ("old (memory)", "old", g[what]["old"] * 1e3)], "ms")
    s1, s2 = f["shapes"]["series"], f["shapes"]["keys"]
    fig.suptitle(f"storage engine: s1 = {s1[0]:,} series x {s1[1]:,} points, s2 = {s2[0]:,} keys x 1 point "
                 f"(scale {f['scale']:g}); blue ours, orange VictoriaMetrics, grey the server before the engine",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return f"chart written to {path}"


if __name__ == "__main__":  # redraw: python benches/storage_report.py FIGURES.json [PNG]
    import json
    import sys
    with open(sys.argv[1]) as source:
        saved = json.load(source)
    print(table(saved))
    print(chart(saved, sys.argv[2] if len(sys.argv) > 2 else "storage.png"))
