"""Training-step and inference benchmark of s2tdpt_4_384 (same as `s2tdpt bench train-step`).

python benchmarks/train_step.py [--malloc both] [--steps 5]
"""

import sys

from s2tdpt.bench.train_step import main

if __name__ == "__main__":
    sys.exit(main())
