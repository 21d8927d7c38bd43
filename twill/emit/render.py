"""``twill lower``: the pipeline program as text a kernel author can read."""

from __future__ import annotations

from twill.emit.program import Channel, Program, RoleProgram, Step


def _k(shift: int) -> str:
    """Loop iteration k - shift, in kernel-iteration terms."""
    return "k" if shift == 0 else f"k{-shift:+d}"


def _step_line(program: Program, step: Step) -> str:
    ch, ops = program.channels, program.loop.ops
    pre = [f"wait {ch[w.channel].name}.{w.barrier}[{_k(step.stage + w.distance)}]" for w in step.waits]
    pre += [f"wait done {ops[w.op].name}({_k(step.stage + w.distance)})" for w in step.local_waits]
    post = [f"arrive {ch[s.channel].name}.{s.barrier}[{_k(step.stage + s.distance)}]"
            + (" at issue" if s.at == "issue" else "") for s in step.signals]
    text = f"    @{step.offset:<6d} {step.name}({_k(step.stage)})"
    if pre:
        text += "   <- " + ", ".join(pre)
    if post:
        text += "   -> " + ", ".join(post)
    return text


def _role(program: Program, role: RoleProgram) -> list[str]:
    ramp = role.last_stage - role.first_stage
    loop_text = f"for k = {role.first_stage} .. N{role.last_stage - 1:+d}"
    if ramp:
        loop_text += f" (first and last {ramp} guarded: an op of iteration k - stage runs when it is in [0, N))"
    return ([f"role {role.id}: {role.warps} warp{'s' if role.warps > 1 else ''}, setmaxnreg {role.setmaxnreg} "
             f"(needs {role.registers})", f"  {loop_text}:"]
            + [_step_line(program, s) for s in role.steps])


def _channel(ch: Channel) -> str:
    what = ("order token" if ch.token else
            f"{ch.memory} {ch.slot_size} {'columns' if ch.memory == 'tmem' else 'bytes'} per slot"
            if ch.memory != "none" else "signal")
    tx = f", expect_tx {ch.tx_bytes} bytes" if ch.tx_bytes else ""
    return (f"  {ch.name}: role {ch.producer_role} -> roles {', '.join(map(str, ch.consumer_roles))}; "
            f"{ch.depth} slot{'s' if ch.depth > 1 else ''}, {what}, {ch.barrier}, full arrivals 1{tx}, "
            f"empty arrivals {ch.empty_arrivals}, hand-off {ch.latency} cycles, release {ch.release_latency} cycles")


def render_program(program: Program) -> str:
    loop = program.loop
    lines = [f"pipeline program: {loop.name}, II {program.ii}, {program.schedule.stages} stages, "
             f"{len(program.roles)} roles, {len(program.channels)} channels"]
    lines.append("channels (item q in slot q % depth; full parity (q // depth) & 1, empty parity its inverse):")
    lines += [_channel(ch) for ch in program.channels]
    kept = [v for v in program.values if v.memory == "registers" and v.depth > 1]
    if kept:
        lines.append("register rings (copies kept per role, slot = iteration % depth): "
                     + ", ".join(f"{loop.ops[v.op].name} x{v.depth}" for v in kept))
    if program.unordered:
        lines.append("unordered (the hardware picks the order; greedy issue may then run slower than II):")
        lines += [f"  {text}" for text in program.unordered]
    for role in program.roles:
        lines += _role(program, role)
    return "\n".join(lines)
