"""Running the real sweep command in several processes at once (for the tests
that check nobody processes a row twice)."""

import subprocess
import sys
from pathlib import Path

from tests.servers import ROOT


def sweeps_at_once(tmp_path: Path, env: dict[str, str], *, count: int = 2, batch_size: int = 20,
                   timeout: float = 180) -> list[list[str]]:
    """Start `count` `auto_cancel_overdue` processes together, wait for them, check
    each ended cleanly (exit 0, no traceback, deadlock or serialisation error) and
    return each one's output lines."""
    outputs = [(tmp_path / f"sweep{n}.out", tmp_path / f"sweep{n}.err") for n in range(1, count + 1)]
    processes = []
    for out_path, err_path in outputs:
        with open(out_path, "w") as out, open(err_path, "w") as err:
            processes.append(subprocess.Popen(
                [sys.executable, "manage.py", "auto_cancel_overdue", "--batch-size", str(batch_size)],
                cwd=ROOT, env=env, stdout=out, stderr=err,
            ))
    for process in processes:
        process.wait(timeout=timeout)
    lines = []
    for process, (out_path, err_path) in zip(processes, outputs, strict=True):
        errors = err_path.read_text()
        assert process.returncode == 0, errors
        for bad in ("Traceback", "ERROR", "deadlock", "could not serialize"):
            assert bad not in errors
        lines.append(out_path.read_text().splitlines())
    return lines
