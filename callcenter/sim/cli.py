"""``callcenter simulate`` and ``callcenter plan`` (registered by callcenter/cli.py).

    callcenter simulate --config CFG --scenario SCN [--seed N] [--out DIR] [--compare-no-overflow]
    callcenter plan --config CFG --scenario SCN [--connected 0.95 --within 0.8 --within-s 15]
                    [--verify [--seeds 3] [--warmup-h 1]]
    callcenter plan --calls-per-hour 900,1200,... --aht 255 --patience 90 [--own 150,150,...]

docs/simulator.md explains the inputs and outputs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from contextlib import contextmanager
from pathlib import Path

__all__ = ["register"]

DEFAULT_CONFIG = os.environ.get("CALLCENTER_CONFIG", "deploy/callcenter.yaml")


def register(subparsers) -> None:
    sim = subparsers.add_parser("simulate", help="simulate a day on the real routing engine (surge what-if)")
    sim.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config file (default: %(default)s)")
    sim.add_argument("--scenario", required=True, help="scenario YAML (see deploy/scenarios/)")
    sim.add_argument("--seed", type=int, default=1, help="random seed; same seed, same result (default: 1)")
    sim.add_argument("--out", default="sim-out", help="directory for summary.json and plots (default: %(default)s)")
    sim.add_argument("--compare-no-overflow", action="store_true",
                     help="also run with the overflow tiers removed and compare")
    sim.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    sim.add_argument("--no-progress", action="store_true", help="no progress bar")
    sim.set_defaults(func=_simulate)

    plan = subparsers.add_parser("plan", help="agents needed per hour by Erlang C and Erlang A (staffing plan)")
    plan.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config file (default: %(default)s)")
    plan.add_argument("--scenario", help="take the forecast and rosters from this scenario")
    plan.add_argument("--calls-per-hour", help="24 comma-separated arrival counts (overrides the scenario's)")
    plan.add_argument("--aht", type=float, help="average handle time in seconds: talk + wrap-up (+ ring)")
    plan.add_argument("--patience", type=float, help="mean patience in seconds (exponential)")
    plan.add_argument("--own", help="24 comma-separated own (tier-0) seats on shift")
    plan.add_argument("--connected", type=float, default=0.95, help="target connection rate (default: %(default)s)")
    plan.add_argument("--within", type=float, default=0.80,
                      help="target share answered within --within-s (default: %(default)s)")
    plan.add_argument("--within-s", type=float, default=15.0, help="seconds (default: %(default)s)")
    plan.add_argument("--verify", action="store_true", help="check the plan by simulation (needs --scenario)")
    plan.add_argument("--seed", type=int, default=1, help="first seed of --verify (default: %(default)s)")
    plan.add_argument("--seeds", type=int, default=3,
                      help="--verify: simulations with seeds --seed, --seed+1, ... (default: %(default)s)")
    plan.add_argument("--warmup-h", type=float, default=1.0,
                      help="--verify: hours at the window's start not judged, the system starting empty "
                           "(default: %(default)s)")
    plan.add_argument("--json", help="also write the plan as JSON to this file")
    plan.set_defaults(func=_plan)


def _print_issues(exc) -> None:
    n = len(exc.issues)
    print(f"{exc.source}: {n} problem{'s' if n != 1 else ''}:", file=sys.stderr)
    for issue in exc.issues:
        print(f"  {issue}", file=sys.stderr)


def _load(config_path: str, scenario_path: str | None):
    from callcenter.config import ConfigError, load_config

    from .scenario import check_against_config, load_scenario

    config = load_config(config_path)
    scenario = None
    if scenario_path:
        scenario = load_scenario(scenario_path)
        check_against_config(scenario, config, scenario_path)
    return config, scenario, ConfigError


@contextmanager
def _progress(label: str, start_s: float, end_s: float, enabled: bool):
    """A tqdm bar over simulated hours; it appears only if the run lasts over 2 s."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI); delay: only for runs over 2 s
    bar = tqdm(total=round((end_s - start_s) / 3600, 2), unit="sim-h", desc=label, delay=2.0, leave=False, disable=None,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.0f} sim-h [{elapsed}<{remaining}]")

    def update(now: float) -> None:
        done = round((min(now, end_s) - start_s) / 3600, 3)
        if done > bar.n:
            bar.update(done - bar.n)  # update(), not refresh(): it is what honours `delay`

    try:
        yield update
    finally:
        bar.close()


def _simulate(args: argparse.Namespace) -> int:
    from callcenter.config import ConfigError
    from callcenter.extras import require

    from .report import print_report, summarize, write_plots, write_summary
    from .simulator import simulate, without_overflow

    needed = ([] if args.no_plots else ["matplotlib"]) + ([] if args.no_progress else ["tqdm"])
    require(*needed, extra="sim", what="callcenter simulate")
    try:
        config, scenario, _ = _load(args.config, args.scenario)
    except ConfigError as exc:
        _print_issues(exc)
        return 1
    out = Path(args.out)
    problem = _unwritable(out)
    if problem:  # say so now, not after a run of minutes
        print(f"callcenter simulate: --out {args.out}: {problem}", file=sys.stderr)
        return 2
    start, end = scenario.start_hour * 3600, scenario.end_hour * 3600
    show = not args.no_progress
    with _progress("with overflow", start, end, show) as cb:
        result = simulate(config, scenario, args.seed, progress=cb)
    comparison = None
    if args.compare_no_overflow:
        with _progress("without overflow", start, end, show) as cb:
            comparison = simulate(without_overflow(config), scenario, args.seed, progress=cb)
        comparison.overflow = False
    doc = summarize(result, comparison)
    path = write_summary(doc, out)
    print_report(doc)
    if not args.no_plots:
        for p in write_plots(doc, result, out, comparison):
            print(f"wrote {p}")
    print(f"wrote {path}")
    return 0


def _unwritable(out: Path) -> str | None:
    """Why summary.json and the plots could not be written under ``out`` (None: they can)."""
    if out.exists() and not out.is_dir():
        return "exists and is not a directory"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create it ({exc.strerror or exc})"
    if not os.access(out, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise SystemExit(f"callcenter plan: {what}: expected comma-separated numbers") from None
    if len(vals) != 24:
        raise SystemExit(f"callcenter plan: {what}: expected 24 values (one per hour), got {len(vals)}")
    bad = [v for v in vals if not (math.isfinite(v) and 0 <= v <= 1e7)]
    if bad:
        raise SystemExit(f"callcenter plan: {what}: every value must be a finite number from 0 to 10,000,000 "
                         f"(got {bad[0]:g})")
    return vals


def _plan(args: argparse.Namespace) -> int:
    from rich.table import Table

    from callcenter.config import ConfigError

    from .planner import Forecast, Target, forecast_from_scenario, make_plan, verify_plan
    from .report import make_console

    config = scenario = None
    try:
        if args.scenario:
            config, scenario, _ = _load(args.config, args.scenario)
    except ConfigError as exc:
        _print_issues(exc)
        return 1
    if scenario is not None:
        forecast = forecast_from_scenario(scenario, config)
    else:
        missing = [f for f in ("calls_per_hour", "aht", "patience") if getattr(args, f) is None]
        if missing:
            print("callcenter plan: give --scenario, or --calls-per-hour, --aht and --patience "
                  f"(missing: {', '.join('--' + m.replace('_', '-') for m in missing)})", file=sys.stderr)
            return 2
        forecast = Forecast([0.0] * 24, 0.0, 0.0)
    if args.calls_per_hour:
        forecast.calls_per_hour = _floats(args.calls_per_hour, "--calls-per-hour")
    if args.aht is not None:
        forecast.aht_s = args.aht
    if args.patience is not None:
        forecast.patience_s = args.patience
    if args.own:
        forecast.own = [int(x) for x in _floats(args.own, "--own")]
    for name, v in (("--aht", forecast.aht_s), ("--patience", forecast.patience_s)):
        if not (math.isfinite(v) and v > 0):
            print(f"callcenter plan: {name} must be a finite number > 0", file=sys.stderr)
            return 2
    if not (math.isfinite(args.within_s) and 0 < args.within_s <= 3600):
        print("callcenter plan: --within-s must be in (0, 3600]", file=sys.stderr)
        return 2
    for name, v in (("--connected", args.connected), ("--within", args.within)):
        if not 0 <= v < 1:
            print(f"callcenter plan: {name} must be in [0, 1)", file=sys.stderr)
            return 2
    target = Target(args.connected, args.within, args.within_s)
    plan = make_plan(forecast, target)

    console = make_console()
    borrowed_names = [b[0] for b in forecast.borrowed]
    t = Table(title=(f"Staffing plan: >= {100 * target.connected:.0f}% connected, >= {100 * target.within:.0f}% "
                     f"within {target.within_s:g} s; AHT {forecast.aht_s:.0f} s, patience {forecast.patience_s:.0f} s"))
    for col in ("hour", "calls", "Erlangs", "Erlang C", "Erlang A", "pred. conn.", f"pred. {target.within_s:g}s",
                "own", "shortfall", "remote", *borrowed_names, "to find"):
        t.add_column(col, justify="right")
    for hp in plan:
        if hp.calls <= 0:
            continue
        t.add_row(f"{hp.hour:02d}", f"{hp.calls:.0f}", f"{hp.load_erlangs:.1f}", str(hp.erlang_c), str(hp.erlang_a),
                  f"{100 * hp.predicted_connected:.1f}%", f"{100 * hp.predicted_within:.1f}%", str(hp.own),
                  str(hp.shortfall), str(hp.remote_used), *[str(hp.borrowed_used.get(n, 0)) for n in borrowed_names],
                  str(hp.missing), style="bold red" if hp.missing else None)
    console.print(t)
    out: dict = {"target": target.__dict__, "aht_s": forecast.aht_s, "patience_s": forecast.patience_s,
                 "hours": [hp.to_dict() for hp in plan]}
    if args.verify:
        if scenario is None:
            print("callcenter plan: --verify needs --scenario (callers' behaviour and the pools)", file=sys.stderr)
            return 2
        if not 1 <= args.seeds <= 50:
            print("callcenter plan: --seeds must be from 1 to 50", file=sys.stderr)
            return 2
        window_h = scenario.end_hour - scenario.start_hour
        warmup = args.warmup_h
        if not (math.isfinite(warmup) and warmup >= 0):
            print("callcenter plan: --warmup-h must be a finite number >= 0", file=sys.stderr)
            return 2
        if warmup >= window_h:
            console.print(f"[yellow]the window ({window_h:g} h) is not longer than the warm-up ({warmup:g} h): "
                          "judging every hour[/yellow]")
            warmup = 0.0
        check = verify_plan(scenario, config, plan, target, seed=args.seed, seeds=args.seeds, warmup_h=warmup)
        v = Table(title=(f"Verification by simulation on the real engine (planned staffing, {args.seeds} seed(s), "
                         "mean ± 95% CI; NO only when the whole interval misses the target, ~ when it cannot tell)"))
        for col in ("hour", "offered", "connected", f"within {target.within_s:g}s", "ASA s", "meets target"):
            v.add_column(col, justify="right")

        def pm(m, half):
            return "-" if m is None else f"{100 * m:.1f}%" + (f" ± {100 * half:.1f}" if half else "")

        for row in check["hours"]:
            meets = row["meets"]
            v.add_row(f"{row['hour']:02d}", f"{row['offered']:g}", pm(row["connected"], row["connected_ci"]),
                      pm(row["within"], row["within_ci"]), "-" if row["asa_s"] is None else f"{row['asa_s']:.1f}",
                      meets, style="red" if meets == "NO" else "dim" if meets == "warm-up" else None)
        tot = check["totals"]
        console.print(v)
        console.print(f"day (after the warm-up): connected {pm(tot['connected'], tot['connected_ci'])}, "
                      f"within {target.within_s:g} s {pm(tot['within'], tot['within_ci'])}")
        out["verify"] = {"hours": check["hours"], "totals": tot}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
