"""Print every nightly run's wall time and gate record under an artifacts directory.

    .venv/bin/python bench/gate_report.py ARTIFACTS
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path


def main(artifacts: Path) -> None:
    for path in sorted((artifacts / "runs").glob("*.json")):
        s = json.loads(path.read_text())
        wall = (datetime.fromisoformat(s["finished_at"]) - datetime.fromisoformat(s["started_at"])).total_seconds()
        g = s.get("gate") or {}
        print(f"{path.stem}: {s.get('status')} in {wall:.0f} s; headline {s.get('headline', {}).get('ranker_ndcg@10')}")
        print(f"  gate ({g.get('method')}): {g.get('reason')}")
        if g.get("method") == "paired":
            print(f"  gate cost {g['seconds']} s (serving: {g['serve_seconds']}), {100 * g['seconds'] / wall:.1f} % "
                  "of the night")
            for k, v in g.get("guards", {}).items():
                print(f"  guard {k}: candidate {v['candidate']:.4f} live {v['live']:.4f} "
                      f"CI [{v['ci'][0]:+.4f}, {v['ci'][1]:+.4f}]")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
