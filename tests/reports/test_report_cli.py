"""`callcenter report` end to end on a SQLite database: files written, the digest posted to a
local webhook receiver, old reports pruned, bad arguments refused with one line."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from callcenter.cli import main
from callcenter.records.db import make_engine, migrate
from callcenter.testing.report_data import fill_day

DAY = date(2026, 12, 1)


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'r.db'}"
    migrate(url)
    engine = make_engine(url)
    rng = random.Random(3)
    for k in range(3, 0, -1):
        fill_day(engine, datetime.combine(DAY - timedelta(days=k), datetime.min.time()), calls=300, orders=80, rng=rng)
    fill_day(engine, datetime.combine(DAY, datetime.min.time()), calls=600, orders=200, rng=rng,
             burst=("方舱医院床位不足", 0.05))
    engine.dispose()
    return url


@pytest.fixture
def receiver():
    got = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def test_daily_report_files_and_summary(database, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", "daily", "--date", "2026-12-01", "--database", database, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    # jieba cuts the planted phrase into words; its rarest ones are the hot topics
    assert "calls: 600 offered" in text and "方舱" in text
    assert {p.suffix for p in out.glob("daily-2026-12-01.*")} == {".json", ".html", ".pdf"}
    doc = json.loads((out / "daily-2026-12-01.json").read_text(encoding="utf-8"))
    assert doc["calls"]["offered"] == 600


def test_hourly_report_posts_the_digest_and_prunes_old_files(database, tmp_path, receiver, capsys):
    url, got = receiver
    out = tmp_path / "out"
    out.mkdir()
    old = out / "hourly-2026-08-01-10.json"
    old.write_text("{}")
    stale = time.time() - 100 * 86400
    os.utime(old, (stale, stale))
    code = main(["report", "hourly", "--date", "2026-12-01", "--hour", "10", "--database", database, "--out", str(out),
                 "--webhook", url, "--keep-days", "90"])
    assert code == 0, capsys.readouterr()
    assert not old.exists()
    (message,) = got
    content = message["text"]["content"]
    assert message["msgtype"] == "text" and content.startswith("【12345热线 小时快报】2026-12-01 10:00–11:00")
    assert "来电" in content and "新建工单" in content


@pytest.mark.parametrize("argv,says", [
    (["report", "daily", "--date", "2026-13-01"], "--date"),
    (["report", "hourly", "--date", "2026-12-01"], "--hour"),
    (["report", "hourly", "--date", "2026-12-01", "--hour", "24"], "--hour"),
    (["report", "daily", "--date", "2026-12-01", "--until", "25:00"], "--until"),
    (["report", "daily", "--date", "2026-12-01", "--zone", "Mars/Base"], "--zone"),
    (["report", "daily", "--date", "2026-12-01", "--webhook", "http://x"], "--webhook"),
    (["report", "daily", "--date", "2026-12-01", "--keep-days", "0"], "--keep-days"),
])
def test_bad_arguments_get_one_line(argv, says, capsys, database):
    assert main([*argv, "--database", database]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1
