"""The SVG timeline of a trace: valid XML, one bar per event, lanes per role and unit, geometry."""

from dataclasses import replace
from xml.etree import ElementTree as ET

import pytest

from twill.emit.lower import lower
from twill.model.hand_schedule import load_hand_schedule
from twill.model.loader import load_spec
from twill.sim.svg import LEFT, render_svg, scale
from twill.sim.trace import Event, Trace, timetable

NS = {"s": "http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def program():
    loop = load_spec("specs/kernels/fa-fwd.yaml", "h100")
    return lower(loop, load_hand_schedule("kernels/fa-fwd-h100.schedule.yaml", loop).schedule)


def lanes(root, kind):
    return [g for g in root.iter("{%s}g" % NS["s"]) if g.get("class") == f"lane {kind}"]


def groups(element, cls):
    return [g for g in element.iter("{%s}g" % NS["s"]) if g.get("class") == cls]


def rect(group, cls):
    return next(r for r in group.findall("s:rect", NS) if r.get("class") == cls)


def test_one_bar_per_event_and_a_lane_per_role_and_unit(program):
    trace = timetable(program, 4)
    root = ET.fromstring(render_svg(trace))
    assert len(groups(root, "op")) == len(trace.events)
    role_lanes, unit_lanes = lanes(root, "role"), lanes(root, "unit")
    assert len(role_lanes) == len(program.roles)
    assert [lane.find("s:text", NS).text.split(":")[0] for lane in unit_lanes] == \
        [f"unit {unit}" for unit in program.loop.capacity]
    for role, lane in zip(program.roles, role_lanes):
        assert len(groups(lane, "op")) == sum(e.role == role.id for e in trace.events)
    for unit, lane in zip(program.loop.capacity, unit_lanes):
        assert len(groups(lane, "res")) == sum(r.amount for e in trace.events
                                               for r in program.loop.ops[e.op].reservations if r.unit == unit)


def test_bar_spans_issue_to_complete_and_issue_window_is_solid(program):
    trace = timetable(program, 3)
    s, root = scale(trace), ET.fromstring(render_svg(trace))
    for role, lane in zip(program.roles, lanes(root, "role")):
        events = [e for e in trace.events if e.role == role.id]
        for e, bar in zip(events, groups(lane, "op"), strict=True):
            whole, issue = rect(bar, "bar"), rect(bar, "issue")
            assert float(whole.get("x")) == pytest.approx(LEFT + e.issue * s, abs=0.01)
            assert float(whole.get("width")) == pytest.approx((e.complete - e.issue) * s, abs=0.01)
            busy = min(program.loop.ops[e.op].issue, e.complete - e.issue)
            assert float(issue.get("width")) == pytest.approx(busy * s, abs=0.01)
            assert f"iteration {e.iteration}" in bar.find("s:title", NS).text


def test_bars_in_one_row_do_not_overlap(program):
    root = ET.fromstring(render_svg(timetable(program, 4)))
    for lane in lanes(root, "role") + lanes(root, "unit"):
        rows: dict[float, list[tuple[float, float]]] = {}
        for bar in groups(lane, "op") + groups(lane, "res"):
            r = bar.find("s:rect", NS)
            x = float(r.get("x"))
            rows.setdefault(float(r.get("y")), []).append((x, x + float(r.get("width"))))
        for spans in rows.values():
            spans.sort()
            assert all(a[1] <= b[0] + 0.02 for a, b in zip(spans, spans[1:]))


def test_consecutive_iterations_have_different_colors(program):
    trace = timetable(program, 8)
    root = ET.fromstring(render_svg(trace))
    colors: dict[int, set[str]] = {}
    for lane in lanes(root, "role"):
        for bar in groups(lane, "op"):
            iteration = int(bar.find("s:title", NS).text.split("iteration ")[1].split(",")[0])
            colors.setdefault(iteration, set()).add(rect(bar, "bar").get("fill"))
    assert all(len(c) == 1 for c in colors.values())
    assert all(colors[i] != colors[i + 1] for i in range(7))


def test_names_and_title_are_escaped(program):
    loop = program.loop
    odd = replace(loop, ops=(replace(loop.ops[0], name="<a&b \"c\">"),) + loop.ops[1:])
    text = render_svg(timetable(replace(program, loop=odd), 2), title="x < y & 'z'")
    root = ET.fromstring(text)
    assert root.find("s:text", NS).text == "x < y & 'z'"
    assert any("<a&b \"c\">" in (t.text or "") for t in root.iter("{%s}title" % NS["s"]))


def test_phases_follow_the_kernel_iterations(program):
    trace = timetable(program, 4)   # 3 stages: kernel iterations 0-1 prologue, 2-3 steady, 4-5 epilogue
    s, ii, end = scale(trace), program.ii, max(e.complete for e in trace.events)
    phases = [r for r in ET.fromstring(render_svg(trace)).iter("{%s}rect" % NS["s"]) if r.get("class") == "phase"]
    spans = [(float(r.get("x")), float(r.get("width"))) for r in phases]
    assert spans == [pytest.approx((LEFT, 2 * ii * s), abs=0.01),
                     pytest.approx((LEFT + 4 * ii * s, (end - 4 * ii) * s), abs=0.01)]


def test_oversubscribed_unit_opens_a_marked_row(program):
    op = next(v for v, o in enumerate(program.loop.ops) if o.name == "qk.0")
    events = (Event(1, op, 0, 0, 900), Event(1, op, 1, 10, 910))
    root = ET.fromstring(render_svg(Trace(program, 2, events)))
    tc = next(lane for lane in lanes(root, "unit") if lane.find("s:text", NS).text == "unit tc")
    assert [t.text for t in tc.findall("s:text", NS)][1:] == ["#0", "over #1"]
    ys = [float(g.find("s:rect", NS).get("y")) for g in groups(tc, "res")]
    assert len(ys) == 2 and ys[0] != ys[1]


def test_short_and_empty_runs_render_deterministically(program):
    for trips in (0, 1):
        text = render_svg(timetable(program, trips))
        ET.fromstring(text)
        assert text == render_svg(timetable(program, trips))
