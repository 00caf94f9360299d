"""A report document as JSON, a self-contained HTML page and a PDF (charts by matplotlib).

Chinese text needs a CJK font: Noto Sans CJK (Debian ``fonts-noto-cjk``, installed by the
project's set-up, tests/support/ensure_fonts.sh).  The PDF embeds the subset it uses; the HTML
page inlines its charts as PNG data, so both can be mailed or archived as single files.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

__all__ = ["write_report", "cjk_font", "FontMissing"]

CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Serif CJK SC", "WenQuanYi Zen Hei", "AR PL UMing CN")


class FontMissing(RuntimeError):
    """No CJK font: the PDF and charts would show boxes instead of Chinese."""


def cjk_font() -> str:
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in names:
            return family
    raise FontMissing("no CJK font found (install Debian's fonts-noto-cjk: sh tests/support/ensure_fonts.sh)")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _title(doc: dict) -> str:
    kind = "日报" if doc["kind"] == "daily" else "小时报"
    where = f" · {doc['district']}" if doc.get("district") else ""
    when = doc["start"][:10] if doc["kind"] == "daily" else f"{doc['start'][:16].replace('T', ' ')}–{doc['end'][11:16]}"
    return f"12345热线{kind}{where}  {when}"


def _charts(doc: dict) -> list[tuple[str, bytes]]:
    """(caption, PNG bytes) of each chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["font.family"] = [cjk_font()]
    plt.rcParams["axes.unicode_minus"] = False
    out = []

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        return buf.getvalue()

    calls = doc.get("calls")
    if calls and calls["by_hour"]:
        hours = [r["hour"] for r in calls["by_hour"]]
        fig, ax = plt.subplots(figsize=(9, 3.6))
        ax.bar(hours, [r["offered"] for r in calls["by_hour"]], color="#9ecae1", label="来电 offered")
        ax.bar(hours, [r["connected"] for r in calls["by_hour"]], color="#3182bd", label="接通 connected")
        ax2 = ax.twinx()
        ax2.plot(hours, [r["connection_rate"] if r["connection_rate"] is not None else float("nan")
                         for r in calls["by_hour"]], "k.-", label="接通率")
        ax2.set_ylim(0, 1.05)
        ax.set_xlabel("时 (hour)")
        ax.set_ylabel("通 (calls)")
        ax.legend(loc="upper left", fontsize=8, bbox_to_anchor=(0, -0.18), ncol=2)
        ax2.legend(loc="upper right", fontsize=8, bbox_to_anchor=(1, -0.18))
        ax.set_title("分时段来电与接通率")
        out.append(("分时段来电与接通率 / calls and connection rate by hour", png(fig)))
    if calls and calls["by_tier"]:
        names = {"0": "本地坐席", "1": "远程坐席", "2": "借调坐席"}
        tiers = list(calls["by_tier"])
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.barh([names.get(t, t) for t in tiers], [calls["by_tier"][t]["answered"] for t in tiers], color="#31a354")
        ax.set_title("各层级坐席接听量 (answered by tier)")
        out.append(("各层级坐席接听量 / answered by tier", png(fig)))
    hot = doc["hot_topics"]["overall"][:12]
    if hot:
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(hot) + 1))
        ax.barh([h["term"] for h in reversed(hot)], [h["count"] for h in reversed(hot)], color="#e6550d",
                label="今日")
        ax.barh([h["term"] for h in reversed(hot)], [h["expected"] for h in reversed(hot)], color="#fdae6b",
                label="按前期水平预期")
        ax.legend(fontsize=8)
        ax.set_title("热点诉求 (hot topics)")
        out.append(("热点诉求 / hot topics: today's count against the trailing days' level", png(fig)))
    return out


def _rows(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sections(doc: dict) -> list[tuple[str, str]]:
    """(heading, HTML) of each section; the PDF shows the same tables as text."""
    out = []
    calls = doc.get("calls")
    if calls:
        out.append(("话务概况 Calls", _rows(
            ["来电", "接通", "接通率", "15秒内接通", "放弃", "分流拒接", "回拨(接通)"],
            [[calls["offered"], calls["connected"], _pct(calls["connection_rate"]), _pct(calls["within_15s_rate"]),
              calls["abandoned"], calls["shed"], f"{calls['callbacks']} ({calls['callbacks_connected']})"]])))
        out.append(("各坐席池 Pools (其他热线承接)", _rows(
            ["坐席池", "接听", "占比"], [[p, v["answered"], _pct(v["share"])] for p, v in calls["by_pool"].items()])))
    o = doc["orders"]
    out.append(("工单 Work orders", _rows(
        ["新建", "紧急", "按时办结", "超时办结", "按时率", "超期未结", "其中紧急"],
        [[o["created"], o["urgent"], o["closed_on_time"], o["closed_late"], _pct(o["on_time_rate"]),
          o["overdue_open"], o["overdue_urgent"]]])))
    out.append(("工单按类别 Orders by category", _rows(
        ["类别", "新建", "按时办结", "超时办结", "超期未结"],
        [[c, v.get("created", 0), v.get("closed_on_time", 0), v.get("closed_late", 0), v.get("overdue_open", 0)]
         for c, v in o["by_category"].items()])))
    out.append(("承办单位 Units (超期优先)", _rows(
        ["单位", "新建", "按时办结", "超时办结", "超期未结"],
        [[u, v.get("created", 0), v.get("closed_on_time", 0), v.get("closed_late", 0), v.get("overdue_open", 0)]
         for u, v in list(o["by_unit"].items())[:20]])))
    out.append(("重复诉求 Repeated requests", _rows(
        ["诉求次数", "工单", "类别", "区", "摘要"],
        [[r["requests"], r["order"], r["category"], r["district"], r["summary"]] for r in o["top_repeated"]])))
    hot = doc["hot_topics"]
    note = (f"{hot['texts']} 条诉求文本, 对比前 {hot['baseline_days']} 天 {hot['baseline_texts']} 条; 检验 "
            f"{hot['terms_tested']} 个词, 阈值 p < {hot['threshold_p']:.2e} (Poisson, Bonferroni), 至少 {hot['min_count']} 次")
    out.append(("热点诉求 Hot topics", f"<p class=note>{html.escape(note)}</p>" + _rows(
        ["词", "今日", "预期", "倍数", "得分 -log10 p", "新词", "示例"],
        [[h["term"], h["count"], h["expected"], h["ratio"], h["score"], "是" if h["new"] else "",
          " / ".join(h["examples"])] for h in hot["overall"]])))
    for d, hs in hot["districts"].items():
        out.append((f"{d} 上升热点", _rows(["词", "今日", "预期", "得分"],
                                        [[h["term"], h["count"], h["expected"], h["score"]] for h in hs])))
    return out


_CSS = ("body{font-family:'Noto Sans CJK SC',sans-serif;max-width:960px;margin:auto;padding:1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:14px}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left}th{background:#f0f0f0}.note{color:#555;font-size:13px}img{max-width:100%}")


def write_report(doc: dict, out_dir: Path, stem: str) -> dict[str, Path]:
    """``<stem>.json``, ``<stem>.html`` and ``<stem>.pdf`` under ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stem}.json", "html": out_dir / f"{stem}.html", "pdf": out_dir / f"{stem}.pdf"}
    paths["json"].write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    charts = _charts(doc)
    sections = _sections(doc)
    title = _title(doc)
    imgs = "".join(f"<figure><img alt='{html.escape(c)}' src='data:image/png;base64,"
                   f"{base64.b64encode(p).decode()}'><figcaption>{html.escape(c)}</figcaption></figure>"
                   for c, p in charts)
    body = "".join(f"<h2>{html.escape(h)}</h2>{t}" for h, t in sections)
    paths["html"].write_text(f"<!doctype html><html lang=zh-CN><meta charset=utf-8><meta name=viewport "
                             f"content='width=device-width'><title>{html.escape(title)}</title><style>{_CSS}</style>"
                             f"<h1>{html.escape(title)}</h1>{imgs}{body}</html>\n", encoding="utf-8")
    plt.rcParams["font.family"] = [cjk_font()]
    plt.rcParams["pdf.fonttype"] = 42  # embed the TrueType subset, text stays text
    with PdfPages(paths["pdf"]) as pdf:
        lines = [(title, 15, "bold")]
        for h, table in sections:
            lines.append((h, 12, "bold"))
            lines += [(t, 9, "normal") for t in _plain(table)]
        for page in _paginate(lines, 58):
            fig = plt.figure(figsize=(8.27, 11.69))
            y = 0.96
            for text, size, weight in page:
                fig.text(0.06, y, text[:95], fontsize=size, weight=weight)
                y -= 0.0165 * (size / 9) + 0.002
            pdf.savefig(fig)
            plt.close(fig)
        for caption, png in charts:
            fig = plt.figure(figsize=(8.27, 11.69))
            img = plt.imread(io.BytesIO(png), format="png")
            ax = fig.add_axes([0.05, 0.35, 0.9, 0.55])
            ax.imshow(img)
            ax.axis("off")
            fig.text(0.06, 0.95, caption, fontsize=12, weight="bold")
            pdf.savefig(fig)
            plt.close(fig)
    return paths


def _paginate(lines: list, per_page: int) -> list[list]:
    return [lines[i:i + per_page] for i in range(0, len(lines), per_page)] or [[]]


def _plain(html_table: str) -> list[str]:
    """The PDF's plain-text form of a section (its HTML table, one line per row)."""
    import re

    rows = re.findall(r"<tr>(.*?)</tr>", html_table)
    out = []
    for r in rows:
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", r)]
        out.append("  ·  ".join(cells))
    note = re.search(r"<p class=note>(.*?)</p>", html_table)
    return ([html.unescape(note.group(1))] if note else []) + out
