"""Agent accounts, the seat helper's queries and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import threading
from datetime import datetime

import pytest
from argon2 import PasswordHasher
from records_helpers import CallRun
from sqlalchemy.orm import Session
from twisted.python.threadpool import ThreadPool

from callcenter.cli import main as callcenter_main
from callcenter.records import accounts
from callcenter.records import models as m
from callcenter.records.db import head_revision
from callcenter.records.queries import search_articles
from callcenter.records.writer import RecordsWriter

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # tests only; production uses the defaults


def test_accounts_add_list_disable_password_verify(migrated_db):
    db = migrated_db
    with Session(db.engine) as s, s.begin():
        a = accounts.add_agent(s, "1001", pool="own-12345", name="张三", endpoint="PJSIP/1001",
                               skills={"epidemic": 3}, password="correct horse", hasher=FAST)
        accounts.add_agent(s, "x21", pool="remote-cities", endpoint="PJSIP/xian-trunk/8021", hasher=FAST)
        accounts.add_agent(s, "b7", pool="lender-12333", endpoint="Local/1001@agents", password="another pw",
                           hasher=FAST)
    assert a.has_password and a.skills == {"epidemic": 3} and a.enabled
    with Session(db.engine) as s:
        stored = s.get(m.Agent, "1001").password_hash
        assert stored.startswith("$argon2id$") and "correct horse" not in stored
        assert [x.id for x in accounts.list_agents(s)] == ["b7", "1001", "x21"]  # by pool, then id
        assert [x.id for x in accounts.list_agents(s, "own-12345")] == ["1001"]

    def verify(agent, pw):
        with Session(db.engine) as s, s.begin():
            return accounts.verify_login(s, agent, pw, hasher=FAST)

    assert verify("1001", "correct horse").id == "1001"
    assert verify("1001", "wrong password") is None
    assert verify("nobody", "correct horse") is None
    assert verify("x21", "") is None  # no password set: cannot log in
    assert verify("1001", None) is None and verify("'; drop table agents; --", "x" * 10) is None
    with Session(db.engine) as s, s.begin():
        accounts.disable_agent(s, "1001")
    assert verify("1001", "correct horse") is None
    with Session(db.engine) as s, s.begin():
        accounts.set_enabled(s, "1001", True)
        accounts.set_password(s, "1001", "new password!", hasher=FAST)
    assert verify("1001", "correct horse") is None and verify("1001", "new password!").id == "1001"

    with Session(db.engine) as s, s.begin():
        with pytest.raises(accounts.AgentExists):
            accounts.add_agent(s, "1001", pool="own-12345", hasher=FAST)
        for bad in (dict(endpoint="1001"), dict(endpoint="Local/1001"), dict(endpoint="PJSIP/10 01"),
                    dict(skills={"x": 1000}), dict(password="short")):
            with pytest.raises(accounts.InvalidAccount):
                accounts.add_agent(s, "new1", pool="own-12345", hasher=FAST, **bad)
        with pytest.raises(accounts.InvalidAccount):
            accounts.add_agent(s, "bad id!", pool="own-12345", hasher=FAST)
        with pytest.raises(accounts.UnknownAgent):
            accounts.set_password(s, "ghost", "long enough", hasher=FAST)


def test_verify_in_a_thread_from_the_reactor(migrated_db):
    """The reactor-side call returns at once; the argon2 check runs on a pool thread."""
    db = migrated_db
    with Session(db.engine) as s, s.begin():
        accounts.add_agent(s, "1001", pool="own", password="correct horse", hasher=FAST)
    pool = ThreadPool(1, 1, name="verify")
    pool.start()
    done = threading.Event()
    results, threads_seen = [], []

    class ThreadReactor:  # delivers results in the pool thread; enough for deferToThreadPool
        def callFromThread(self, f, *a, **kw):
            threads_seen.append(threading.current_thread().name)
            f(*a, **kw)

    try:
        for pw in ("correct horse", "wrong one!"):
            d = accounts.verify_login_in_thread(db.engine, "1001", pw, reactor=ThreadReactor(), threadpool=pool,
                                                hasher=FAST)
            d.addBoth(results.append)
            d.addBoth(lambda _: done.set())
            assert done.wait(20)
            done.clear()
    finally:
        pool.stop()
    assert results[0].id == "1001" and results[1] is None
    assert threads_seen and all(n != threading.main_thread().name for n in threads_seen)


def test_search_articles(migrated_db):
    from callcenter.kb.store import KbStore

    db = migrated_db
    now = datetime(2026, 11, 1)
    kb = KbStore(db.engine)
    for title, body, tags in [
        ("居家隔离政策", "密切接触者居家隔离7天，社区负责送药。", "epidemic 隔离"),
        ("核酸检测点", "全市核酸检测点名单；隔离人员上门采样。", "epidemic"),
        ("工资拖欠投诉", "拨打12333或到劳动监察大队投诉。", "labour"),
        ("100% refund_policy", "Consumer refunds within 7 days.", "consumer"),
    ]:
        kb.create({"title": title, "body": body, "tags": tags, "org": "t"}, "test", publish=True, trusted=True, now=now)
    with Session(db.engine) as s:
        titles = [a["title"] for a in search_articles(s, "隔离", 10)]
        assert titles == ["居家隔离政策", "核酸检测点"]  # title hit first
        assert [a["title"] for a in search_articles(s, "隔离 送药", 10)][0] == "居家隔离政策"
        assert [a["title"] for a in search_articles(s, "REFUND", 10)] == []  # words, not substrings: refund_policy
        assert [a["title"] for a in search_articles(s, "refunds", 10)] == ["100% refund_policy"]
        assert search_articles(s, "%", 10) == []
        assert search_articles(s, "   ", 10) == []
        assert len(search_articles(s, "epidemic", 1)) == 1
        assert "12333" in search_articles(s, "工资", 5)[0]["snippet"]


def test_cli_agents_and_cdr_export(db, tmp_path, clock, capsys, monkeypatch):
    url = db.url
    monkeypatch.setattr(accounts, "_default_hasher", FAST)

    def cli(*argv, stdin=None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = callcenter_main([*argv, "--database", url])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = cli("migrate")
    assert code == 0 and f"revision {head_revision()}" in out
    code, out, _ = cli("agents", "add", "1001", "--pool", "own-12345", "--endpoint", "PJSIP/1001",
                       "--skills", "epidemic=3,medical", "--name", "张三", "--password-stdin", stdin="s3cret-pass\n")
    assert code == 0 and "added agent 1001" in out
    code, _, err = cli("agents", "add", "1002", "--pool", "own-12345", "--endpoint", "Local/1002", "--no-password")
    assert code == 1 and "@context" in err
    code, _, err = cli("agents", "add", "1003", "--pool", "own-12345")  # no terminal to prompt on
    assert code == 1 and "--password-stdin" in err
    assert cli("agents", "disable", "1001")[0] == 0
    code, out, _ = cli("agents", "list")
    assert code == 0 and "1001" in out and "epidemic=3,medical=1" in out and " no " in out
    code, _, err = cli("agents", "disable", "ghost")
    assert code == 1 and "no agent 'ghost'" in err
    assert cli("agents", "set-password", "1001", "--password-stdin", stdin="another-pass\n")[0] == 0
    with Session(db.engine) as s, s.begin():
        assert accounts.verify_login(s, "1001", "another-pass") is None  # still disabled
        accounts.set_enabled(s, "1001", True)
        assert accounts.verify_login(s, "1001", "another-pass").id == "1001"

    w = RecordsWriter(url, state_dir=tmp_path / "state", buffered_gauge=_Null(), dropped_counter=_Null())
    w.start()
    run = CallRun(clock, writer=w)
    run.run(5)
    assert w.wrapup_submitted("call-0", "a1", "own", "resolved", "", {"ticket": "T1"}, clock.seconds())
    w.stop()
    out_file = tmp_path / "cdr.csv"
    code, _, err = cli("cdr", "export", "--from", "2025-11-28", "--to", "2025-11-29T00:00+00:00",
                       "--format", "csv", "--raw", "-o", str(out_file))
    assert code == 0 and "exported 5" in err
    rows = list(csv.DictReader(out_file.open()))
    assert [r["call_id"] for r in rows] == [f"call-{i}" for i in range(5)]
    assert rows[0]["offers"] == "a1@own/t0:answered:2.0s" and rows[0]["outcome"] == "answered"
    assert [r["disposition"] for r in rows] == ["resolved", "", "", "", ""]
    assert "138" not in "".join(r["caller_hash"] for r in rows)  # never the number itself

    # The supervisor's export (the default): local times with offset, whole seconds, names, no hash.
    with Session(db.engine) as s, s.begin():
        accounts.add_agent(s, "a1", pool="own", name="李四", endpoint="PJSIP/1001")
    code, out, err = cli("cdr", "export", "--from", "2025-11-28", "--to", "2025-11-29")
    assert code == 0 and "exported 5" in err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert "caller_hash" not in rows[0] and "offers" not in rows[0]
    first = rows[0]
    assert first["arrival"] == "2025-11-28T11:20:00+08:00"  # 03:20 UTC in Asia/Shanghai
    assert first["answered_at"] == "2025-11-28T11:20:02+08:00"
    assert (first["wait_s"], first["talk_s"], first["within_15s"]) == ("2", "30", "yes")
    assert (first["agent_id"], first["agent_name"], first["ticket"]) == ("a1", "李四", "T1")
    assert first["caller_masked"] == "138****0000"
    assert (rows[4]["outcome"], rows[4]["within_15s"], rows[4]["agent_name"]) == ("abandoned", "no", "")
    code, out, _ = cli("cdr", "export", "--zone", "UTC")
    assert code == 0 and list(csv.DictReader(io.StringIO(out)))[0]["arrival"] == "2025-11-28T03:20:00+00:00"
    # --from/--to without an offset are in the zone: 11:20 Shanghai is the first call
    code, _, err = cli("cdr", "export", "--from", "2025-11-28T11:20:01", "--to", "2025-11-29")
    assert code == 0 and "exported 4" in err
    excel = tmp_path / "cdr-excel.csv"
    code, _, _ = cli("cdr", "export", "--excel", "-o", str(excel))
    data = excel.read_bytes()
    assert code == 0 and data.startswith(b"\xef\xbb\xbfcall_id,") and b"\r\n" in data
    assert "李四" in data.decode("utf-8-sig")
    code, _, err = cli("cdr", "export", "--zone", "Mars/Olympus")
    assert code == 1 and "--zone" in err and "time zone" in err
    code, _, err = cli("cdr", "export", "--from", "2025-11-29", "--to", "2025-11-30")
    assert code == 0 and "exported 0" in err
    code, _, err = cli("cdr", "export", "--from", "yesterday")
    assert code == 1 and "ISO date" in err


class _Null:
    def set(self, v):
        pass

    def inc(self, n=1):
        pass


def test_endpoint_validator_accepts_local_channels_with_options():
    # issue 14: e2e agents are Local/<exten>@<ctx>/n (n: no optimisation, Local channel modifiers)
    for ok in ("Local/1001@agents/n", "Local/x@ctx/n", "Local/2001@agents", "Local/2001@agents/nj",
               "PJSIP/xian-trunk/8021"):
        assert accounts.validate_endpoint(ok) == ok
    for bad in ("Local/1001/n", "Local/1001@agents/q", "Local/1001@agents/n/n", "Local/1001@ag ents/n"):
        with pytest.raises(accounts.InvalidAccount):
            accounts.validate_endpoint(bad)
