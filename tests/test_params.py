"""Parameterized specs and cost kinds: expressions, --set, when, kinds, sub-tiling by argument."""

from pathlib import Path

import pytest

from twill.errors import SpecError
from twill.model.expr import ExprError, evaluate
from twill.model.loader import load_spec

HERE = Path(__file__).parent / "params"
KERNEL = HERE / "kernel.yaml"


def op(loop, name):
    return next(o for o in loop.ops if o.name == name)


@pytest.mark.parametrize("text, value", [
    ("2 * 3 + 1", 7), ("7 // 2", 3), ("7 / 2", 3.5), ("8 / 2", 4), ("ceil(7 / 2)", 4), ("max(3, 9, 4)", 9),
    ("t['x'] * 2", 10), ("1 if a == 'bf16' else 2", 1), ("not false and a != 'fp8'", True), ("2 ** 10", 1024),
    ("3 < 4 <= 4", True), ("log2(1024)", 10),
])
def test_expressions(text, value):
    assert evaluate(text, {"t": {"x": 5}, "a": "bf16"}) == value


@pytest.mark.parametrize("text, words", [
    ("__import__('os')", "not allowed"), ("x.y", "not allowed"), ("nope + 1", "unknown name 'nope'"),
    ("1 / 0", "division by zero"), ("t['z']", "no entry 'z'"), ("(", "cannot parse"), ("[i for i in t]", "not allowed"),
])
def test_bad_expressions(text, words):
    with pytest.raises(ExprError, match=words):
        evaluate(text, {"t": {"x": 5}})


def test_defaults_and_kind_costs():
    loop = load_spec(KERNEL)
    a = op(loop, "a")  # m=8, n=16, bf16 rate 4: occupancy 32, latency 35, work 256
    assert (a.latency, a.reservations[0].cycles, a.work) == (35, 32, 256)
    b = op(loop, "b")
    assert (b.latency, b.reservations[0].cycles) == (17, 2)
    assert [o.name for o in loop.ops] == ["a", "b"]  # `c` has when: extra (false): dropped, with its edge
    assert len(loop.edges) == 2


def test_settings_change_costs_and_drop_or_keep_ops():
    loop = load_spec(KERNEL, params={"size": 16, "dtype": "fp8", "extra": True})
    a = op(loop, "a")  # m=16, n=32, fp8 rate 8: occupancy 64
    assert (a.latency, a.reservations[0].cycles) == (67, 64)
    assert [o.name for o in loop.ops] == ["a", "b", "c"] and len(loop.edges) == 3


def test_subtile_by_argument_recosts_each_part():
    loop = load_spec(KERNEL, params={"parts": 2})
    parts = [op(loop, "a.0"), op(loop, "a.1")]
    # each part is m=4: occupancy ceil(4*16/4) = 16, latency 16 + fill 3 = 19 (not 35 / 2 rounded up = 18)
    assert all((p.latency, p.reservations[0].cycles, p.work) == (19, 16, 128) for p in parts)
    a_to_b = [e for e in loop.edges if loop.ops[e.dst].name == "b"]
    assert sorted(e.delay for e in a_to_b) == [19, 19]


def test_reservation_kind(tmp_path):
    spec = tmp_path / "k.yaml"
    spec.write_text(f"name: k\nmachine: {HERE / 'machine.yaml'}\nops:\n  - {{name: s, kind: split, args: {{rows: 5}}}}\n")
    s = load_spec(spec).ops[0]
    assert s.latency == 15
    assert [(r.unit, r.offset, r.cycles) for r in s.reservations] == [("tc", 0, 5), ("alu", 5, 10)]


def test_fields_given_by_the_op_win(tmp_path):
    spec = tmp_path / "k.yaml"
    spec.write_text(f"name: k\nmachine: {HERE / 'machine.yaml'}\n"
                    "ops:\n  - {name: a, kind: mma, args: {m: 4, n: 4}, latency: 99, registers: 7}\n")
    a = load_spec(spec).ops[0]
    assert (a.latency, a.registers, a.reservations[0].cycles) == (99, 7, 4)


def located(tmp_path, body: str, **kwargs) -> SpecError:
    spec = tmp_path / "k.yaml"
    spec.write_text(f"name: k\nmachine: {HERE / 'machine.yaml'}\n" + body)
    with pytest.raises(SpecError) as info:
        load_spec(spec, **kwargs)
    return info.value


@pytest.mark.parametrize("body, line, field, words", [
    ("ops:\n  - {name: a, kind: nope}\n", 4, "ops[0].kind", "unknown kind 'nope'"),
    ("ops:\n  - {name: a, kind: mma, args: {m: 4}}\n", 4, "ops[0].args", "needs argument(s): n"),
    ("ops:\n  - {name: a, kind: mma, args: {m: 4, n: 4, q: 1}}\n", 4, "ops[0].args.q", "takes no argument 'q'"),
    ("ops:\n  - {name: a, kind: half, args: {x: 3}}\n", 4, "ops[0].kind", "not a whole number"),
    ("ops:\n  - {name: a, kind: mma, args: {m: 4, n: 4, dtype: fp4}}\n", 4, "ops[0].kind", "no entry 'fp4'"),
    ("ops:\n  - {name: a, latency: 'size + 1'}\n", 4, "ops[0].latency", "unknown name 'size'"),
    ("ops:\n  - {name: a, latency: 1}\n  - {name: b, latency: 1, when: 3}\n", 5, "ops[1].when", "true or false"),
    ("params: {size: {default: 3, choices: [1, 2]}}\nops:\n  - {name: a, latency: 1}\n", 3, "params.size",
     "not one of"),
    ("params: {fill: 1}\nops:\n  - {name: a, latency: 1}\n", 3, "params.fill", "already defined"),
    ("params: {x: 1}\nops:\n  - {name: a, latency: 1, when: 'x > 5'}\n  - {name: b, latency: x}\n"
     "edges:\n  - {src: a, dst: b}\n  - {src: b, dst: q}\n", 9, "edges[1].dst", "unknown op 'q'"),  # index as written, not after `when`
    ("subtile: 2\nops:\n  - {name: a, kind: mma, args: {m: 3, n: 4}, subtile: m}\n", 5, "ops[0].subtile",
     "does not split into 2"),
    ("ops:\n  - {name: a, latency: 1, subtile: m}\n", 4, "ops[0]", "has no `kind`"),
])
def test_bad_parameterized_input(tmp_path, body, line, field, words):
    error = located(tmp_path, body)
    assert (error.line, error.field) == (line, field), str(error)
    assert words in error.message, str(error)


@pytest.mark.parametrize("settings, field, words", [
    ({"nope": 1}, "--set nope", "unknown parameter 'nope'"),
    ({"size": 5}, "--set size", "not one of"),
    ({"size": "big"}, "--set size", "expects an integer"),
    ({"extra": 1}, "--set extra", "expects true/false"),
])
def test_bad_settings(settings, field, words):
    with pytest.raises(SpecError) as info:
        load_spec(KERNEL, params=settings)
    assert info.value.field == field and words in info.value.message, str(info.value)


def test_cli_set(tmp_path):
    from typer.testing import CliRunner

    from twill.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["check", str(KERNEL), "--set", "size=16", "--set", "dtype=fp8"])
    assert ok.exit_code == 0 and "ResMII  64" in ok.output, ok.output
    for bad, words in [("size=5", "--set size: 5 is not one of"), ("size", "--set: expected NAME=VALUE"),
                       ("nope=1", "--set nope: unknown parameter")]:
        result = runner.invoke(app, ["check", str(KERNEL), "--set", bad])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert words in result.output, result.output


def test_parts_all_joins_every_part(tmp_path):
    spec = tmp_path / "k.yaml"
    spec.write_text(f"name: k\nmachine: {HERE / 'machine.yaml'}\nsubtile: 2\n"
                    "ops:\n  - {name: a, latency: 2, subtile: true}\n  - {name: b, latency: 2, subtile: true}\n"
                    "  - {name: c, latency: 2, subtile: true}\n"
                    "edges:\n  - {src: a, dst: b}\n  - {src: a, dst: c, parts: all}\n")
    loop = load_spec(spec)
    pairs = sorted((loop.ops[e.src].name, loop.ops[e.dst].name) for e in loop.edges)
    assert pairs == [("a.0", "b.0"), ("a.0", "c.0"), ("a.0", "c.1"), ("a.1", "b.1"), ("a.1", "c.0"), ("a.1", "c.1")]


@pytest.mark.parametrize("kernel", ["fa-fwd", "fa-bwd", "gemm"])
@pytest.mark.parametrize("machine", ["h100", "b200"])
def test_shipped_kernels_load(kernel, machine):
    """Every shipped kernel spec loads on both machines, and its tensor-core work is what its shape says."""
    loop = load_spec(HERE.parents[1] / "specs" / "kernels" / f"{kernel}.yaml", machine)
    flops_per_cycle = {"h100": 4096, "b200": 8192}[machine]
    tc = sum(r.cycles for op in loop.ops for r in op.reservations if r.unit == "tc")
    assert tc * flops_per_cycle == sum(op.work for op in loop.ops)


def test_release_at_issue_needs_a_common_unit(tmp_path):
    error = located(tmp_path, "ops:\n  - {name: a, kind: mma, args: {m: 4, n: 4}}\n  - {name: b, latency: 1, unit: alu}\n"
                              "edges:\n  - {src: a, dst: b, release: issue}\n")
    assert (error.line, error.field) == (7, "edges[0].release") and "same unit" in error.message


def test_resident_smem_leaves_the_loop_what_the_resident_tiles_do_not_hold(tmp_path):
    """FA forward keeps Q (block_m x head_dim, 16-bit) in shared memory for the whole kernel."""
    kernels = Path(__file__).resolve().parents[1] / "specs" / "kernels"
    h100 = load_spec(kernels / "fa-fwd.yaml", "h100")
    # less the alignment slack (1024) and Q's full mbarrier (8): twill.model.joint.fixed_smem (rule 9)
    assert h100.warps.smem == 232448 - 128 * 128 * 2 - 1024 - 8
    assert load_spec(kernels / "fa-fwd.yaml", "h100", {"head_dim": 64}).warps.smem == 232448 - 128 * 64 * 2 - 1032
    spec = tmp_path / "big.yaml"
    spec.write_text((kernels / "gemm.yaml").read_text() + "resident_smem: 300000\n")
    with pytest.raises(SpecError, match=r"resident_smem: 300000 bytes, more than the machine's 232448"):
        load_spec(spec, "h100")
