# PaperTrade: `make run` starts everything on embedded defaults; `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.lock | cut -d' ' -f1)

.PHONY: run install setup test lint format check ci clean screenshots

$(STAMP): requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "PaperTrade needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Migrate, collect static files and load the bundled demo prices (idempotent: a rerun changes nothing).
setup: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py load_demo_prices

# The web server's port (`PORT=8001 make run`); honcho hands it to the Procfile's web process.
PORT ?= 8000
export PORT

# Web (gunicorn), Celery worker and beat together; Ctrl-C stops all three.
run: setup
	@echo
	@echo "  PaperTrade is starting. Next: open http://127.0.0.1:$(PORT)/ in a browser and sign up"
	@echo "  (any name and password), or make an admin with: $(PY) manage.py createsuperuser"
	@echo "  Stop everything with Ctrl-C."
	@echo
	$(VENV)/bin/honcho start -f Procfile

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: install
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

ci:
	bash .ci/run

# The README's pictures (docs/images/), taken by a browser test from the offline demo.
screenshots: install
	scripts/screenshots

clean:
	rm -rf $(VENV) var staticfiles

# Benchmarks of PRODUCT §7 (bench/README.md): PostgreSQL database pt_bench and Redis db 10 on
# 127.0.0.1 (BENCH_DATABASE_URL, BENCH_REDIS_URL override), a few minutes; writes
# bench/results/summary.md. `make bench BENCH_ARGS=--full` runs more rounds.
.PHONY: bench
BENCH_VENV := var/bench-venv
$(BENCH_VENV)/.installed: bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -r bench/requirements.txt
	touch $@

bench: install $(BENCH_VENV)/.installed
	$(PY) bench/run_all.py $(BENCH_ARGS)
