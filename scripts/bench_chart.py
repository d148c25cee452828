#!/usr/bin/env python3
"""Draw benchmark results (scripts/bench.py) as an SVG chart.

    python3 scripts/bench_chart.py RESULTS.jsonl [-o OUT.svg]

Reads the per-system JSON lines that bench.py writes to
``<out>/<scenario>-results.jsonl`` (other lines, e.g. a ratios line, are
ignored) and draws two panels side by side: Mpps and cycles per packet. Each
system is one row (its name on the axis): the bar is the median, each dot one
run, the median is written beside the bar with the range of the runs below it.
A system without a value (no successful run, or no cycle count) shows
"no data". The title names the scenario, the traffic (flows, MAC pairs, frame
size, VLAN), the number of runs and the date of the run. Without -o the chart
goes beside the results file (``.jsonl`` -> ``.svg``).

bench.py calls write_chart() after writing the JSONL. The SVG is hand-written:
plain elements, inline styles, sans-serif text, no external resources, so
browsers and GitHub show it as it is. Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from html import escape
from pathlib import Path

WIDTH = 980
NAME_RIGHT = 186          # system names end here (right-aligned)
PANEL_X = (200, 600)      # left edge of each panel's axis
PANEL_W = 350             # width of a panel: plot area + room for the value labels
LABEL_ROOM = 96           # right part of a panel kept for the value labels
TOP = 108                 # first row
ROW_H = 50
BAR_H = 22
FONT = "font-family:sans-serif"

# (bar fill, dot fill) per system; unknown systems take the fallback ones in turn
COLOURS = {
    "ferroswitch": ("#4f86f7", "#1d3f8f"),
    "ferroswitch-baseline": ("#a9c1f5", "#3b5aa8"),
    "ovs-dpdk": ("#f2a93b", "#8a5200"),
    "testpmd-io": ("#b4b9c2", "#4b5260"),
    "testpmd-vhost": ("#b4b9c2", "#4b5260"),
}
FALLBACK_COLOURS = [("#5cc2a7", "#1d6b56"), ("#e58bb5", "#8a2d5a"), ("#c9a66b", "#6b4f1d")]

PANELS = [
    # (key in the JSON lines, panel title, decimals)
    ("mpps", "Mpps (higher is better)", 2),
    ("cycles_per_packet", "cycles per packet (lower is better)", 1),
]

CYCLES_NOTES = [
    ("ferroswitch", "Ferroswitch: PMD busy cycles / packets"),
    ("ovs-dpdk", "OVS-DPDK: pmd-stats-show avg processing cycles per packet"),
    ("testpmd", "testpmd: TSC Hz x window / packets received"),
]


def _num(v) -> float | None:
    """A finite number, or None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _fmt(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}"


def nice_axis(vmax: float, ticks: int = 4) -> tuple[float, float]:
    """(axis maximum, tick step): a 1/2/2.5/5 x 10^k step, about ``ticks`` steps."""
    if vmax <= 0:
        return 1.0, 0.25
    raw = vmax / ticks
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return math.ceil(vmax / step - 1e-9) * step, step


def _text(x: float, y: float, s: str, size: int = 12, anchor: str = "start",
          colour: str = "#222", weight: str = "normal", style: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
            f'style="{FONT};font-size:{size}px;fill:{colour};font-weight:{weight}{style}">'
            f"{escape(s)}</text>")


def _date(lines: list[dict], fallback: str | None) -> str | None:
    for ln in lines:
        d = ln.get("date")
        if isinstance(d, str) and len(d) >= 16:
            return d[:10] + " " + d[11:16]
    return fallback


def _runs_count(lines: list[dict]) -> int | None:
    for ln in lines:
        if isinstance(ln.get("runs_requested"), int):
            return ln["runs_requested"]
    counts = [len(ln.get("runs") or []) + len(ln.get("errors") or []) for ln in lines]
    return max(counts) if counts else None


def subtitle(lines: list[dict], date: str | None) -> str:
    first = lines[0]
    parts = []
    if first.get("flows") is not None:
        parts.append(f"{first['flows']} flows")
    macs = first.get("macs", 1)
    parts.append(f"{macs} MAC pair" + ("s" if macs != 1 else ""))
    if first.get("frame_size") is not None:
        parts.append(f"{first['frame_size']}-byte frames")
    parts.append("no VLAN" if first.get("vlan") is None else f"VLAN {first['vlan']}")
    runs = _runs_count(lines)
    if runs is not None:
        run_txt = f"{runs} run" + ("s" if runs != 1 else "")
        w, d = first.get("warmup_s"), first.get("duration_s")
        if w is not None and d is not None:
            run_txt += f" ({w:g} s warm-up, {d:g} s window)"
        parts.append(run_txt)
    if date:
        parts.append(date)
    return " \u00b7 ".join(parts)


def render_svg(lines: list[dict], date: str | None = None) -> str:
    """The chart of these per-system result lines, as an SVG document."""
    lines = [ln for ln in lines if isinstance(ln, dict) and ln.get("system")]
    if not lines:
        raise ValueError("no per-system result lines to draw")
    scenario = lines[0].get("scenario") or "benchmark"
    n = len(lines)
    rows_bottom = TOP + n * ROW_H
    notes = [txt for key, txt in CYCLES_NOTES
             if any(str(ln["system"]).startswith(key) for ln in lines)]
    height = rows_bottom + 44 + 20 * 2 + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" style="{FONT}">',
           f"<title>{escape(scenario)} benchmark: Mpps and cycles per packet</title>",
           f'<rect x="0" y="0" width="{WIDTH}" height="{height}" style="fill:#ffffff"/>',
           _text(20, 30, f"{scenario}: Mpps and cycles per packet", 18, weight="bold"),
           _text(20, 52, subtitle(lines, _date(lines, date)), 13, colour="#444")]

    colours, spare = {}, iter(FALLBACK_COLOURS * 4)
    for ln in lines:
        name = str(ln["system"])
        colours[name] = COLOURS.get(name) or next(spare, FALLBACK_COLOURS[0])

    # system names (and what else identifies or qualifies a row)
    for i, ln in enumerate(lines):
        mid = TOP + i * ROW_H + ROW_H / 2
        sub = []
        if ln.get("commit"):
            rev, commit = str(ln.get("rev") or ""), str(ln["commit"])
            sub.append(commit[:10] + (f" ({rev[:16]})" if rev and not commit.startswith(rev) else ""))
        errs, ok = len(ln.get("errors") or []), len(ln.get("runs") or [])
        if errs:
            sub.append(f"{errs} of {errs + ok} run{'s' if errs + ok != 1 else ''} failed")
        y = mid + 4 - 6 * len(sub)
        out.append(_text(NAME_RIGHT, y, str(ln["system"]), 13, "end", weight="bold"))
        for j, s in enumerate(sub):
            colour = "#b42318" if s.endswith("failed") else "#666"
            out.append(_text(NAME_RIGHT, y + 13 * (j + 1), s, 10, "end", colour))
        if i:   # row separator
            out.append(f'<line x1="20" y1="{TOP + i * ROW_H:.1f}" x2="{WIDTH - 20}" '
                       f'y2="{TOP + i * ROW_H:.1f}" style="stroke:#eeeeee;stroke-width:1"/>')

    for (key, title, dec), x0 in zip(PANELS, PANEL_X):
        out += _panel(lines, key, title, dec, x0, colours, rows_bottom)

    fy = rows_bottom + 44
    out.append(_text(20, fy, "Bar: median of the runs; dots: the single runs; "
                     "under a value: the range of the runs.", 11, colour="#555"))
    if notes:
        out.append(_text(20, fy + 18, "Cycles per packet: " + "; ".join(notes) + ".", 11,
                         colour="#555"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _panel(lines, key, title, dec, x0, colours, rows_bottom) -> list[str]:
    plot_w = PANEL_W - LABEL_ROOM
    vals = []
    for ln in lines:
        vals.append(_num(ln.get(key)))
        vals += [_num(r.get(key)) for r in ln.get("runs") or [] if isinstance(r, dict)]
    vmax = max((v for v in vals if v is not None), default=0.0)
    amax, step = nice_axis(vmax)

    def x(v: float) -> float:
        return x0 + plot_w * max(0.0, min(v, amax)) / amax

    out = [_text(x0, TOP - 14, title, 13, weight="bold", colour="#333")]
    # grid and tick labels
    tick_dec = next(d for d in range(6) if abs(round(step, d) - step) < 1e-9 * step or d == 5)
    for k in range(int(round(amax / step)) + 1):
        t = k * step
        xt = x(t)
        out.append(f'<line x1="{xt:.1f}" y1="{TOP}" x2="{xt:.1f}" y2="{rows_bottom}" '
                   f'style="stroke:{"#999999" if k == 0 else "#e3e3e3"};stroke-width:1"/>')
        out.append(_text(xt, rows_bottom + 16, _fmt(t, tick_dec), 11, "middle", "#666"))
    for i, ln in enumerate(lines):
        mid = TOP + i * ROW_H + ROW_H / 2
        bar, dot = colours[str(ln["system"])]
        med = _num(ln.get(key))
        runs = [v for v in (_num(r.get(key)) for r in ln.get("runs") or [] if isinstance(r, dict))
                if v is not None]
        if med is None and not runs:
            out.append(_text(x0 + 8, mid + 4, "no data", 12, colour="#888",
                             style=";font-style:italic"))
            continue
        if med is None:             # (bench.py always has one when there are runs)
            med = sorted(runs)[len(runs) // 2]
        out.append(f'<rect x="{x0:.1f}" y="{mid - BAR_H / 2:.1f}" width="{x(med) - x0:.1f}" '
                   f'height="{BAR_H}" style="fill:{bar}"/>')
        for j, v in enumerate(runs):
            dy = 0 if len(runs) == 1 else (j / (len(runs) - 1) - 0.5) * (BAR_H - 10)
            out.append(f'<circle cx="{x(v):.1f}" cy="{mid + dy:.1f}" r="3.5" '
                       f'style="fill:{dot};stroke:#ffffff;stroke-width:1"/>')
        lx = max([x(med)] + [x(v) for v in runs]) + 7
        if len(runs) > 1:
            out.append(_text(lx, mid - 1, _fmt(med, dec), 12, weight="bold"))
            out.append(_text(lx, mid + 12, f"{_fmt(min(runs), dec)}\u2013{_fmt(max(runs), dec)}",
                             10, colour="#666"))
        else:
            out.append(_text(lx, mid + 4, _fmt(med, dec), 12, weight="bold"))
    return out


def write_chart(lines: list[dict], path, date: str | None = None) -> Path:
    """Draw ``lines`` (bench.py's per-system result dicts) to ``path``; returns the path."""
    path = Path(path)
    svg = render_svg(lines, date)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(svg, encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_results(path: Path) -> list[dict]:
    lines = []
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: not JSON ({exc})") from exc
        if isinstance(obj, dict) and obj.get("system"):
            lines.append(obj)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", metavar="RESULTS.jsonl",
                    help="a results file of scripts/bench.py (<out>/<scenario>-results.jsonl)")
    ap.add_argument("-o", "--output", metavar="OUT.svg",
                    help="where to write the chart (default: RESULTS with .svg for .jsonl)")
    a = ap.parse_args(argv)
    src = Path(a.results)
    try:
        lines = read_results(src)
        if not lines:
            ap.error(f"{src}: no per-system result lines")
        # Results written before the lines carried a date: the file's.
        fallback = time.strftime("%Y-%m-%d %H:%M", time.localtime(src.stat().st_mtime))
        out = Path(a.output) if a.output else src.with_suffix(".svg")
        write_chart(lines, out, fallback)
    except (OSError, ValueError) as exc:
        print(f"bench_chart: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
