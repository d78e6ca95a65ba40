"""`lethe demo` runs the whole product on the embedded default, from a clean directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.test_embedded import _free_port
from tests.test_shutdown import processes_in


def test_demo_forgets_people_and_prints_the_certificate(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")}
    result = subprocess.run(
        [
            *(sys.executable, "-c", "from app.cli import main; main()", "demo"),
            *("--port", str(_free_port()), "--records", "800", "--people", "2", "--exit"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "4. What happened" in out
    assert out.count("-> completed") == 2
    assert re.search(r"sisa: v1 -> v[23] \(sisa_unlearn\)", out)
    assert "audit chain: ok=True" in out
    assert '"records_erased"' in out
    assert "customer-" not in out.split("4. What happened")[1]
    # Nothing it started is left behind: no server, worker or beat; no folder outside var/.
    assert processes_in(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["var"]
