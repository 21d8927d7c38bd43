"""Every shipped kernel variant through `twill emit`: device compile and, with --check, the host twin.

    python benchmarks/emit_compile.py                 # emit + NVRTC compile each variant (median of --repeat)
    python benchmarks/emit_compile.py --check         # also the host twin at every check trip count, under TSAN
    python benchmarks/emit_compile.py --check --only fa-fwd --no-sanitize

The variants are the GEMM and FlashAttention schedules shipped in kernels/ and specs/schedules/ (and
tests/emit/ for the causal forwards, B200's head_dim 64 and 256, and FA4's emulated exp2), each with
the parameters it was written for. Times ``twill.emit.driver.emit_kernel`` (lower, lay out, render,
write, NVRTC with its embedded ptxas, nvdisasm) in this process, without the command line's start-up,
and prints a markdown table with ptxas' numbers and the twin's largest error next to the seconds. A
variant the device target refuses (an op body it lacks, shared memory over the machine's) is listed
with the reason.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from twill.emit.driver import emit_kernel
from twill.emit.kernel import default_target, family_of
from twill.errors import SpecError
from twill.model.hand_schedule import load_hand_schedule
from twill.model.loader import load_instance
from twill.review import review

ROOT = Path(__file__).resolve().parents[1]
FA3, FA4, FA3_BWD = "specs/schedules/fa3-h100.yaml", "specs/schedules/fa4-b200.yaml", "specs/schedules/fa3-bwd-h100.yaml"
VARIANTS = [  # (name, spec, machine, schedule, params)
    ("gemm h100", "gemm", "h100", "kernels/gemm-h100.schedule.yaml", {}),
    ("gemm b200", "gemm", "b200", "kernels/gemm-b200.schedule.yaml", {}),
    ("fa-fwd h100 optimum", "fa-fwd", "h100", "kernels/fa-fwd-h100.schedule.yaml", {}),
    ("fa-fwd h100 FA3", "fa-fwd", "h100", FA3, {}),
    ("fa-fwd h100 FA3 fp16", "fa-fwd", "h100", FA3, {"dtype": "fp16"}),
    ("fa-fwd h100 FA3 hd64", "fa-fwd", "h100", FA3, {"head_dim": 64}),
    ("fa-fwd h100 FA3 hd256 bn64", "fa-fwd", "h100", FA3, {"head_dim": 256, "block_n": 64}),
    ("fa-fwd h100 FA3 causal", "fa-fwd", "h100", "tests/emit/fa3-h100-causal.yaml", {"causal": True}),
    ("fa-fwd b200 optimum", "fa-fwd", "b200", "kernels/fa-fwd-b200.schedule.yaml", {}),
    ("fa-fwd b200 FA4", "fa-fwd", "b200", FA4, {}),
    ("fa-fwd b200 causal", "fa-fwd", "b200", "tests/emit/fa-fwd-b200-causal.schedule.yaml", {"causal": True}),
    ("fa-fwd b200 hd64", "fa-fwd", "b200", "tests/emit/fa-fwd-b200-hd64.schedule.yaml", {"head_dim": 64}),
    ("fa-fwd b200 hd256 tiles1", "fa-fwd", "b200", "tests/emit/fa-fwd-b200-hd256.schedule.yaml",
     {"head_dim": 256, "block_m": 128, "tiles": 1}),
    *((f"fa-fwd {machine} emulated {n}", "fa-fwd", machine, f"tests/emit/fa-fwd-{machine}-emulated{n}.schedule.yaml",
       {"emulated": n}) for machine in ("h100", "b200") for n in (16, 32, 64)),
    ("fa-bwd h100 best found", "fa-bwd", "h100", "kernels/fa-bwd-h100.schedule.yaml", {}),
    ("fa-bwd h100 FA3", "fa-bwd", "h100", FA3_BWD, {}),
    ("fa-bwd b200 optimum", "fa-bwd", "b200", "kernels/fa-bwd-b200.schedule.yaml", {}),
]


def run(name: str, spec: str, machine: str, schedule_file: str, params: dict, args, tmp: str) -> dict:
    instance = load_instance(ROOT / f"specs/kernels/{spec}.yaml", machine, params or None)
    reviewed = review(instance.loop, load_hand_schedule(str(ROOT / schedule_file), instance.loop))
    schedule = reviewed.schedule
    row = {"name": name, "ii": schedule.ii, "target": default_target(instance)}
    if row["target"] in family_of(instance).targets:
        try:
            seconds = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = emit_kernel(instance, schedule, {}, None, f"{tmp}/device", compile_=True)
                seconds.append(time.perf_counter() - start)
            row.update(seconds=statistics.median(seconds), report=result.manifest["compile"],
                       problems=result.problems)
        except SpecError as error:
            row["refused"] = str(error)
    else:
        row["refused"] = f"no {row['target']} op bodies for {spec}"
    if args.check:
        start = time.perf_counter()
        checked = emit_kernel(instance, schedule, {}, "host", f"{tmp}/twin", check=True, sanitize=args.sanitize)
        errors = [r.max_error for r in checked.runs]
        row["check"] = (f"{'passed' if checked.ok else 'FAILED'}, max error {max(errors, default=0):.1e} at "
                        f"{', '.join(str(r.trips) for r in checked.runs)} blocks, {time.perf_counter() - start:.0f} s")
    return row


def cells(row: dict) -> list[str]:
    if "refused" in row:
        return [row["target"], "refused: " + row["refused"].replace("|", "/")] + [""] * 5
    report = row["report"]
    if "error" in report:
        return [row["target"], "NVRTC error"] + [""] * 5
    return [report["arch"], f"{row['seconds']:.2f} s ({report['seconds']:.2f} s)",
            str(report["registers"]), f"{report['spill_stores'] + report['spill_loads']} / {report['stack']}",
            " / ".join(map(str, report["setmaxnreg"])) or "-", str(report["smem_dynamic"]),
            "clean" if not row["problems"] and not report["diagnostics"] else "; ".join(row["problems"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="also run the host twin at every check trip count")
    parser.add_argument("--no-sanitize", dest="sanitize", action="store_false", help="the twin without TSAN")
    parser.add_argument("--only", default="", help="variants whose name contains this")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            if args.only in variant[0]:
                rows.append(run(*variant, args, tmp))
                print(f"{rows[-1]['name']}: done", flush=True)
    print()
    print("| variant | II | arch | emit + compile (NVRTC) | ptxas registers | spill bytes / stack | setmaxnreg "
          "| dynamic smem | diagnostics |" + (" host twin |" if args.check else ""))
    print("|---|---:|---|---|---:|---|---|---:|---|" + ("---|" if args.check else ""))
    for row in rows:
        print(f"| {row['name']} | {row['ii']} | " + " | ".join(cells(row)) + " |"
              + (f" {row['check']} |" if args.check else ""))


if __name__ == "__main__":
    main()
