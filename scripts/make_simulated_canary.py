"""Write the SIMULATED canary dataset shipped in data/canary/simulated-canary/.

    python scripts/make_simulated_canary.py [OUT_DIR]

Two arms (control rag-v3, candidate rag-v4-lean) of simulated production traffic with a
planted drop in good answers; tests/test_experiment.py checks that this script reproduces
the shipped files byte for byte.
"""

from __future__ import annotations

import sys

from labkit.experiment.canary import write_simulated_canary

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "data/canary/simulated-canary"
    print(write_simulated_canary(out))
