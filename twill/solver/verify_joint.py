"""The verifier's checks of the joint problem (roles, registers, memories, hand-offs, blocking).

Like verify.py it imports no solver: every rule is recomputed from the schedule, following
docs/joint-model.md.
"""

from __future__ import annotations

from twill.model.joint import ONE_ROLE, SLOT_ALIGN, carries_registers, layout, lifetime, same_role_pairs, smem_bytes, tmem_columns
from twill.model.loop import Loop
from twill.model.schedule import Schedule


def issue_table(loop: Loop, schedule: Schedule, role: int) -> list[list[int]]:
    """Per slot of II, the ops of ``role`` whose issue window covers it."""
    table: list[list[int]] = [[] for _ in range(schedule.ii)]
    for i, op in enumerate(loop.ops):
        if schedule.roles[i] == role:
            for k in range(min(op.issue, schedule.ii)):
                table[(schedule.starts[i] + k) % schedule.ii].append(i)
    return table


def verify_joint(loop: Loop, schedule: Schedule) -> list[tuple[str, str]]:
    """(constraint, message) for every violated joint rule; assumes starts and dependences are checked."""
    ii, t, roles, ops, w = schedule.ii, schedule.starts, schedule.roles, loop.ops, loop.warps
    if roles is None or len(roles) != len(ops):
        return [("role", f"a joint problem needs one role per op, got {roles!r}")]
    if any(not isinstance(r, int) or r < 0 for r in roles):
        return [("role", f"roles must be integers >= 0, got {roles!r}")]
    found = []
    names = lambda idx: ", ".join(ops[i].name for i in idx)  # noqa: E731

    producers = {roles[i] for i, op in enumerate(ops) if op.variable_latency}
    if len(producers) > 1:
        found.append(("variable_latency", f"variable-latency ops are on {len(producers)} roles, not one"))
    for i, op in enumerate(ops):
        if not op.variable_latency and roles[i] in producers:
            found.append(("variable_latency",
                          f"op {op.name} shares the variable-latency producer role {roles[i]}"))

    for role in sorted(set(roles)):
        for i in (i for i in range(len(ops)) if roles[i] == role and ops[i].issue > ii):
            found.append(("issue", f"op {ops[i].name} keeps role {role} busy {ops[i].issue} cycles > II {ii}"))
        clashes = {}  # first slot of each set of ops issuing at once
        for slot, holders in enumerate(issue_table(loop, schedule, role)):
            if len(holders) > 1:
                clashes.setdefault(tuple(holders), slot)
        for holders, slot in clashes.items():
            found.append(("issue", f"role {role} at slot {slot} of II {ii}: {names(holders)} "
                                   "issue at once (a role issues one op at a time)"))

    for a, b, why in same_role_pairs(loop):
        if roles[a] != roles[b]:
            found.append((why, ONE_ROLE[why].format(a=ops[a].name, b=ops[b].name)
                          + f", but they are on roles {roles[a]} and {roles[b]}"))
    for e in loop.edges:
        if not w.cross_role and carries_registers(loop, e) and roles[e.src] != roles[e.dst]:
            found.append(("cross_role", f"edge {loop.edge_text(e)} moves a register value across roles, "
                                        "which this problem bans"))
        if not e.blocking:
            continue
        for o, op in enumerate(ops):
            if o == e.dst or roles[o] != roles[e.dst]:
                continue
            # The latest instance of o issued strictly before src must be done when dst (of the
            # iteration `distance` later) issues.
            before = t[o] + ((t[e.src] - 1 - t[o]) // ii) * ii
            waits = t[e.dst] + e.distance * ii
            if before + op.duration > waits:
                found.append(("blocking", f"edge {loop.edge_text(e)} is blocking, but {op.name} (issued at "
                                          f"{before}, before {ops[e.src].name}) is still in flight at "
                                          f"{waits} on role {roles[e.dst]}"))

    for i, op in enumerate(ops):
        life = lifetime(loop, schedule, i)
        if op.depth is not None and life > op.depth * ii:
            found.append(("depth", f"op {op.name}: accumulator read until {life} cycles after its issue, after "
                                   f"its next instance overwrites it (II {ii})" if op.accumulator else
                                   f"op {op.name}: result lives {life} cycles, more "
                                   f"than its {op.depth} fixed ring slot(s) x II {ii}"))

    plan = layout(loop, schedule)
    if plan.warps > w.max_warps:
        found.append(("warps", f"{plan.warps} warps launched (roles: "
                               f"{', '.join(f'{r.id}:{r.warps}' for r in plan.roles)}), at most {w.max_warps}"))
    for r in plan.roles:
        if r.registers > w.max_registers:
            found.append(("registers", f"role {r.id} needs {r.registers} registers per thread, "
                                       f"the limit is {w.max_registers}"))
    if not plan.fits:
        found.append(("registers", f"register allocation {plan.registers} exceeds the register file "
                                   f"{w.register_file} or a setmaxnreg range: needs "
                                   f"{', '.join(f'role {r.id}: {r.registers}' for r in plan.roles)}"))
    smem = smem_bytes(loop, schedule)
    if smem.total > w.smem:
        found.append(("smem", f"shared memory {smem.total} bytes ({smem.data} of ring data in {SLOT_ALIGN}-byte "
                              f"blocks, {smem.channel_barriers} of channel and {smem.token_barriers} of order-token "
                              f"mbarriers) > {w.smem} (the machine's, less the resident tiles, the alignment "
                              "slack and the kernel's other barriers)"))
    if tmem_columns(loop, schedule) > w.tmem:
        found.append(("tmem", f"tensor memory {tmem_columns(loop, schedule)} columns > {w.tmem}"))
    return found

