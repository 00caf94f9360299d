"""``callcenter kb`` end to end on a real SQLite file: create, publish, search, export, edit, import back."""

from __future__ import annotations

import json

from callcenter.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_manage_articles_from_the_shell(tmp_path, capsys):
    db = ["--database", f"sqlite:///{tmp_path / 'kb.sqlite3'}"]
    body = tmp_path / "body.md"
    body.write_text("# 新政策\n\n自**2026年7月1日**起，发热门诊改为预约制。", encoding="utf-8")
    code, out, _ = run(capsys, "kb", "create", *db, "--org", "西安市12345", "--title", "发热门诊预约",
                       "--body-file", str(body), "--tags", "发热门诊 预约", "--as", "alice", "--why", "new policy")
    art = json.loads(out)
    assert code == 0 and art["status"] == "draft" and art["key"] == f"kb-{art['id']}"
    assert run(capsys, "kb", "search", "发热门诊怎么预约", *db)[1] == ""  # a draft is not searchable
    assert run(capsys, "kb", "publish", str(art["id"]), *db, "--as", "bob", "--why", "checked")[0] == 0
    code, out, _ = run(capsys, "kb", "search", "发热门诊怎么预约", *db)
    assert "发热门诊预约" in out and "**预约**" in out

    for target in ("md", "all.csv", "all.json"):
        assert run(capsys, "kb", "export", str(tmp_path / target), *db)[0] == 0
    md = tmp_path / "md" / f"kb-{art['id']}.md"
    md.write_text(md.read_text(encoding="utf-8").replace("预约制", "线上预约制"), encoding="utf-8")
    code, out, _ = run(capsys, "kb", "import", str(tmp_path / "md"), *db, "--as", "carol", "--why", "wording")
    assert code == 0 and "1 updated" in out
    hist = json.loads(run(capsys, "kb", "history", str(art["id"]), *db)[1])
    assert [(h["who"], h["why"], h["changed"]) for h in hist][1:] == [
        ("bob", "checked", ["status"]), ("carol", "wording", ["body"])]
    code, out, _ = run(capsys, "kb", "import", str(tmp_path / "all.csv"), *db, "--as", "dave")
    assert code == 0 and "1 updated" in out  # the CSV was exported before carol's edit: it puts it back
    assert "线上预约制" not in json.loads(run(capsys, "kb", "show", str(art["id"]), *db)[1])["body"]
    assert "1 unchanged" in run(capsys, "kb", "import", str(tmp_path / "all.json"), *db, "--as", "dave")[1]

    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    code, _, err = run(capsys, "kb", "import", str(tmp_path / "bad.json"), *db, "--as", "x")
    assert code == 1 and "not valid JSON" in err
    (tmp_path / "bad.csv").write_text("title,org,status\n好,o,published\n坏,,published\n", encoding="utf-8")
    code, _, err = run(capsys, "kb", "import", str(tmp_path / "bad.csv"), *db, "--as", "x")
    assert code == 1 and "article 1" in err  # no key: nothing of the file is written
    assert len(run(capsys, "kb", "list", *db)[1].splitlines()) == 1
    code, _, err = run(capsys, "kb", "publish", "999", *db, "--as", "x")
    assert code == 1 and "no article 999" in err


def test_roles_are_enforced_when_asked(tmp_path, capsys):
    db = ["--database", f"sqlite:///{tmp_path / 'kb.sqlite3'}"]
    assert run(capsys, "kb", "grant", "wang", "西安市12345", "editor", *db)[0] == 0
    code, out, _ = run(capsys, "kb", "create", *db, "--org", "西安市12345", "--title", "t", "--as", "wang",
                       "--check-roles")
    assert code == 0
    aid = json.loads(out)["id"]
    code, _, err = run(capsys, "kb", "publish", str(aid), *db, "--as", "wang", "--check-roles")
    assert code == 1 and "may not publish" in err
    code, _, err = run(capsys, "kb", "create", *db, "--org", "陕西12333", "--title", "t", "--as", "wang",
                       "--check-roles")
    assert code == 1 and "may not create" in err
