"""The chaos test: two real ACD processes (``callcenter serve``) on one real Redis,
robot agents (real seat clients over WSS, seat_agent.client, whose phones the
AGI peer harness answers), synthetic callers at 2.25 x normal load through the AGI peer harness,
and a SIGKILL of the active ACD in the middle.

Every call must reach exactly one outcome (the caller's side: a CC_RESULT or a
hang-up; the ACDs' side: exactly one terminal queue_log event across both
ACDs, and nothing left in the survivor's engine); none is lost; the failover
time is reported.

Load: 8 robot agents with an average handling time of ~3 s (ring 0.2-0.8 s,
talk 1-3 s, wrap-up 0.5 s) serve ~2.7 calls/s; "normal" is 80 % of that
(2.13 calls/s), so 2.25 x normal is 4.8 calls/s for 30 s (~140 calls), many of
whom abandon after 6-20 s of waiting, as overloaded callers do.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from callcenter.state.cluster import ROBOT_PASSWORD, LocalCluster
from callcenter.testing.polling import wait_until as until

AGENTS = 8
AHT_S = 0.5 + 2.0 + 0.5
NORMAL_RATE = 0.8 * AGENTS / AHT_S
RATE = round(2.25 * NORMAL_RATE, 2)
DURATION_S = 30.0
KILL_AT_S = 12.0
TERMINAL = ("COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT")


def terminal_events(*paths) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split("|")
            if len(f) >= 5 and f[4] in TERMINAL:
                out.setdefault(f[1], []).append((path.parent.parent.name, f[4]))
    return out


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_sigkill_active_acd_under_load_loses_no_call(tmp_path, record_property):
    cluster = LocalCluster(tmp_path / "cluster", acds=2, agents=AGENTS, seat_robots=True)
    try:
        cluster.start()
        first = cluster.wait_active()
        second = next(a for a in cluster.acds if a is not first)
        until(lambda: "joining as standby" in second.log_text(), 20, "the second ACD to stand by")
        until(lambda: second.health() == "standby", 10, "the standby's /healthz to say so (503)")

        args = [
            sys.executable,
            "-m",
            "callcenter.state.drill",
            "--agents",
            str(AGENTS),
            "--rate",
            str(RATE),
            "--duration",
            str(DURATION_S),
            "--kill-pid",
            str(first.pid),
            "--kill-at",
            str(KILL_AT_S),
            "--health",
            second.admin_url + "/healthz",
            "--seed",
            "20261128",
            "--seat-password",
            ROBOT_PASSWORD,
            "--seat-cafile",
            cluster.cafile,
        ]
        for acd in (first, second):
            args += ["--acd", f"{acd.fastagi[0]}:{acd.fastagi[1]}", "--seat", acd.seat_url]
        run = subprocess.run(args, capture_output=True, text=True, timeout=150)
        assert run.returncode == 0, run.stderr[-3000:]
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        details = summary.pop("calls_detail")
        print("\nchaos drill:", json.dumps(summary, indent=1))
        record_property("failover_health_s", summary["failover_health_s"])
        record_property("failover_first_resume_s", summary["failover_first_resume_s"])

        # the load ran and the active really died in the middle
        assert summary["calls"] >= 100 and summary["killed_at_s"] is not None
        assert not first.alive()
        # no call lost: every caller got a result
        assert summary["lost"] == 0 and summary["finished"] == summary["calls"], summary
        assert set(summary["results"]) <= {"answered", "abandoned", "fallback", "callback", "hangup", "shed"}
        # failover happened and callers resumed on the survivor.  The time budget (3 s lease + poll <
        # 5 s) is proven on a task.Clock in test_service_outage.py
        # (test_takeover_time_with_default_lease_is_under_5s); measured wall-clock figures are recorded
        # above and bounded here only loosely, so a loaded machine cannot fail the drill.
        assert summary["failover_health_s"] is not None and summary["failover_health_s"] < 30.0
        assert summary["failover_first_resume_s"] is not None and summary["failover_first_resume_s"] < 30.0
        assert summary["resumed_sessions"] > 0
        # the robot agents' seat clients followed the failover and logged in to the survivor
        assert summary["seat_robots_logged_in_at_end"] == AGENTS, summary
        assert len(summary["seat_relogin_after_kill_s"]) == AGENTS, summary
        # ... by resuming their sessions with the cluster-signed token, without a password
        assert summary["seat_resumed_after_kill"] == AGENTS, summary
        record_property("seats_back_after_kill_s", summary["seats_back_after_kill_s"])
        answered_after = [u for u, (res, ended, acd, *_sessions) in details.items() if res == "answered" and acd == 1]
        assert answered_after, "the survivor answered no call"

        # the survivor restored the state; resumed callers were known there (kept their places)
        log_b = second.log_text()
        assert "active with fencing token 2" in log_b
        unknown = log_b.count("not known here")
        assert unknown <= 3, f"{unknown} resumed calls were unknown to the survivor"

        # the engine's side: nothing left behind once the survivor's agents finish wrap-up
        def settled():
            code, status = second.api("status")
            if code != 200:
                return False
            pool = status["pools"][0]["agents"]
            return status["queues"][0]["waiting"] == 0 and not any(
                pool.get(s) for s in ("offered", "on-call", "wrap-up")
            )

        until(settled, 15, "the survivor to have no call waiting, ringing or talking")
        leftovers = [u for u in details if second.api(f"calls/{u}")[0] != 404]
        assert leftovers == []

        # exactly one outcome per call across both ACDs' queue_logs
        events = terminal_events(first.directory / "state" / "queue_log", second.directory / "state" / "queue_log")
        twice = {u: e for u, e in events.items() if len(e) > 1}
        assert twice == {}, twice
        missing = [u for u in details if u not in events]
        # the killed ACD may lose the queue_log lines of its very last moments, never more
        excusable = {
            u
            for u, (res, ended, acd, *_sessions) in details.items()
            if acd == 0 and summary["killed_at_s"] - 2.0 <= ended <= summary["killed_at_s"] + 1.0
        }
        assert set(missing) <= excusable, missing
        record_property("calls", summary["calls"])
    finally:
        cluster.stop()
