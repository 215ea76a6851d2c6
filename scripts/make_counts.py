"""Write mvit_cli/models/counts.json: parameters and multiply-adds of every builtin
architecture at its own input, as mvit_cli.flops counts them, keyed by flops.count_key.

Run after changing an architecture, the FLOP counter, torch or the version:
    python scripts/make_counts.py
tests/test_profile.py recomputes every entry and fails on a stale one.
"""

from __future__ import annotations

import json
from pathlib import Path

from mvit_cli.flops import _count_uncached, count_key
from mvit_cli.models.architectures import ARCHITECTURES, BUILTIN


def main() -> None:
    counts = {count_key(ARCHITECTURES[name]): list(_count_uncached(ARCHITECTURES[name], None,
                                                                   None))
              for name in BUILTIN}
    target = Path(__file__).parent.parent / "mvit_cli" / "models" / "counts.json"
    target.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n")
    print(f"{len(counts)} architectures -> {target}")


if __name__ == "__main__":
    main()
