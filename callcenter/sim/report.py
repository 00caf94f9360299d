"""Turn a simulated day into figures: summary.json, a table on stdout, PNG plots.

Definitions (docs/simulator.md has the full summary.json schema):

* offered -- callers who arrived (callbacks the engine creates for abandoned
  callers are counted apart, under ``callbacks``);
* connection rate (接通率) -- answered live / offered;
* 15-s connection rate -- answered within 15 s / offered;
* service level -- answered within ``service_level_s`` / (offered - short
  abandons under 5 s), the usual call-center convention;
* ASA -- mean wait of the answered calls;
* abandon rate -- abandoned / offered;
* occupancy -- agent time busy (ringing, talking, wrap-up) / agent time
  staffed (logged in and not in not-ready);
* tier share -- answered by pools of that tier / answered;
* borrowed share of a lender -- the time-weighted share of the lender's
  logged-in agents busy on our calls (mean and hourly peak), next to the
  config's ``max_share`` cap.

Calls and hours are bucketed by the hour the caller arrived.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from .scenario import HOURS
from .simulator import CallRecord, SimResult

__all__ = ["summarize", "write_summary", "print_report", "write_plots", "SCHEMA"]

SCHEMA = "callcenter.sim.summary/1"
CONNECT_S = 15.0


class _Tally:
    __slots__ = ("offered", "answered", "within_connect", "within_sl", "abandoned", "short_abandoned", "fallback",
                 "unfinished", "callback_requested", "called_back", "wait_answered", "wait_all", "by_tier",
                 "by_pool", "cb_created", "cb_connected")

    def __init__(self) -> None:
        self.offered = self.answered = self.within_connect = self.within_sl = 0
        self.abandoned = self.short_abandoned = self.fallback = self.unfinished = 0
        self.callback_requested = self.called_back = 0
        self.cb_created = self.cb_connected = 0
        self.wait_answered = 0.0
        self.wait_all = 0.0
        self.by_tier: dict[int, int] = defaultdict(int)
        self.by_pool: dict[str, int] = defaultdict(int)

    def add(self, r: CallRecord, sl_s: float) -> None:
        if r.origin is not None:  # a callback made for an abandoned caller
            self.cb_created += 1
            if r.outcome == "called-back":
                self.cb_connected += 1
            return
        self.offered += 1
        self.wait_all += r.wait_s
        if r.callback:
            self.callback_requested += 1
        o = r.outcome
        if o == "answered":
            self.answered += 1
            self.wait_answered += r.wait_s
            if r.wait_s <= CONNECT_S:
                self.within_connect += 1
            if r.wait_s <= sl_s:
                self.within_sl += 1
            self.by_tier[r.tier] += 1
            self.by_pool[r.pool] += 1
        elif o == "called-back":
            self.called_back += 1
        elif o == "abandoned":
            self.abandoned += 1
            if r.short_abandon:
                self.short_abandoned += 1
        elif o == "callback-failed":  # a caller's callback never reached them: not served, as abandoned
            self.abandoned += 1
        elif o == "fallback":
            self.fallback += 1
        else:
            self.unfinished += 1

    def figures(self, tiers: list[int]) -> dict[str, Any]:
        off = self.offered
        ans = self.answered

        def rate(n: int, d: int) -> float | None:
            return round(n / d, 6) if d else None

        return {
            "offered": off,
            "answered": ans,
            "answered_within_15s": self.within_connect,
            "answered_within_sl": self.within_sl,
            "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned,
            "fallback": self.fallback,
            "unfinished": self.unfinished,
            "callback_requested": self.callback_requested,
            "called_back": self.called_back,
            "connection_rate": rate(ans, off),
            "connection_rate_15s": rate(self.within_connect, off),
            "service_level": rate(self.within_sl, off - self.short_abandoned),
            "asa_s": round(self.wait_answered / ans, 3) if ans else None,
            "mean_wait_s": round(self.wait_all / off, 3) if off else None,
            "abandon_rate": rate(self.abandoned, off),
            "answered_by_tier": {str(t): self.by_tier.get(t, 0) for t in tiers},
            "tier_share": {str(t): rate(self.by_tier.get(t, 0), ans) for t in tiers},
            "callbacks": {"created": self.cb_created, "connected": self.cb_connected},
        }


def _hour(t: float) -> int:
    return min(max(int(t // 3600), 0), HOURS - 1)


def summarize(result: SimResult, comparison: SimResult | None = None) -> dict[str, Any]:
    """The summary.json document (schema ``callcenter.sim.summary/1``)."""
    sc = result.scenario
    cfg = result.config
    sl_s = sc.service_level_s
    tiers = sorted({p.tier for p in cfg.pools})
    h0, h1 = int(sc.start_hour), int(-(-sc.end_hour // 1))
    hours = list(range(h0, min(h1, HOURS)))

    total = _Tally()
    by_hour = {h: _Tally() for h in hours}
    by_queue: dict[str, _Tally] = {q: _Tally() for q in sc.queues}
    by_queue_hour: dict[str, dict[int, _Tally]] = {q: {h: _Tally() for h in hours} for q in sc.queues}
    talk_by_pool: dict[str, float] = defaultdict(float)
    talks_by_pool: dict[str, int] = defaultdict(int)  # the calls talk_by_pool sums over, callbacks included
    for r in result.calls:
        h = _hour(r.arrived)
        total.add(r, sl_s)
        if h in by_hour:
            by_hour[h].add(r, sl_s)
            by_queue_hour[r.queue][h].add(r, sl_s)
        by_queue[r.queue].add(r, sl_s)
        if r.pool is not None and r.outcome in ("answered", "called-back"):
            talk_by_pool[r.pool] += r.talk_s
            talks_by_pool[r.pool] += 1

    peak_waiting = {h: 0 for h in hours}
    for t, snap in result.timeline:
        h = _hour(t)
        if h in peak_waiting:
            peak_waiting[h] = max(peak_waiting[h], sum(sum(v) for v in snap.values()))

    def hour_rows(tallies: dict[int, _Tally], with_waiting: bool) -> list[dict[str, Any]]:
        rows = []
        for h in hours:
            row = {"hour": h, **tallies[h].figures(tiers)}
            if with_waiting:
                row["peak_waiting"] = peak_waiting[h]
            rows.append(row)
        return rows

    pools: dict[str, Any] = {}
    lenders: dict[str, Any] = {}
    answered_total = total.answered + total.called_back + total.cb_connected
    for p in cfg.pools:
        tally = result.pools[p.name]
        logged = sum(tally.logged) + tally.drain["logged"]
        staffed = sum(tally.staffed) + tally.drain["staffed"]
        busy = sum(tally.busy) + tally.drain["busy"]
        answered = total.by_pool.get(p.name, 0)
        hrs = []
        for h in hours:
            hrs.append({
                "hour": h,
                "agents_mean": round(tally.logged[h] / 3600, 3),
                "occupancy": round(tally.busy[h] / tally.staffed[h], 6) if tally.staffed[h] else None,
                "busy_share": round(tally.busy[h] / tally.logged[h], 6) if tally.logged[h] else None,
                "busy_share_max": round(tally.max_busy_share[h], 6),
            })
        d = tally.drain
        entry = {
            "kind": p.kind,
            "tier": p.tier,
            "lender": p.lender,
            "answered": answered,
            "share_of_answered": round(answered / total.answered, 6) if total.answered else None,
            "agent_hours": round(logged / 3600, 3),
            "occupancy": round(busy / staffed, 6) if staffed else None,
            "talk_s_mean": (round(talk_by_pool[p.name] / talks_by_pool[p.name], 3)
                            if talks_by_pool[p.name] else None),
            "offers": tally.offers,
            "no_answer": tally.no_answer,
            "hours": hrs,
            # after the window's end: no new callers, the last calls finishing (not in any hour)
            "drain": {"seconds": round(d["seconds"], 3), "agent_hours": round(d["logged"] / 3600, 3),
                      "occupancy": round(d["busy"] / d["staffed"], 6) if d["staffed"] else None},
        }
        pools[p.name] = entry
        if p.kind == "borrowed":
            key = p.lender or p.name
            lend = lenders.setdefault(key, {"pools": [], "answered": 0, "max_share": p.max_share,
                                            "_busy": 0.0, "_logged": 0.0, "busy_share_max": 0.0})
            lend["pools"].append(p.name)
            lend["answered"] += answered
            lend["_busy"] += busy
            lend["_logged"] += logged
            lend["busy_share_max"] = max(lend["busy_share_max"], round(max(tally.max_busy_share, default=0.0), 6))
    for lend in lenders.values():
        lend["share_of_answered"] = round(lend["answered"] / total.answered, 6) if total.answered else None
        lend["busy_share_mean"] = round(lend.pop("_busy") / lend["_logged"], 6) if lend["_logged"] else None
        lend.pop("_logged")
        lend["cap_respected"] = lend["max_share"] is None or lend["busy_share_max"] <= lend["max_share"] + 1e-9

    tier_rows = {}
    for t in tiers:
        n = total.by_tier.get(t, 0)
        tier_rows[str(t)] = {
            "answered": n,
            "share": round(n / total.answered, 6) if total.answered else None,
            "pools": [p.name for p in cfg.pools if p.tier == t],
            "hours": [{"hour": h, "answered": by_hour[h].by_tier.get(t, 0),
                       "share": round(by_hour[h].by_tier.get(t, 0) / by_hour[h].answered, 6)
                       if by_hour[h].answered else None} for h in hours],
        }

    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "scenario": {"name": sc.name, "description": sc.description, "surge": sc.surge,
                     "start_hour": sc.start_hour, "end_hour": sc.end_hour},
        "seed": result.seed,
        "overflow": result.overflow,
        "service_level_s": sl_s,
        "connect_s": CONNECT_S,
        "run": {
            "calls": len(result.calls),
            "engine_events": result.events,
            "engine_inputs": result.inputs,
            "wall_s": round(result.wall_s, 3),
            "calls_per_s": round(len(result.calls) / result.wall_s, 1) if result.wall_s else None,
            "sim_end_s": round(result.sim_end, 3),
            "refused_inputs": list(result.errors),
        },
        "totals": {**total.figures(tiers), "answered_incl_callbacks": answered_total},
        "hours": hour_rows(by_hour, True),
        "queues": {q: {"totals": by_queue[q].figures(tiers), "hours": hour_rows(by_queue_hour[q], False)}
                   for q in sc.queues},
        "tiers": tier_rows,
        "pools": pools,
        "lenders": lenders,
    }
    if comparison is not None:
        other = summarize(comparison)
        doc["without_overflow"] = {"totals": other["totals"], "hours": other["hours"], "pools": other["pools"],
                                   "run": other["run"]}
    return doc


def write_summary(doc: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# -- stdout -------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def make_console():
    """A rich console; on a pipe or file, wide enough that the tables are not squeezed into 80 columns."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def print_report(doc: dict[str, Any], console=None) -> None:
    """A readable summary on stdout (rich tables)."""
    from rich.table import Table

    console = console or make_console()
    sc = doc["scenario"]
    tiers = list(doc["tiers"])
    title = f"{sc['name']}: surge x{sc['surge']}, seed {doc['seed']}{'' if doc['overflow'] else ', NO overflow'}"
    t = Table(title=title, show_lines=False)
    for col in ("hour", "offered", "answered", "connected", "in 15 s", f"SL {doc['service_level_s']:g}s",
                "ASA s", "abandon", *[f"tier {x}" for x in tiers], "peak queue"):
        t.add_column(col, justify="right")
    for row in doc["hours"]:
        if not row["offered"]:
            continue
        t.add_row(f"{row['hour']:02d}", str(row["offered"]), str(row["answered"]), _pct(row["connection_rate"]),
                  _pct(row["connection_rate_15s"]), _pct(row["service_level"]),
                  "-" if row["asa_s"] is None else f"{row['asa_s']:.1f}", _pct(row["abandon_rate"]),
                  *[_pct(row["tier_share"][x]) for x in tiers], str(row["peak_waiting"]))
    tot = doc["totals"]
    t.add_row("day", str(tot["offered"]), str(tot["answered"]), _pct(tot["connection_rate"]),
              _pct(tot["connection_rate_15s"]), _pct(tot["service_level"]),
              "-" if tot["asa_s"] is None else f"{tot['asa_s']:.1f}", _pct(tot["abandon_rate"]),
              *[_pct(tot["tier_share"][x]) for x in tiers], "", style="bold")
    console.print(t)

    p = Table(title="pools")
    for col in ("pool", "kind", "tier", "agent-h", "answered", "share", "occupancy", "AHT talk s", "offers", "no answer"):
        p.add_column(col, justify="right")
    for name, e in doc["pools"].items():
        p.add_row(name, e["kind"], str(e["tier"]), f"{e['agent_hours']:.0f}", str(e["answered"]),
                  _pct(e["share_of_answered"]), _pct(e["occupancy"]),
                  "-" if e["talk_s_mean"] is None else f"{e['talk_s_mean']:.0f}", str(e["offers"]), str(e["no_answer"]))
    console.print(p)
    if doc["lenders"]:
        lt = Table(title="lenders (borrowed agents)")
        for col in ("lender", "answered", "share of answered", "busy share mean", "busy share peak", "cap", "cap kept"):
            lt.add_column(col, justify="right")
        for name, e in doc["lenders"].items():
            lt.add_row(name, str(e["answered"]), _pct(e["share_of_answered"]), _pct(e["busy_share_mean"]),
                       _pct(e["busy_share_max"]), _pct(e["max_share"]), "yes" if e["cap_respected"] else "NO")
        console.print(lt)
    if "without_overflow" in doc:
        w = doc["without_overflow"]["totals"]
        console.print(
            f"[bold]with overflow[/bold]: connected {_pct(tot['connection_rate'])}, in 15 s "
            f"{_pct(tot['connection_rate_15s'])}, abandoned {_pct(tot['abandon_rate'])}, ASA {tot['asa_s']} s\n"
            f"[bold]without overflow[/bold]: connected {_pct(w['connection_rate'])}, in 15 s "
            f"{_pct(w['connection_rate_15s'])}, abandoned {_pct(w['abandon_rate'])}, ASA {w['asa_s']} s"
        )
    run = doc["run"]
    console.print(f"{run['calls']} calls simulated in {run['wall_s']:.1f} s ({run['calls_per_s']} calls/s); "
                  f"{run['engine_events']} engine events")
    if run["refused_inputs"]:
        console.print(f"[yellow]{len(run['refused_inputs'])} inputs refused by the engine[/yellow], first: "
                      f"{run['refused_inputs'][0]}")


# -- plots --------------------------------------------------------------------
def write_plots(doc: dict[str, Any], result: SimResult, out_dir: Path, comparison: SimResult | None = None) -> list[Path]:
    """connection_rate.png, waiting.png and occupancy.png under ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    tiers = list(doc["tiers"])
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    hours = [r["hour"] for r in doc["hours"]]

    # 1. connection rate by hour, stacked by the tier that answered
    fig, ax = plt.subplots(figsize=(11, 5))
    bottom = [0.0] * len(hours)
    for i, t in enumerate(tiers):
        vals = [(r["answered_by_tier"][t] / r["offered"]) if r["offered"] else 0.0 for r in doc["hours"]]
        ax.bar(hours, vals, bottom=bottom, color=colors[i % len(colors)], alpha=0.75,
               label=f"answered by tier {t} ({', '.join(doc['tiers'][t]['pools'])})")
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.plot(hours, [r["connection_rate_15s"] for r in doc["hours"]], "k--", marker=".", label="connected within 15 s")
    if "without_overflow" in doc:
        ax.plot(hours, [r["connection_rate"] for r in doc["without_overflow"]["hours"]], color="red", marker="o",
                label="connection rate without overflow")
    ax.axhline(0.95, color="grey", lw=0.8, ls=":", label="95% target")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("hour of day (arrival)")
    ax.set_ylabel("share of offered calls")
    ax.set_title(f"Connection rate by hour - {doc['scenario']['name']} (surge x{doc['scenario']['surge']})")
    # outside the axes: inside, it covers the night hours' bars
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
    ax.set_xticks(hours)
    fig.tight_layout()
    p = out_dir / "connection_rate.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)

    # 2. waiting callers through the day, stacked by the tier they may reach; the run
    #    without overflow gets its own panel (its queue is usually far longer)
    if comparison is not None:
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    else:
        fig, ax = plt.subplots(figsize=(11, 5))
    ts = [t / 3600 for t, _ in result.timeline]
    ntier = max((len(v) for _, snap in result.timeline for v in snap.values()), default=1)
    series = []
    for k in range(ntier):
        series.append([sum(v[k] for v in snap.values() if k < len(v)) for _, snap in result.timeline])
    if ts:
        ax.stackplot(ts, *series, labels=[f"waiting, may reach tier {k}" for k in range(ntier)],
                     colors=colors[:ntier], alpha=0.7)
    ax.set_ylabel("callers waiting")
    ax.set_title("Waiting callers through the day" + (" - with overflow" if comparison is not None else ""))
    ax.legend(loc="upper left", fontsize=8)
    if comparison is not None:
        cts = [t / 3600 for t, _ in comparison.timeline]
        ax2.plot(cts, [sum(sum(v) for v in snap.values()) for _, snap in comparison.timeline], color="red", lw=1.2,
                 label="waiting without overflow (own seats only)")
        ax2.set_ylabel("callers waiting")
        ax2.set_title("Without overflow")
        ax2.legend(loc="upper left", fontsize=8)
        ax2.set_xlabel("hour of day")
    else:
        ax.set_xlabel("hour of day")
    fig.tight_layout()
    p = out_dir / "waiting.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)

    # 3. occupancy by pool
    fig, ax = plt.subplots(figsize=(11, 4))
    for i, (name, e) in enumerate(doc["pools"].items()):
        # hours with under one agent-hour (agents finishing a last call after their shift) say little
        ys = [h["occupancy"] if h["agents_mean"] >= 1 else None for h in e["hours"]]
        if any(y is not None for y in ys):
            ax.plot([h["hour"] for h in e["hours"]], [float("nan") if y is None else y for y in ys],
                    marker=".", color=colors[i % len(colors)], label=f"{name} (tier {e['tier']})")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("hour of day")
    ax.set_ylabel("occupancy")
    ax.set_title("Agent occupancy by pool")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    p = out_dir / "occupancy.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    return paths
