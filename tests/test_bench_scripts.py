"""The bench scripts stay runnable: each imports (its helpers included) and answers --help.

They run against a dedicated database for minutes (`make bench`), so the suite does not run
them; this catches what usually breaks them, a renamed helper or a moved import.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(
    p.name for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.name != "locustfile.py"
)


def test_every_script_is_listed_by_run_all():
    from importlib.util import module_from_spec, spec_from_file_location

    sys.path.insert(0, str(BENCH))
    try:
        spec = spec_from_file_location("run_all", BENCH / "run_all.py")
        run_all = module_from_spec(spec)
        spec.loader.exec_module(run_all)
    finally:
        sys.path.remove(str(BENCH))
    assert sorted(f"{name}.py" for name in run_all.SCRIPTS) == [
        s for s in SCRIPTS if s != "run_all.py"
    ]


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_script_imports_and_explains_itself(script):
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")
