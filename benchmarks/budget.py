"""Every mechanism, the controls and the ANN for the same wall-clock budget (same as `s2tdpt bench budget`).

python benchmarks/budget.py -c configs/cpu_fashion_s2tdpt_cpu.yaml --out-root runs/budget-fashion
"""

import sys

from s2tdpt.bench.budget import main

if __name__ == "__main__":
    sys.exit(main())
