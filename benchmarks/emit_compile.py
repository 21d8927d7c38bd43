"""How long `twill emit --compile` and the host check take on the shipped GEMM schedules.

    python benchmarks/emit_compile.py            # each kernel 5 times: emit + NVRTC compile, median
    python benchmarks/emit_compile.py --check    # also the host twin's build and run (ThreadSanitizer)

Times ``twill.emit.driver.emit_kernel`` (lower, lay out, render, write the directory, NVRTC with its
embedded ptxas, nvdisasm) in this process, without the command line's start-up, and prints a
markdown table with ptxas' numbers next to the seconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from twill.emit.driver import emit_kernel
from twill.model.hand_schedule import load_hand_schedule
from twill.model.loader import load_instance
from twill.review import review

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="also time the host twin's check")
    args = parser.parse_args()
    rows = []
    for machine in ("h100", "b200"):
        instance = load_instance(ROOT / "specs/kernels/gemm.yaml", machine)
        schedule_file = ROOT / f"kernels/gemm-{machine}.schedule.yaml"
        schedule = review(instance.loop, load_hand_schedule(str(schedule_file), instance.loop)).schedule
        with tempfile.TemporaryDirectory() as tmp:
            seconds = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = emit_kernel(instance, schedule, {}, None, f"{tmp}/out", compile_=True)
                seconds.append(time.perf_counter() - start)
            report = result.manifest["compile"]
            check = ""
            if args.check:
                start = time.perf_counter()
                checked = emit_kernel(instance, schedule, {}, "host", f"{tmp}/twin", check=True)
                check = f"{time.perf_counter() - start:.1f} s, {'passed' if checked.ok else 'FAILED'}"
        rows.append((f"gemm_{machine}", report["arch"], statistics.median(seconds), report["seconds"],
                     report["registers"], report["spill_stores"] + report["spill_loads"], report["stack"], check))
        print(f"{rows[-1][0]}: emit + compile {rows[-1][2]:.2f} s (NVRTC {rows[-1][3]:.2f} s)", flush=True)
    print()
    print("| kernel | arch | emit + compile (median) | of which NVRTC | registers | spill bytes | stack |"
          + (" host check |" if args.check else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if args.check else ""))
    for name, arch, total, nvrtc, registers, spills, stack, check in rows:
        print(f"| {name} | {arch} | {total:.2f} s | {nvrtc:.2f} s | {registers} | {spills} | {stack} |"
              + (f" {check} |" if args.check else ""))


if __name__ == "__main__":
    main()
