"""Which completion signals a wgmma role may deliver late: at its next commit, not at completion.

On sm90a the only way to learn that a wgmma finished is ``wgmma.wait_group``. Waiting for zero
pending groups right after an MMA keeps the role from issuing the next one until the tensor core
drained; CUTLASS's mainloop instead releases a stage after the *next* MMA is issued
(``wait_group 1``). The program says "release at completion"; a later release is still a correct
execution of the protocol, unless the role blocks, before it delivers, on a barrier that cannot
complete without that release. This module proves that it does not, or keeps the signal immediate.

Rule (checked per step s with completion signals, all in kernel-iteration coordinates, so it holds
for every k): the role holds s's releases from s(k) until the next step that commits a wgmma group
(later in the body at k, or at k + 1). Every barrier wait the role passes in between must be a full
wait on a data channel whose producer role waits only on empty barriers of channels that this role
alone consumes, and that producer must not need a held release before it produces the awaited item
(its empty wait for item x needs the release of item x - slots). Then the producer never waits for
anything but releases this role has already delivered, and the role never blocks on a held one.
"""

from __future__ import annotations

from twill.emit.program import Program, RoleProgram, Step


def deferrable(program: Program, role: RoleProgram, commits: set[int], held: dict[int, list[tuple[int, int]]],
               slots: dict[int, int]) -> set[int]:
    """Ops of ``role`` whose completion signals (``held[op]``: the step's (channel, distance) pairs)
    may be delivered after the role's next commit (a step whose op is in ``commits``); ``slots``:
    each channel's ring slots."""
    order = [(k, step) for k in (0, 1) for step in role.steps]   # this kernel iteration, then the next
    safe = set()
    for j, step in enumerate(role.steps):
        if not held.get(step.op):
            continue
        after = order[j + 1:]
        stop = next((n for n, (_, t) in enumerate(after) if t.op in commits), None)
        if stop is None:
            continue
        passed = [(k, t, w) for k, t in after[:stop + 1] for w in t.waits]
        if all(_safe_wait(program, role, k, t.stage, w, step, held[step.op], slots) for k, t, w in passed):
            safe.add(step.op)
    return safe


def _safe_wait(program: Program, role: RoleProgram, k: int, stage: int, wait, held_step: Step,
               held: list[tuple[int, int]], slots: dict[int, int]) -> bool:
    channel = program.channels[wait.channel]
    if wait.barrier != "full" or channel.token:
        return False
    producer = program.role(channel.producer_role)
    if not _depends_only_on(program, producer, role.id):
        return False
    item = k - stage - wait.distance                  # the awaited item q'
    u = _position(producer, channel.producer)
    at = item + producer.steps[u].stage               # the producer's kernel iteration for q'
    for released, distance in held:
        held_item = -held_step.stage - distance       # the held release, at the consumer's k = 0
        for v, step in enumerate(producer.steps):
            for w in step.waits:
                if w.channel == released and w.barrier == "empty":
                    x = (at if v <= u else at - 1) - step.stage - w.distance
                    if x - slots[released] >= held_item:
                        return False
    return True


def _depends_only_on(program: Program, producer: RoleProgram, consumer: int) -> bool:
    """The producer waits only on empty barriers of channels that ``consumer`` alone releases."""
    return all(w.barrier == "empty" and program.channels[w.channel].consumer_roles == (consumer,)
               for step in producer.steps for w in step.waits)


def _position(role: RoleProgram, op: int) -> int:
    return next(n for n, step in enumerate(role.steps) if step.op == op)

