"""Wall time of ``nestviz --help`` (median of 10 runs): it must not import torch.

    python benchmarks/cli_startup.py
"""

import statistics
import subprocess
import sys
import time


def main() -> None:
    times = []
    for _ in range(10):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nestviz", "--help"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    print(f"nestviz --help: median {statistics.median(times):.3f} s, max {max(times):.3f} s (goal <= 0.5 s)")


if __name__ == "__main__":
    main()
