"""The ``twill`` command line: thin wrappers that parse, call the library and render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
import yaml

from twill.errors import SpecError
from twill.model.loader import load_spec
from twill.report import render_bounds, render_search, search_json
from twill.report_time_indexed import render_time_indexed, time_indexed_json
from twill.solver.backend import Settings
from twill.solver.backends import BACKENDS, make_backend
from twill.solver.bounds import compute_bounds
from twill.solver.search import search

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Provably optimal modulo schedules for GPU kernel loops.")

MachineOption = typer.Option(None, "--machine", "-m", help="Machine name (specs/machines) or YAML path; "
                                                           "overrides the spec's own machine.")
BackendOption = typer.Option("cpsat", "--backend", "-b", help=f"Solver: {' | '.join(BACKENDS)}.")
TimeLimitOption = typer.Option(60.0, "--time-limit", "-t", min=0.0,
                               help="Seconds for the whole search (deterministic seconds with --deterministic).")
DeterministicOption = typer.Option(False, "--deterministic",
                                   help="One worker, fixed seed, work-based limits: byte-identical output.")
JsonOption = typer.Option(None, "--json", help="Write the result as JSON to FILE, or '-' for stdout only.")
SubtileOption = typer.Option(None, "--subtile", min=1, help="Split ops marked `subtile: true` into N sub-ops "
                                                              "(overrides the spec).")
CrossRoleOption = typer.Option(None, "--cross-role/--no-cross-role",
                               help="Allow (or ban) register values crossing roles (overrides the spec).")
MaxWarpsOption = typer.Option(None, "--max-warps", min=1, help="At most N warps per CTA (overrides the spec).")
SaveScheduleOption = typer.Option(None, "--save-schedule", metavar="FILE",
                                  help="Write the schedule found as a schedule file (ii, starts, roles) that "
                                       "verify, lower and simulate read.")
SetOption = typer.Option(None, "--set", metavar="NAME=VALUE",
                         help="Set a kernel parameter of the spec's `params` (repeatable), e.g. --set head_dim=64.")
ENCODINGS = ("compact", "time-indexed")
EncodingOption = typer.Option("compact", "--encoding",
                              help="compact: twill's exact model (--backend). time-indexed: the Twill paper's "
                                   "encoding on Z3 after cost normalization (U = 300), a baseline with no proof "
                                   "for real cycles.")


def parse_settings(settings: Optional[list[str]]) -> dict:
    """``["head_dim=64", "causal=true"]`` -> ``{"head_dim": 64, "causal": True}`` (YAML scalars)."""
    values = {}
    for setting in settings or []:
        name, sep, text = setting.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise SpecError(f"expected NAME=VALUE, got {setting!r}", field="--set")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, (bool, int, float, str)):
            raise SpecError(f"expected a number, true/false or a word, got {text!r}", field=f"--set {name.strip()}")
        values[name.strip()] = value
    return values


def fail(error: SpecError) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2)


def run_search(loop, backend: str, time_limit: float, deterministic: bool):
    settings = Settings(deterministic=deterministic)
    try:
        solver = make_backend(backend, settings)
    except ValueError as error:
        fail(SpecError(str(error), field="--backend"))
    return search(loop, solver, time_limit, settings)


def write_file(target: str, text: str, option: str) -> None:
    try:
        Path(target).write_text(text)
    except OSError as exc:
        fail(SpecError(f"cannot write: {exc.strerror}", file=target, field=option))


def emit_json(data: dict, target: str) -> None:
    text = json.dumps(data, indent=2) + "\n"
    if target == "-":
        typer.echo(text, nl=False)
    else:
        write_file(target, text, "--json")


def load_scheduled(spec: str, schedule_file: Optional[str], machine: Optional[str], settings: Optional[list[str]],
                   subtile: Optional[int], cross_role: Optional[bool], max_warps: Optional[int],
                   backend: str, time_limit: float, deterministic: bool, precheck=None):
    """(instance, schedule, proof) for lower, simulate and emit: the schedule file's (checked by the
    verifier), or a solve's; ``proof`` says where the schedule came from and what is proven of its II.
    ``precheck(instance)`` may raise a SpecError before anything is solved (emit: parameters its op
    bodies cannot emit).

    Exits 2 on bad input and 1 when there is no valid schedule."""
    from twill.model.hand_schedule import load_hand_schedule, read_header
    from twill.model.loader import load_instance
    from twill.review import review

    try:
        header = read_header(schedule_file) if schedule_file else None
        params = ((header.params or {}) if header else {}) | parse_settings(settings)
        instance = load_instance(spec, machine or (header.machine if header else None), params or None,
                                 subtile=subtile, cross_role=cross_role, max_warps=max_warps)
        loop = instance.loop
        if not loop.joint:
            raise SpecError("needs a machine with warps (roles, barriers): pass --machine h100 or b200",
                            file=spec, field="machine")
        if precheck is not None:
            precheck(instance)
        hand = load_hand_schedule(schedule_file, loop) if schedule_file else None
    except SpecError as error:
        fail(error)
    if hand is None:
        result = run_search(loop, backend, time_limit, deterministic)
        if result.schedule is None:
            typer.echo(f"error: no schedule: {result.status} (lower bound II {result.lower_bound})", err=True)
            raise typer.Exit(1)
        return instance, result.schedule, {"source": "solved", "optimal": result.optimal,
                                           "lower_bound": result.lower_bound}
    checked = review(loop, hand)
    if not checked.valid:
        typer.echo(f"error: {schedule_file}: not a valid schedule (twill verify {spec} {schedule_file} "
                   "says why)", err=True)
        raise typer.Exit(1)
    return instance, checked.schedule, file_proof(loop, checked.schedule, schedule_file)


def file_proof(loop, schedule, source: str) -> dict:
    """What is proven of a schedule read from a file: optimal when its II meets the lower bound."""
    mii = compute_bounds(loop).mii
    return {"source": source, "optimal": True if schedule.ii == mii else None, "lower_bound": mii}


def schedule_file_text(loop, schedule, machine: Optional[str], params: dict) -> str:
    """A schedule in the explicit form of docs/hand-schedules.md."""
    data = {"machine": machine} if machine else {}
    if params:
        data["params"] = params
    data["ii"] = schedule.ii
    data["starts"] = {op.name: t for op, t in zip(loop.ops, schedule.starts)}
    if schedule.roles is not None:
        data["roles"] = {op.name: r for op, r in zip(loop.ops, schedule.roles)}
    return f"# twill solve: II {schedule.ii}\n" + yaml.safe_dump(data, sort_keys=False)


@app.command()
def check(spec: str = typer.Argument(..., help="Loop spec (YAML)."), machine: Optional[str] = MachineOption,
          subtile: Optional[int] = SubtileOption, cross_role: Optional[bool] = CrossRoleOption,
          max_warps: Optional[int] = MaxWarpsOption, settings: Optional[list[str]] = SetOption):
    """Validate a spec and print the lower bounds on II and what binds them."""
    try:
        loop = load_spec(spec, machine, parse_settings(settings), subtile=subtile, cross_role=cross_role,
                         max_warps=max_warps)
    except SpecError as error:
        fail(error)
    typer.echo(render_bounds(loop, compute_bounds(loop)))


@app.command()
def solve(spec: str = typer.Argument(..., help="Loop spec (YAML)."), machine: Optional[str] = MachineOption,
          backend: str = BackendOption, time_limit: float = TimeLimitOption,
          deterministic: bool = DeterministicOption, json_out: Optional[str] = JsonOption,
          subtile: Optional[int] = SubtileOption, cross_role: Optional[bool] = CrossRoleOption,
          max_warps: Optional[int] = MaxWarpsOption, encoding: str = EncodingOption,
          settings: Optional[list[str]] = SetOption, save_schedule: Optional[str] = SaveScheduleOption):
    """Find the smallest II and prove it optimal, then minimize the remaining objectives in order.

    Pure loops: length, then stages. Joint loops (machine with warps): bytes moved across roles,
    length, ring slots, roles used.
    """
    try:
        loop = load_spec(spec, machine, parse_settings(settings), subtile=subtile, cross_role=cross_role,
                         max_warps=max_warps)
        if encoding not in ENCODINGS:
            raise SpecError(f"unknown encoding {encoding!r} (choose from {', '.join(ENCODINGS)})", field="--encoding")
    except SpecError as error:
        fail(error)
    if encoding == "time-indexed":
        solve_time_indexed(loop, time_limit, deterministic, json_out)
    result = run_search(loop, backend, time_limit, deterministic)
    show_time = not deterministic
    if save_schedule is not None and result.schedule is not None:
        write_file(save_schedule, schedule_file_text(loop, result.schedule, machine, parse_settings(settings)),
                   "--save-schedule")
    if json_out is not None:
        emit_json(search_json(result, show_time), json_out)
    if json_out != "-":
        typer.echo(render_search(result, show_time))
    raise typer.Exit(0 if result.schedule is not None else 1)


def solve_time_indexed(loop, time_limit: float, deterministic: bool, json_out: Optional[str]) -> None:
    from twill.solver.timeindexed import search_time_indexed  # only this baseline needs it

    result = search_time_indexed(loop, time_limit, Settings(deterministic=deterministic))
    if json_out is not None:
        emit_json(time_indexed_json(result, not deterministic), json_out)
    if json_out != "-":
        typer.echo(render_time_indexed(result, not deterministic))
    raise typer.Exit(0 if result.schedule is not None else 1)


@app.command("verify")
def verify_command(spec: str = typer.Argument(..., help="Loop spec (YAML)."),
                   schedule_file: str = typer.Argument(..., metavar="SCHEDULE",
                                                       help="Schedule (YAML): roles with ops in issue order "
                                                            "and stages, or ii and starts (docs/hand-schedules.md)."),
                   machine: Optional[str] = MachineOption, backend: str = BackendOption,
                   time_limit: float = TimeLimitOption, deterministic: bool = DeterministicOption,
                   json_out: Optional[str] = JsonOption, subtile: Optional[int] = SubtileOption,
                   cross_role: Optional[bool] = CrossRoleOption, max_warps: Optional[int] = MaxWarpsOption,
                   settings: Optional[list[str]] = SetOption):
    """Review a hand schedule: valid or not, its roles and rings, and whether its II is optimal (and why not)."""
    from twill.model.hand_schedule import load_hand_schedule, read_header
    from twill.report_verify import render_review, review_json
    from twill.review import review

    try:
        header = read_header(schedule_file)
        params = (header.params or {}) | parse_settings(settings)
        loop = load_spec(spec, machine or header.machine, params or None, subtile=subtile, cross_role=cross_role,
                         max_warps=max_warps)
        hand = load_hand_schedule(schedule_file, loop)
    except SpecError as error:
        fail(error)
    checked = review(loop, hand)
    result = run_search(loop, backend, time_limit, deterministic)
    if json_out is not None:
        emit_json(review_json(checked, result, not deterministic), json_out)
    if json_out != "-":
        typer.echo(render_review(checked, result))
    raise typer.Exit(0 if checked.valid else 1)


@app.command("lower")
def lower_command(spec: str = typer.Argument(..., help="Loop spec (YAML)."),
                  schedule_file: Optional[str] = typer.Argument(None, metavar="[SCHEDULE]",
                                                                help="Schedule file (default: solve the spec)."),
                  machine: Optional[str] = MachineOption, backend: str = BackendOption,
                  time_limit: float = TimeLimitOption, deterministic: bool = DeterministicOption,
                  subtile: Optional[int] = SubtileOption, cross_role: Optional[bool] = CrossRoleOption,
                  max_warps: Optional[int] = MaxWarpsOption, settings: Optional[list[str]] = SetOption):
    """Print the pipeline program: per role its ops in issue order with their waits and signals, and the channels."""
    from twill.emit.lower import lower
    from twill.emit.render import render_program

    instance, schedule, _ = load_scheduled(spec, schedule_file, machine, settings, subtile, cross_role, max_warps,
                                           backend, time_limit, deterministic)
    typer.echo(render_program(lower(instance.loop, schedule)))


@app.command("simulate")
def simulate_command(spec: str = typer.Argument(..., help="Loop spec (YAML)."),
                     schedule_file: Optional[str] = typer.Argument(None, metavar="[SCHEDULE]",
                                                                   help="Schedule file (default: solve the spec)."),
                     machine: Optional[str] = MachineOption, backend: str = BackendOption,
                     time_limit: float = TimeLimitOption, deterministic: bool = DeterministicOption,
                     subtile: Optional[int] = SubtileOption, cross_role: Optional[bool] = CrossRoleOption,
                     max_warps: Optional[int] = MaxWarpsOption, settings: Optional[list[str]] = SetOption,
                     iters: int = typer.Option(64, "--iters", "-n", min=0, help="Loop iterations (trip count)."),
                     jitter: float = typer.Option(0.0, "--jitter", min=0.0,
                                                  help="TMA latencies drawn uniformly from L(1 - J) .. L(1 + J), J < 1."),
                     seed: int = typer.Option(0, "--seed", help="Seed of the latency draws."),
                     issue: str = typer.Option("asap", "--issue", help="asap: as soon as waits and units allow; "
                                                                      "timetable: also never before the schedule's time."),
                     json_out: Optional[str] = JsonOption,
                     svg: Optional[str] = typer.Option(None, "--svg", metavar="FILE",
                                                       help="Write the run's timeline (one lane per role and per "
                                                            "unit, colored by iteration) as SVG."),
                     functional: bool = typer.Option(False, "--functional",
                                                     help="Also run for trip counts 0, 1, 2, stages-1, stages, 5 "
                                                          "and N, and execute the ops through the ring slots in "
                                                          "each run's order: every read must get its producer's "
                                                          "item, and FA/GEMM outputs must match NumPy.")):
    """Run the pipeline program cycle by cycle: cycles per iteration against II, utilization, and checks
    (deadlock, read before arrival, slot overwritten before release, resources). Exit 1 when a check fails."""
    from twill.emit.lower import lower
    from twill.sim.engine import ISSUE_MODES, simulate
    from twill.sim.report import render_simulation, simulation_json

    if issue not in ISSUE_MODES:
        fail(SpecError(f"unknown issue mode {issue!r} (choose from {', '.join(ISSUE_MODES)})", field="--issue"))
    if jitter >= 1:
        fail(SpecError(f"jitter must be below 1, got {jitter:g}", field="--jitter"))
    instance, schedule, _ = load_scheduled(spec, schedule_file, machine, settings, subtile, cross_role, max_warps,
                                           backend, time_limit, deterministic)
    program = lower(instance.loop, schedule)
    result = simulate(program, iters, latency_jitter=jitter, seed=seed, issue=issue)
    checked, runs = None, [result]
    if functional:
        from twill.sim.functional import check_functional, check_trips

        runs = [simulate(program, n, latency_jitter=jitter, seed=seed, issue=issue)
                for n in sorted(set(check_trips(program)) | {iters})]
        checked = check_functional([run.trace for run in runs], seed=seed)
    if svg is not None:
        from twill.sim.svg import render_svg

        write_file(svg, render_svg(result.trace), "--svg")
    if json_out is not None:
        emit_json(simulation_json(result), json_out)
    if json_out != "-":
        typer.echo(render_simulation(result))
        if checked is not None:
            failed = next((run for run in runs if not run.ok), None)
            typer.echo(f"checks at trip counts {', '.join(str(run.trace.trips) for run in runs)}: "
                       + ("passed" if failed is None else
                          f"FAILED at {failed.trace.trips}: {failed.findings[0].message}"))
            typer.echo(checked.text())
    ok = all(run.ok for run in runs) and (checked is None or checked.passed)
    raise typer.Exit(0 if ok else 1)


@app.command("emit")
def emit_command(spec: str = typer.Argument(..., help="Loop spec (YAML)."),
                 schedule_file: Optional[str] = typer.Argument(None, metavar="[SCHEDULE]",
                                                               help="Schedule file (default: solve the spec)."),
                 out: str = typer.Option(..., "--out", "-o", metavar="DIR", help="Directory to write (replaced)."),
                 machine: Optional[str] = MachineOption, settings: Optional[list[str]] = SetOption,
                 target: Optional[str] = typer.Option(None, "--target", metavar="TARGET",
                                                      help="sm90a | sm100a | host (default: the machine's arch)."),
                 compile_: bool = typer.Option(False, "--compile", help="NVRTC to a cubin (the cuda extra); report "
                                                                      "ptxas' numbers and the SASS classes."),
                 check: bool = typer.Option(False, "--check", help="host target: build the C++ twin and run it "
                                                                  "against NumPy for trip counts 0, 1, 2, stages-1, "
                                                                  "stages, 5 and 64."),
                 sanitize: bool = typer.Option(True, "--sanitize/--no-sanitize",
                                               help="Build the twin under ThreadSanitizer (with --check)."),
                 seed: int = typer.Option(0, "--seed", help="Twin inputs' seed; nonzero also delays TMA data at "
                                                            "random (with --check)."),
                 json_out: Optional[str] = JsonOption, backend: str = BackendOption,
                 time_limit: float = TimeLimitOption, deterministic: bool = DeterministicOption,
                 subtile: Optional[int] = SubtileOption, cross_role: Optional[bool] = CrossRoleOption,
                 max_warps: Optional[int] = MaxWarpsOption):
    """Emit the kernel: source, manifest.json and a launcher in DIR; optionally compile it (device
    targets) or check its CPU twin against NumPy (host). Exit 1 when compile or check fails."""
    from twill.emit.driver import emit_kernel
    from twill.emit.kernel import check_params, family_of

    def in_spec(error: SpecError) -> SpecError:
        if error.file is None and not error.field.startswith("-"):
            error.file = spec  # what the spec asks for (its name, ops, sizes) cannot be emitted
        return error

    def precheck(instance) -> None:  # before a solve: the family and the parameters its op bodies cover
        try:
            check_params(family_of(instance))
        except SpecError as error:
            raise in_spec(error) from None

    instance, schedule, proof = load_scheduled(spec, schedule_file, machine, settings, subtile, cross_role,
                                               max_warps, backend, time_limit, deterministic, precheck)
    try:
        result = emit_kernel(instance, schedule, proof, target, out, compile_=compile_, check=check,
                             sanitize=sanitize, seed=seed)
    except SpecError as error:
        fail(in_spec(error))
    if json_out is not None:
        emit_json(result.json(), json_out)
    if json_out != "-":
        typer.echo(result.text())
    raise typer.Exit(0 if result.ok else 1)


def main() -> None:
    app()
