"""``python -m proofs [--out DIR] [--json] [--only T1,T3]``."""

from __future__ import annotations

import sys

from proofs.runner import main

if __name__ == "__main__":
    sys.exit(main())
