"""The hourly urgent digest: a few lines for a messaging group, and its webhook post.

Built from an hourly report document (pure) plus the urgent orders still overdue; posted as
JSON ``{"msgtype": "text", "text": {"content": ...}}`` (the shape WeCom and DingTalk group
robots take) to ``reports.webhook_url``.
"""

from __future__ import annotations

import json
import urllib.request

__all__ = ["digest_text", "post_digest", "CONNECTION_ALERT", "WITHIN_15S_ALERT"]

CONNECTION_ALERT = 0.80  # deploy/prometheus/rules: CallcenterConnectionRateCollapsing
WITHIN_15S_ALERT = 0.80
MAX_CHARS = 1800  # group robots cut longer messages


def digest_text(doc: dict) -> str:
    when = f"{doc['start'][:16].replace('T', ' ')}–{doc['end'][11:16]}"
    lines = [f"【12345热线 小时快报】{when}"]
    calls = doc.get("calls")
    alerts = []
    if calls and calls["offered"]:
        rate, fast = calls["connection_rate"], calls["within_15s_rate"]
        lines.append(f"来电 {calls['offered']}，接通 {calls['connected']}（{100 * rate:.1f}%），15秒内接通 "
                     f"{100 * fast:.1f}%，放弃 {calls['abandoned']}")
        if rate < CONNECTION_ALERT:
            alerts.append(f"接通率 {100 * rate:.1f}% 低于 {100 * CONNECTION_ALERT:.0f}%")
        if fast < WITHIN_15S_ALERT:
            alerts.append(f"15秒接通率 {100 * fast:.1f}% 低于 {100 * WITHIN_15S_ALERT:.0f}%")
    o = doc["orders"]
    lines.append(f"新建工单 {o['created']}（紧急 {o['urgent']}），超期未结 {o['overdue_open']}（紧急 {o['overdue_urgent']}）")
    if o["overdue_urgent"]:
        alerts.append(f"{o['overdue_urgent']} 件紧急工单超期")
    hot = doc["hot_topics"]["overall"][:3]
    if hot:
        def how(h: dict) -> str:
            return "新" if h["new"] else f"约{h['ratio']}倍"

        lines.append("热点：" + "，".join(f"{h['term']}（{h['count']}，{how(h)}）" for h in hot))
    if alerts:
        lines.append("⚠ " + "；".join(alerts))
    return "\n".join(lines)[:MAX_CHARS]


def post_digest(url: str, text: str, timeout_s: float = 10.0) -> int:
    """POST the digest; the HTTP status (raises OSError/URLError when it cannot be delivered)."""
    body = json.dumps({"msgtype": "text", "text": {"content": text}}, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - a configured http(s) URL
        return resp.status
