"""`make bench`: every benchmark, one after the other, on this machine. Figures go into docs/BENCHMARKS.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = [
    ["bench_invoke.py", "--clients", "1,32", "--invokes", "4000", "--cold", "30"],
    ["bench_environments.py", "--invokes", "2000", "--spawns", "50", "--envs", "1000"],
    ["bench_traces.py", "--segments", "100000", "--runs", "5"],
    ["bench_flash_sale.py", "--phases", "10,10,30,10"],
    ["bench_simulate.py"],
]


def main() -> int:
    failed = 0
    for script, *args in BENCHMARKS:
        print(f"\n== {script} {' '.join(args)}", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / script), *args], check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
