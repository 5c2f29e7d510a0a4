"""What the benchmark scripts share: seed lists, and runs that resume from their JSON file.

Every finished run is appended to the JSON file at once (written atomically), so a benchmark
that is interrupted continues where it stopped when started again with the same arguments.
"""

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

__all__ = ["parse_seeds", "load_runs", "save_json", "run_pending"]


def parse_seeds(text):
    """Return the seeds of ``"42-51"`` or ``"1,3,5-7"`` as a list."""
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def load_runs(path):
    """Return the runs stored in ``path`` so far (none when it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f).get("runs", [])


def save_json(path, obj):
    """Write ``obj`` to ``path`` atomically."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def run_pending(fn, tasks, runs, save, label, *, jobs=1):
    """Run ``fn(*task)`` for every task on ``jobs`` processes, in order.

    Each result is appended to ``runs``, then ``save()`` is called and ``label(result)`` is
    printed on stderr.
    """
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(fn, *task) for task in tasks]
        for fut in futures:
            r = fut.result()
            runs.append(r)
            save()
            print(label(r), file=sys.stderr, flush=True)
    save()
