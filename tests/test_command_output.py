"""What a person sees when running the commands of the README."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_commands_print_only_what_they_say():
    run = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "System check identified no issues" in run.stdout
    assert run.stdout.strip() == "System check identified no issues (0 silenced)."
    assert run.stderr == ""


def test_make_run_tells_where_to_go_next_on_the_port_given():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    procfile = (REPO / "Procfile").read_text(encoding="utf-8")
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=8001"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert "open http://127.0.0.1:8001/ in a browser" in dry.stdout
    assert "PORT ?= 8000" in makefile and "export PORT" in makefile
    assert "--bind 127.0.0.1:${PORT:-8000}" in procfile
