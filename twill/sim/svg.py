"""A picture of a run: a self-contained SVG timeline of a trace.

One lane per role (each op instance a bar from issue to complete: the issue window solid, the
asynchronous remainder light and hatched) and one lane per unit (its reservations, one row per
instance of the unit), colored by loop iteration so overlapping iterations show the software
pipelining. The time axis is in cycles with a gridline every II; the prologue and epilogue (kernel
iterations that do not run every stage) are shaded.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from twill.sim.trace import Event, Trace

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7")
LEFT = 210            # px of lane labels left of cycle 0
RIGHT = 24
MAX_PLOT = 1600       # px the time axis may take
MAX_SCALE = 0.5       # px per cycle for short runs
MIN_WIDTH = 1000      # px, room for the legend
ROW = 18              # px per bar row
PAD = 4               # px above and below a lane's rows
CHAR = 6.1            # px per character of the 10px monospace labels
TOP = 64              # px above the first lane (title, phase labels)
FONT = "font-family='monospace' font-size='10'"


def scale(trace: Trace) -> float:
    """Pixels per cycle: MAX_SCALE, or less so the whole run fits in MAX_PLOT."""
    return min(MAX_SCALE, MAX_PLOT / max(1, _end(trace)))


def render_svg(trace: Trace, *, title: str | None = None) -> str:
    """The trace as an SVG document (a string), deterministic and without external resources."""
    program, loop = trace.program, trace.program.loop
    s, ii, end = scale(trace), program.ii, _end(trace)
    x = lambda cycle: LEFT + cycle * s  # noqa: E731
    width = max(MIN_WIDTH, LEFT + max(1, end) * s + RIGHT)

    lanes: list[str] = []
    y = TOP
    for role in program.roles:
        events = [e for e in trace.events if e.role == role.id]
        rows, count = _pack([(e.issue, e.complete, 1) for e in events], 1)
        label = f"role {role.id}: {role.warps} warp{'s' if role.warps > 1 else ''}, setmaxnreg {role.setmaxnreg}"
        bars = [_op_bar(trace, e, x, y + PAD + r[0] * ROW, s) for e, r in zip(events, rows)]
        lanes.append(_lane("role", label, y, count, width, bars))
        y += count * ROW + 2 * PAD
    y += 8
    for unit, capacity in loop.capacity.items():
        uses = [(e, r) for e in trace.events for r in loop.ops[e.op].reservations if r.unit == unit]
        rows, count = _pack([(e.issue + r.offset, e.issue + r.offset + r.cycles, r.amount) for e, r in uses],
                            capacity)
        label = f"unit {unit}" + (f" ({capacity} instances)" if capacity > 1 else "")
        bars = [_reservation_bar(trace, e, r.offset, r.cycles, unit, x, y + PAD + row * ROW, s)
                for (e, r), chosen in zip(uses, rows) for row in chosen]
        marks = [f"<text x='{LEFT - 6}' y='{_n(y + PAD + row * ROW + 13)}' text-anchor='end' {FONT} "
                 f"fill='{'#c00' if row >= capacity else '#666'}'>{'over ' if row >= capacity else ''}#{row}</text>"
                 for row in range(count)] if count > 1 else []
        lanes.append(_lane("unit", label, y, count, width, marks + bars))
        y += count * ROW + 2 * PAD
    bottom = y

    heading = title if title is not None else f"{loop.name}: II {ii}, {trace.trips} iterations"
    facts = f"{end} cycles, {_stages(program)} stages, {len(program.roles)} roles"
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_n(width)}' height='{bottom + 52}' "
        f"viewBox='0 0 {_n(width)} {bottom + 52}'>",
        "<defs><pattern id='hatch' width='5' height='5' patternUnits='userSpaceOnUse' "
        "patternTransform='rotate(45)'><rect width='2' height='5' fill='#fff' fill-opacity='0.7'/></pattern></defs>",
        "<rect width='100%' height='100%' fill='#fff'/>",
        f"<text x='10' y='22' font-family='sans-serif' font-size='15' font-weight='bold'>{escape(heading)}</text>",
        f"<text x='10' y='40' {FONT} fill='#444'>{escape(facts)}</text>",
        *_phases(trace, x, TOP - 8, bottom),
        *_grid(ii, end, s, x, TOP, bottom),
        *lanes,
        *_legend(trace.trips, bottom + 26),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def _end(trace: Trace) -> int:
    return max((e.complete for e in trace.events), default=0)


def _stages(program) -> int:
    stages = [step.stage for role in program.roles for step in role.steps]
    return max(stages) - min(stages) + 1


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _color(iteration: int) -> str:
    return PALETTE[iteration % len(PALETTE)]


def _pack(spans: list[tuple[int, int, int]], rows: int) -> tuple[list[tuple[int, ...]], int]:
    """Rows for (start, end, amount) spans: each takes the first ``amount`` rows free at its start
    (in order of start), opening new rows past ``rows`` when none is free. Returns (rows per span, row count)."""
    free_at = [-math.inf] * rows
    chosen: list[tuple[int, ...]] = [()] * len(spans)
    for index in sorted(range(len(spans)), key=lambda k: spans[k][0]):
        start, end, amount = spans[index]
        picked = [row for row, free in enumerate(free_at) if free <= start][:amount]
        while len(picked) < amount:
            free_at.append(end)
            picked.append(len(free_at) - 1)
        for row in picked:
            free_at[row] = end
        chosen[index] = tuple(picked)
    return chosen, max(1, len(free_at))


def _lane(kind: str, label: str, y: float, rows: int, width: float, body: list[str]) -> str:
    height = rows * ROW + 2 * PAD
    return "\n".join([
        f"<g class='lane {kind}'>",
        f"<line x1='0' x2='{_n(width)}' y1='{_n(y + height)}' y2='{_n(y + height)}' stroke='#ccc'/>",
        f"<text class='lane-label' x='8' y='{_n(y + PAD + 13)}' font-family='sans-serif' font-size='11'>"
        f"{escape(label)}</text>",
        *body,
        "</g>",
    ])


def _label(text: str, short: str, x0: float, y: float, width: float) -> str:
    """The longest of ``text``, ``short`` that fits in the bar, or nothing."""
    fits = next((t for t in (text, short) if len(t) * CHAR + 4 <= width), None)
    if fits is None:
        return ""
    return f"<text x='{_n(x0 + 2)}' y='{_n(y + 12)}' {FONT} fill='#111'>{escape(fits)}</text>"


def _op_bar(trace: Trace, e: Event, x, y: float, s: float) -> str:
    op = trace.program.loop.ops[e.op]
    color, busy = _color(e.iteration), min(op.issue, e.complete - e.issue)
    x0, w, h = x(e.issue), (e.complete - e.issue) * s, ROW - 3
    tip = (f"{op.name}, iteration {e.iteration}, role {e.role}: issue {e.issue}, complete {e.complete}, "
           f"duration {e.complete - e.issue} (issue window {busy})")
    parts = [f"<g class='op'><title>{escape(tip)}</title>",
             f"<rect class='bar' x='{_n(x0)}' y='{_n(y)}' width='{_n(w)}' height='{h}' fill='{color}' "
             f"fill-opacity='0.35' stroke='{color}' stroke-width='0.6'/>"]
    if busy < e.complete - e.issue:
        parts.append(f"<rect x='{_n(x(e.issue + busy))}' y='{_n(y)}' width='{_n((e.complete - e.issue - busy) * s)}' "
                     f"height='{h}' fill='url(#hatch)'/>")
    parts.append(f"<rect class='issue' x='{_n(x0)}' y='{_n(y)}' width='{_n(busy * s)}' height='{h}' fill='{color}'/>")
    parts.append(_label(f"{op.name} #{e.iteration}", op.name, x0, y, w))
    parts.append("</g>")
    return "".join(parts)


def _reservation_bar(trace: Trace, e: Event, offset: int, cycles: int, unit: str, x, y: float, s: float) -> str:
    name = trace.program.loop.ops[e.op].name
    start = e.issue + offset
    x0, w = x(start), cycles * s
    tip = f"{name}, iteration {e.iteration}, on {unit}: cycles {start} to {start + cycles} ({cycles})"
    return (f"<g class='res'><title>{escape(tip)}</title>"
            f"<rect x='{_n(x0)}' y='{_n(y)}' width='{_n(w)}' height='{ROW - 3}' fill='{_color(e.iteration)}' "
            f"fill-opacity='0.85'/>{_label(f'{name} #{e.iteration}', name, x0, y, w)}</g>")


def _phases(trace: Trace, x, top: float, bottom: float) -> list[str]:
    """Prologue (kernel iterations before the first that runs every stage), steady state, epilogue
    (from the first kernel iteration that starts no new loop iteration), timed by the events."""
    if not trace.events:
        return []
    program = trace.program
    steps = {step.op: step for role in program.roles for step in role.steps}
    first = min(step.stage for step in steps.values())
    last = max(step.stage for step in steps.values())
    starts: dict[int, int] = {}   # kernel iteration -> its start: the earliest issue less the step's offset
    for e in trace.events:
        k, begin = e.iteration + steps[e.op].stage, e.issue - steps[e.op].offset
        starts[k] = min(starts.get(k, begin), begin)
    end = _end(trace)
    at = lambda k: starts.get(k, end)  # noqa: E731
    full, drain = last, trace.trips + first       # first kernel iteration with every stage; first with no new one
    spans = [("prologue", at(first), at(min(full, drain)), "#dde6f2"),
             ("steady state", at(full), at(drain), None),
             ("epilogue", at(drain), end, "#f2e6d9")]
    out = []
    for name, a, b, fill in spans:
        if b <= a:
            continue
        if fill:
            out.append(f"<rect class='phase' x='{_n(x(a))}' y='{top}' width='{_n(x(b) - x(a))}' "
                       f"height='{_n(bottom - top)}' fill='{fill}' fill-opacity='0.6'/>")
        out.append(f"<line x1='{_n(x(a))}' x2='{_n(x(a))}' y1='{top - 10}' y2='{_n(bottom)}' stroke='#888' "
                   f"stroke-dasharray='4 3'/>")
        if len(name) * CHAR + 6 <= x(b) - x(a):
            out.append(f"<text x='{_n(x(a) + 4)}' y='{top - 2}' {FONT} fill='#444'>{name}</text>")
    return out


def _grid(ii: int, end: int, s: float, x, top: float, bottom: float) -> list[str]:
    """A gridline every II, labeled with its cycle (every few IIs when they are narrow)."""
    every = max(1, math.ceil(48 / (ii * s)))
    out = [f"<line x1='{LEFT}' x2='{_n(x(end))}' y1='{_n(bottom)}' y2='{_n(bottom)}' stroke='#333'/>"]
    for k in range(end // ii + 1):
        out.append(f"<line x1='{_n(x(k * ii))}' x2='{_n(x(k * ii))}' y1='{top}' y2='{_n(bottom + 4)}' "
                   f"stroke='#bbb' stroke-width='0.8'/>")
        if k % every == 0:
            out.append(f"<text x='{_n(x(k * ii))}' y='{_n(bottom + 16)}' text-anchor='middle' {FONT}>{k * ii}</text>")
    out.append(f"<text x='{LEFT - 6}' y='{_n(bottom + 16)}' text-anchor='end' {FONT} fill='#444'>"
               f"cycles (grid: II {ii})</text>")
    return out


def _legend(trips: int, y: float) -> list[str]:
    """Iteration colors (the palette repeats every len(PALETTE) iterations) and what a bar's parts mean."""
    out = [f"<text x='10' y='{y + 11}' {FONT}>iteration</text>"]
    cx = 80
    for c in range(min(trips, len(PALETTE))):
        text = str(c) if trips <= len(PALETTE) else f"{c}+{len(PALETTE)}k"
        out.append(f"<rect x='{cx}' y='{y + 2}' width='12' height='12' fill='{PALETTE[c]}'/>"
                   f"<text x='{cx + 16}' y='{y + 12}' {FONT}>{text}</text>")
        cx += 24 + len(text) * CHAR
    cx += 20
    keys = [(14, "fill='#888'", "", "issuing (role busy)"),
            (24, "fill='#888' fill-opacity='0.35' stroke='#888' stroke-width='0.6'", "fill='url(#hatch)'",
             "in flight (asynchronous)"),
            (14, "fill='#888' fill-opacity='0.85'", "", "unit reserved"),
            (14, "fill='#dde6f2'", "", "prologue"),
            (14, "fill='#f2e6d9'", "", "epilogue")]
    for width, fill, overlay, label in keys:
        box = f"x='{cx}' y='{y + 2}' width='{width}' height='12'"
        out.append(f"<rect {box} {fill}/>" + (f"<rect {box} {overlay}/>" if overlay else "")
                   + f"<text x='{cx + width + 4}' y='{y + 12}' {FONT}>{label}</text>")
        cx += width + 24 + len(label) * CHAR
    return out
