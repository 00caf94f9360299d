"""The active ACD SIGKILLed under load behind a real Asterisk, a standby running on the same Redis
and database: every call ends with one complete CDR that agrees with Asterisk's, no channel is
left behind.  The dialplan tries CC_ACD1 then CC_ACD2 (docs/failover.md)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from callcenter.redis_server import EmbeddedRedis
from callcenter.testing.polling import wait_until
from tests.support.asterisk import Asterisk
from tests.support.e2e import (
    E2E_DIALPLAN,
    AcdProcess,
    AgentSpec,
    Robots,
    acd_cdrs,
    acd_config,
    prepare_accounts,
    project_dialplan,
    project_moh,
    reconcile,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


def ready_seats(acd: AcdProcess) -> int:
    try:
        return sum(p["agents"].get("ready", 0) for p in acd.status()["pools"])
    except OSError:  # busy: ask again
        return 0


def on_call(acd: AcdProcess) -> int:
    try:
        return sum(p["agents"].get("on-call", 0) for p in acd.status()["pools"])
    except OSError:
        return 0


def test_active_acd_killed_under_load_loses_no_call(asterisk_prefix):
    tmp = Path(tempfile.mkdtemp(prefix="cc-e2e-fo-"))
    redis = EmbeddedRedis(tmp / "redis").start()
    acds: list[AcdProcess] = []
    robots: Robots | None = None
    ast: Asterisk | None = None
    try:
        cfgs = []
        for name in ("acd-a", "acd-b"):
            (tmp / name).mkdir()
            cfgs.append(acd_config(tmp / name, name=name, redis_url=redis.url))
        cfgs[1]["acd"]["database_url"] = cfgs[0]["acd"]["database_url"]  # one records database
        a, b = (AcdProcess(tmp / c["acd"]["name"], c) for c in cfgs)
        ports = [c["acd"]["listen"]["fastagi_port"] for c in cfgs]
        relays = [c["acd"]["listen"]["agi_relay_port"] for c in cfgs]
        ast = Asterisk(asterisk_prefix, dialplan=project_dialplan(ports, relays), extra_dialplan=E2E_DIALPLAN,
                       env={"CALLCENTER_AGI_SECRET": cfgs[0]["acd"]["agi_secret"]})
        ast.musiconhold = project_moh(ast.moh_dir)
        ast.start()
        for c in cfgs:
            c["acd"]["callfile_dir"] = str(ast.outgoing)
        ids = [f"10{i:02d}" for i in range(1, 9)]
        prepare_accounts(a.db_url, [AgentSpec(i) for i in ids])
        acds += [a.start(), b]
        shutil.copytree(a.state_dir / "tls", b.state_dir / "tls")  # one certificate for the cluster
        b.start(standby=True)
        robots = Robots(a)
        robots.start(ids, seat_urls=[f"wss://127.0.0.1:{c['acd']['listen']['seat_port']}/seat" for c in cfgs])
        wait_until(lambda: ready_seats(a) >= len(ids), 60, "robot seats ready", interval=0.25)
        for i in ids:
            for family, value in (("e2e-agent", "answer"), ("e2e-ring", "0"), ("e2e-talk", "6")):
                ast.ami.action("DBPut", Family=family, Key=i, Val=value)
        for n in range(12):  # 8 talking and 4 waiting when the active ACD dies
            ast.originate("Local/12345@cc-inbound/n", context="e2e-caller", exten="s",
                          callerid=f'"c{n}" <1380000{n:04d}>')
        wait_until(lambda: on_call(a) >= 4, 30, "conversations in progress", interval=0.25)
        a.kill()
        wait_until(b.healthy, 30, "the standby taking over")
        wait_until(lambda: ast.active_channels() == 0, 120, "every channel gone")
        problems = reconcile(ast.cdrs(), acd_cdrs(a.db_url))
        wait_until(lambda: len(acd_cdrs(a.db_url)) >= 12, 30, f"12 CDRs; so far: {problems}")
        wait_until(lambda: ast.active_channels() == 0, 60, "every channel gone")
        cdrs = acd_cdrs(a.db_url)
        assert sorted(c.outcome for c in cdrs.values()) == ["answered"] * 12, cdrs
        assert all(c.caller_masked and c.offers for c in cdrs.values()), cdrs
        assert reconcile(ast.cdrs(), cdrs) == []
    finally:
        if robots:
            robots.stop()
        for acd in acds:
            acd.stop()
        if ast:
            ast.stop()
            if not os.environ.get("CALLCENTER_E2E_KEEP"):
                ast.cleanup()
        redis.stop()
        if not os.environ.get("CALLCENTER_E2E_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
