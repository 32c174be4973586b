# The two commands a newcomer types: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
# Loopback only unless told otherwise (`make run HOST=0.0.0.0`): a deployment puts a reverse
# proxy with TLS in front (docs/administrator.md, "Deployment") instead of exposing Streamlit itself.
HOST   ?= 127.0.0.1

.PHONY: run test lint demo bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Browser tests drive Debian's Chromium (Playwright cannot download its own browser here).
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "Installing Chromium for the browser tests (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

run: $(VENV)/.installed
	$(PY) -m streamlit run app.py --server.address $(HOST) --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

test: $(VENV)/.dev-installed chromium
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

demo: $(VENV)/.installed
	$(PY) -m study demo

bench: $(VENV)/.dev-installed
	$(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_agreement.py
	$(PY) benchmarks/bench_analysis.py
	$(PY) benchmarks/bench_rating.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
