"""The design-review report of ``twill verify``: text (one screen) and JSON (docs/hand-schedules.md)."""

from __future__ import annotations

import re
import textwrap
from typing import Any

from twill import summary
from twill.model.joint import layout
from twill.model.loop import Loop
from twill.report import columns
from twill.review import Review, cycle_ops, forced_ii
from twill.solver.search import SearchResult
from twill.solver.verify import Violation

SLOT = re.compile(r"^(.*) at slot (\d+) of II (\d+): (.*)$")


def compress(violations: list[Violation]) -> list[Violation]:
    """Runs of slots with the same clash become one violation: ``at slots 0-2309 of II 6459``."""
    out: list[Violation] = []
    runs: dict[tuple, list[int]] = {}
    order: list[tuple] = []
    for v in violations:
        m = SLOT.match(v.message)
        if not m:
            out.append(v)
            continue
        key = (v.constraint, m.group(1), m.group(3), m.group(4))
        if key not in runs:
            runs[key] = []
            order.append((len(out), key))
            out.append(v)  # placeholder, replaced below
        runs[key].append(int(m.group(2)))
    for position, key in order:
        constraint, head, ii, tail = key
        slots = sorted(runs[key])
        spans, first, last = [], slots[0], slots[0]
        for s in slots[1:] + [None]:
            if s is not None and s == last + 1:
                last = s
                continue
            spans.append(f"{first}" if first == last else f"{first}-{last}")
            if s is not None:
                first = last = s
        word = "slot" if len(slots) == 1 else "slots"
        out[position] = Violation(constraint, f"{head} at {word} {', '.join(spans)} of II {ii}: {tail}")
    return out


def _role_ids(r: Review) -> dict[int, str]:
    """Role id in the reviewed schedule -> the file's name for it."""
    s = r.schedule
    if r.hand.form == "explicit":
        return {rid: f"role {rid}" for rid in sorted(set(s.roles))}
    return dict(enumerate(r.hand.role_names))


def roles_json(r: Review) -> list[dict[str, Any]] | None:
    loop, s = r.loop, r.schedule
    if not loop.joint or s is None:
        return None
    names, st = _role_ids(r), r.hand.structure
    order = {o: j for ops in st.role_ops for j, o in enumerate(ops)}
    return [{"name": names[role.id], "warps": role.warps, "registers": role.registers,
             "setmaxnreg": role.setmaxnreg,
             "ops": [f"{loop.ops[o].name}@{s.stage(o)}" for o in sorted(role.ops, key=lambda o: order[o])]}
            for role in layout(loop, s).roles]


def _proof_text(result: SearchResult) -> str:
    steps = []
    for p in result.proof:
        iis = f"II {p.ii}" if p.ii == p.through else f"II {p.ii}..{p.through}"
        why = f"{p.by}: {p.detail}" if p.by in ("res_mii", "rec_mii") else p.by
        steps.append(f"{iis} {p.result} ({why})")
    return "; ".join(steps)


def optimality(r: Review, result: SearchResult | None) -> dict[str, Any]:
    """How the reviewed II compares with twill's proven minimum."""
    if result is None:
        return {"verdict": "not_checked"}
    twill = result.schedule.ii if result.schedule is not None else None
    base = {"twill_ii": twill, "proven": result.optimal, "lower_bound": result.lower_bound,
            "proof": _proof_text(result), "throughput_gain_percent": None}
    if not r.valid or r.ii is None:
        return base | {"verdict": "invalid"}
    if not result.optimal:
        return base | {"verdict": "unproven"}
    if r.ii == twill:
        return base | {"verdict": "optimal"}
    if r.ii < twill:  # cannot happen for a valid schedule unless the model disagrees with itself
        return base | {"verdict": "below_minimum"}
    return base | {"verdict": "not_optimal", "throughput_gain_percent": round(100 * (r.ii / twill - 1), 1)}


def comparison(r: Review, result: SearchResult | None) -> list[dict[str, Any]]:
    """Per op: role and stage here and in twill's schedule; ``differs`` when the stage or the set of
    ops sharing its role is not the same."""
    if result is None or result.schedule is None or r.schedule is None:
        return []
    loop, mine, theirs = r.loop, r.schedule, result.schedule
    names = _role_ids(r) if loop.joint else {}
    twill_names = summary.role_names(loop, theirs) if loop.joint else {}
    rows = []
    for i, op in enumerate(loop.ops):
        if loop.joint:
            mates = {j for j in range(len(loop.ops)) if mine.roles[j] == mine.roles[i]}
            their_mates = {j for j in range(len(loop.ops)) if theirs.roles[j] == theirs.roles[i]}
        else:
            mates = their_mates = set()
        rows.append({"op": op.name,
                     "this": {"role": names.get(mine.roles[i]) if loop.joint else None,
                              "stage": mine.stage(i), "start": mine.starts[i]},
                     "twill": {"role": twill_names.get(theirs.roles[i]) if loop.joint else None,
                               "stage": theirs.stage(i), "start": theirs.starts[i]},
                     "differs": mine.stage(i) != theirs.stage(i) or mates != their_mates})
    return rows


def _arc_json(loop: Loop, cycle) -> dict[str, Any]:
    const, coef = sum(a.const for a in cycle), sum(a.coef for a in cycle)
    return {"ops": cycle_ops(loop, cycle), "steps": [{"kind": a.kind, "text": a.text} for a in cycle],
            "const": const, "coef": coef, "forces": forced_ii(const, coef)}


def review_json(r: Review, result: SearchResult | None, show_time: bool = True) -> dict[str, Any]:
    """The verify JSON: the original keys, then the review's."""
    from twill.report import search_json

    loop, s = r.loop, r.schedule
    opt = optimality(r, result)
    violations = compress(r.violations)
    placement = r.placement
    data = {
        "schedule": r.hand.file, "valid": r.valid, "ii": r.ii,
        "violations": [{"constraint": v.constraint, "message": v.message} for v in violations],
        "length": s.length(loop) if s else None, "stages": s.stages if s else None,
        "optimal_ii": result.schedule.ii if result is not None and result.optimal else None,
        "gap": (r.ii - result.schedule.ii) if result is not None and result.optimal and r.ii else None,
        "search": search_json(result, show_time) if result is not None else None,
        "form": r.hand.form,
        "ii_source": r.ii_source if r.hand.form == "structured" else "file",
        "structure_best_ii": r.best_ii,
        "structure_best_ii_proven": r.best_proven,
        "scanned": list(r.scanned) if r.scanned else None,
        "impossible": r.impossible,
        "contradiction": _arc_json(loop, r.contradiction) if r.contradiction else None,
        "placement": None if placement is None else {
            "earliest": placement.earliest,
            "delays": [a.text for a in placement.delays],
            "guessed": [a.text for a in placement.guessed]},
        "starts": {op.name: s.starts[i] for i, op in enumerate(loop.ops)} if s else None,
        "placed_starts": ({op.name: r.earliest[i] for i, op in enumerate(loop.ops)}
                          if r.earliest is not None else None),
        "structure": {loop.ops[o].name: {"role": r.hand.structure.role_names[k] if loop.joint else None,
                                         "stage": r.hand.structure.stages[o], "position": j}
                      for k, ops in enumerate(r.hand.structure.role_ops) for j, o in enumerate(ops)},
        "roles": roles_json(r),
        "buffers": summary.buffers(loop, s) if s is not None and loop.joint else [],
        "expect": [{"claim": c.what, "subject": c.subject, "expected": c.expected, "derived": c.derived,
                    "agree": c.agree} for c in r.claims],
        "optimality": opt,
        "binding": [{"kind": b.kind, "text": b.text}
                    | ({"cycle": _arc_json(loop, b.cycle)} if b.cycle else {}) for b in r.binding],
        "comparison": comparison(r, result),
    }
    return data


def _claim_text(c) -> str:
    subject = f" {c.subject}" if c.subject else ""
    if c.agree is None:
        return f"{c.what}{subject} {c.expected}: not checked (no valid schedule)"
    return f"{c.what}{subject} {c.expected}: {'agree' if c.agree else f'DISAGREE (derived {c.derived})'}"


def render_review(r: Review, result: SearchResult | None) -> str:
    loop, s, hand = r.loop, r.schedule, r.hand
    lines = []
    how = ("explicit starts" if hand.form == "explicit" else
           "structured, II from the file" if r.ii_source == "file" else
           "structured, II: the smallest at which its placement verifies"
           + ("; no placement of this structure exists below it" if r.best_proven else
              "; another placement of the structure might do better"))
    if r.impossible:
        lines.append(f"{hand.file}: INVALID at every II: the structure contradicts itself")
        lines.append("  cycle: " + "; ".join(a.text for a in r.contradiction))
        const, coef = sum(a.const for a in r.contradiction), sum(a.coef for a in r.contradiction)
        lines.append(f"  weight {const} {'+' if coef >= 0 else '-'} {abs(coef)}*II > 0: {forced_ii(const, coef)}")
    elif r.contradiction:
        const, coef = sum(a.const for a in r.contradiction), sum(a.coef for a in r.contradiction)
        lines.append(f"{hand.file}: INVALID at II {r.ii}: the structure's constraints contradict each other ({how})")
        lines.append("  cycle: " + "; ".join(a.text for a in r.contradiction))
        lines.append(f"  this cycle {forced_ii(const, coef)}"
                     + (f"; the structure is first valid at II {r.best_ii}" if r.best_ii else ""))
    elif not r.valid:
        violations = compress(r.violations)
        scan = (f" (no valid II in {r.scanned[0]}..{r.scanned[1]}; shown at II {r.ii})"
                if r.ii_source == "scan" and r.scanned else "")
        lines.append(f"{hand.file}: INVALID at II {r.ii}: {len(violations)} violated constraint(s){scan} ({how})")
        lines += [f"  {v.constraint}: {v.message}" for v in violations[:12]]
        if len(violations) > 12:
            lines.append(f"  ... and {len(violations) - 12} more (--json lists them all)")
        if r.best_ii is not None and r.best_ii != r.ii:
            lines.append(f"  the same structure is valid at II {r.best_ii}")
    else:
        lines.append(f"{hand.file}: valid at II {r.ii} (length {s.length(loop)}, stages {s.stages}) "
                     f"under the model")
        lines.append(f"  {how}")
        p = r.placement
        if p is not None and not p.earliest:
            what = []
            if p.delays:
                what.append(f"{len(p.delays)} unit wait(s), e.g. {p.delays[0].text}")
            if p.guessed:
                what.append(f"{len(p.guessed)} cross-role blocking drain(s) read off the placement")
            lines.append("  placement: list placement, " + "; ".join(what))
        elif p is not None:
            lines.append("  placement: earliest (the least solution of the structure's constraints)")
        if r.earliest is not None:
            moved = [f"{op.name} {t} (given {g})" for op, t, g in zip(loop.ops, r.earliest, s.starts) if t != g]
            lines += textwrap.wrap("  the same structure also places validly at this II with starts "
                                   + ", ".join(moved), 110, subsequent_indent="    ")
    if s is not None and not r.contradiction:
        lines += ["", _render_roles(r)]
    if r.claims:
        lines += textwrap.wrap("expect: " + "; ".join(_claim_text(c) for c in r.claims), 110,
                               subsequent_indent="  ", break_on_hyphens=False)
    lines += ["", _render_optimality(r, result)]
    return "\n".join(lines)


def _render_roles(r: Review) -> str:
    loop, s = r.loop, r.schedule
    if not loop.joint:
        order = r.hand.structure.role_ops[0]
        return "order: " + " ".join(f"{loop.ops[o].name}@{s.stage(o)}" for o in order)
    rows = [["role", "warps", "registers", "setmaxnreg", "ops (issue order @stage)"]]
    rows += [[x["name"], str(x["warps"]), str(x["registers"]), str(x["setmaxnreg"]), " ".join(x["ops"])]
             for x in roles_json(r)]
    rings = ", ".join(f"{b['value']} {b['memory'].split()[0]}{' staging' if 'staging' in b['memory'] else ''} "
                      f"x{b['depth']}" for b in summary.buffers(loop, s))
    return columns(rows) + "\nrings: " + (rings or "none")


def _render_optimality(r: Review, result: SearchResult | None) -> str:
    opt = optimality(r, result)
    verdict, twill = opt["verdict"], opt.get("twill_ii")
    lines = []
    if verdict == "not_checked":
        return "optimality: not checked"
    if verdict == "invalid":
        found = (f"twill's proven minimum is II {twill}" if opt["proven"] else
                 f"twill's best found is II {twill}, lower bound {opt['lower_bound']}" if twill else
                 f"twill found no schedule; lower bound {opt['lower_bound']}")
        return f"optimality: not applicable (invalid schedule); {found}"
    if verdict == "unproven":
        best = f"; twill's best found II {twill}" if twill else ""
        return (f"optimality: unknown: the minimum II was not proven within the time limit "
                f"(proven lower bound {opt['lower_bound']}{best})")
    if verdict == "optimal":
        return f"optimal: II {r.ii} equals the proven minimum (proof: {opt['proof']})"
    if verdict == "below_minimum":
        return f"II {r.ii} is below twill's proven minimum {twill}: the model disagrees with itself (a bug)"
    lines.append(f"not optimal: twill finds II {twill} ({opt['throughput_gain_percent']}% higher throughput), "
                 f"proven minimal")
    lines.append(f"  proof: {opt['proof']}")
    lines += _render_binding(r)
    rows = comparison(r, result)
    if rows:
        table = [["", "op", "this schedule", "twill"]]
        for row in rows:
            here, there = row["this"], row["twill"]
            fmt = lambda x: (f"{x['role']}@{x['stage']}" if x["role"] else f"@{x['stage']}") + f" t={x['start']}"  # noqa: E731
            table.append(["*" if row["differs"] else "", row["op"], fmt(here), fmt(there)])
        lines += ["side by side (* = different stage or role grouping):", columns(table, "  ")]
    return "\n".join(lines)


def _render_binding(r: Review) -> list[str]:
    lines = []
    target = r.best_ii if r.best_ii is not None else r.ii
    if r.best_ii is not None and r.ii is not None and r.best_ii < r.ii:
        lines.append(f"why: the file's II {r.ii} has slack: the same structure is valid at II {r.best_ii}")
    for b in r.binding:
        if b.kind == "cycle":
            ops = " -> ".join(cycle_ops(r.loop, b.cycle))
            lines.append(f"why II {target}: binding chain {ops} (the structure fixed): "
                         f"{b.const} {'+' if b.coef >= 0 else '-'} {abs(b.coef)}*II <= 0 {forced_ii(b.const, b.coef)}")
            lines.append("  " + b.text)
        else:
            lines.append(f"why II {target}: {b.text}")
    return lines
