# Two commands: `make lab` opens the workbook, `make test` runs every test.
# Both create and use .venv/ at the repo root.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NB     ?= notebooks/02-svm-exitinfo1.ipynb
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
AS_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. notebooks/00-start-here.ipynb $(AS_ROOT)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env \
	    --nbval-sanitize-with notebooks/sanitize.cfg

# Classroom mode: `make demo NB=notebooks/01-the-io-exit.ipynb` serves one notebook with
# Voila on http://localhost:8866/ (code hidden, widgets live, works offline).
demo: $(STAMP)
	$(VENV)/bin/voila --no-browser $(NB)

# Performance figures (printed, never asserted); bench_paths also writes bench/results/.
bench: $(STAMP)
	for b in bench_decode bench_bus bench_emulator bench_paths; do $(PY) bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis test-artifacts
