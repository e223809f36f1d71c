# creditsim — set-up, demo and tests. A fresh machine has no venv: every target builds what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# the docs extra (pdoc) on top: `make docs` builds with it, and the test suite builds the reference once
DOCS_STAMP := $(VENV)/.installed-docs
# pytest workers: the suite is sized for a 2-core machine
WORKERS ?= 2

.PHONY: install demo test test-fast bench bench-all pretrained docs clean chromium

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first and pinned: a wider range would pull a multi-GB CUDA build.
# the C++ kernels too: the editable install builds them in place, and only a reinstall rebuilds them
KERNELS := setup.py creditsim/_kernel_math.h creditsim/loans/_diffusion_chain.cpp creditsim/nn/_attention_step.cpp \
           creditsim/nn/_mlp_step.cpp
$(STAMP): pyproject.toml $(KERNELS) | $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev,distributed]"
	touch $(STAMP)

install: $(STAMP)

# pdoc, not mkdocs + mkdocstrings or Sphinx: it imports the package, so the lazily exported names
# (creditsim.lazy) are documented exactly as `import creditsim` resolves them; it reads the docstrings'
# Google sections and Sphinx roles; one small pure-Python package, no theme, no network; ~10 s.
# (scripts/build_docs.py says more.) Not in the dev extra: the demo does not need it.
$(DOCS_STAMP): $(STAMP)
	$(PIP) install -q -e ".[docs]"
	touch $(DOCS_STAMP)

# Headless Chromium for the HTML-report rendering test; best effort (needs root + apt), the test skips without it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1)) \
	  || echo "chromium not installed: the HTML render test will skip"; }

demo: $(STAMP)
	$(PY) -m creditsim.demo

# API reference + getting-started page (docs/getting-started.md) as HTML in site/ (git-ignored)
docs: $(DOCS_STAMP)
	$(PY) scripts/build_docs.py --out site

# the whole suite (what CI runs); test-fast skips the @pytest.mark.slow training runs. Both install the
# docs extra so that tests/test_docs.py builds the reference instead of skipping.
test: $(STAMP) $(DOCS_STAMP) chromium
	$(PY) -m pytest -q -n $(WORKERS)

test-fast: $(STAMP) $(DOCS_STAMP)
	$(PY) -m pytest -q -n $(WORKERS) -m "not slow"

# the throughput table of issue 17 (each figure against a floor measured in the same run; ~2 minutes),
# written to out/bench/throughput.{md,csv}; bench-all runs every benchmark script with its defaults (hours)
bench: $(STAMP)
	$(PY) bench/bench_table.py --out out/bench

bench-all: $(STAMP)
	for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f; done

# Regenerates every shipped checkpoint (safetensors + JSON) under creditsim/pretrained/.
pretrained: $(STAMP)
	$(PY) -m creditsim.macro.pretrained --quiet
	$(PY) -m creditsim.transitions.calibrate
	$(PY) -m creditsim.transitions.train --quiet
	$(PY) -m creditsim.loans.train --quiet
	# the rating models fitted on the restricted S&P tables (../shared/data/ratings, tests/data/sp_ratings)
	$(PY) -m creditsim.ratings.lifetime
	$(PY) -m creditsim.ratings.term_structure

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .hypothesis
