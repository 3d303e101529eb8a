# Two commands: `make lab` opens the workbook, `make test` runs every test.
# Both create and use .venv/ at the repo root.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NB     ?= notebooks/02-svm-exitinfo1.ipynb

.PHONY: lab test demo bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The same launcher a pip install gives (`hvmio-lab lab DIR`), serving the clone in place: it
# opens and prints the URL of chapter 00, with the workbook's Jupyter settings (data/jupyter/).
lab: $(STAMP)
	$(VENV)/bin/hvmio-lab lab .

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env \
	    --nbval-sanitize-with notebooks/sanitize.cfg

# Classroom mode: `make demo NB=notebooks/01-the-io-exit.ipynb` serves one notebook with
# Voila on http://localhost:8866/ (code hidden, widgets live, works offline).
demo: $(STAMP)
	$(VENV)/bin/voila --no-browser $(NB)

# Performance figures (printed, never asserted): every bench/bench_*.py; bench_paths also
# writes data/bench/paths.json, the snapshot chapter 06 reads.
bench: $(STAMP)
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis test-artifacts
