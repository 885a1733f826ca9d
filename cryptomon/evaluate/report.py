"""The plain-text table of ``crypto-monitor evaluate``'s report."""

from __future__ import annotations

from typing import Any


def _rates(name: str, r: dict[str, Any]) -> str:
    rate = "-" if r["live_per_symbol_hour"] is None else f"{r['live_per_symbol_hour']:.3f}"
    off = r.get("whale_notionals_off")
    return (
        f"{name}: {r['live_alerts']} live alerts in {r['symbol_hours']:.4f} symbol-hours = "
        f"{rate} per symbol-hour, {r['historical_alerts']} on historical trades {r['by_kind']}"
        + ("" if off is None else f", {off} whale notionals off the venue's")
    )


def _injections(inj: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        f"{'injection':<22}{'labels':>7}{'detected':>9}{'recall':>8}{'median_s':>10}{'max_s':>8}"
        f"{'masked':>8}"
    ]
    for name, v in inj.items():
        rec = "-" if v["recall"] is None else f"{v['recall']:.2f}"
        med = "-" if v["median_delay_s"] is None else f"{v['median_delay_s']:.2f}"
        mx = "-" if v["max_delay_s"] is None else f"{v['max_delay_s']:.2f}"
        lines.append(
            f"{name:<22}{v['labels']:>7}{v['detected']:>9}{rec:>8}{med:>10}{mx:>8}"
            f"{v.get('masked', 0):>8}"
        )
    return lines


def format_report(report: dict[str, Any]) -> str:
    """Untouched alert rates and recall per injection, per input."""
    lines = [f"evaluate seed={report['seed']} config={report['config']}"]
    rec = report.get("recordings")
    if rec is not None:
        lines.append("recordings (untouched):")
        lines.extend("  " + _rates(name, r) for name, r in rec["exchanges"].items())
        lines.append("  " + _rates("all", rec["untouched"]))
        lines.extend(_injections(rec["injections"]))
        lines.append(f"not injected: {rec['not_injected']}")
    series = report.get("series")
    if series is not None:
        src = series["input"]
        lines.append(f"trade series {src['exchange']}:{src['symbol']} ({series['trades']} trades):")
        lines.append("  " + _rates("untouched", series["untouched"]))
        lines.extend(_injections(series["injections"]))
    return "\n".join(lines)
