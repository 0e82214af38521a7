"""Run the anytcpip benchmarks (the same as ``anytcpip bench``).

    python benchmarks/run.py --quick
    python benchmarks/run.py --rounds 7 --json results.json

See benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anytcpip_bench import main

if __name__ == "__main__":
    sys.exit(main())
