# Two commands set everything up: `make run` and `make test`.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest install seed clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# An editable install leaves the package's bytecode to be compiled on import, and with
# PYTHONDONTWRITEBYTECODE set every command would compile it again (~75 ms per run).
install: $(STAMP)
	$(BIN)/python -m compileall -q vein_tracker

seed: install
	$(BIN)/vein-tracker seed-demo --if-empty

run: seed
	@echo "vein_tracker: open http://localhost:$(PORT)"
	$(BIN)/python -m streamlit run app.py --server.headless=true --server.address=127.0.0.1 \
		--server.port=$(PORT) --browser.gatherUsageStats=false --client.toolbarMode=minimal

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: install
	$(BIN)/python benchmarks/registration.py
	$(BIN)/python benchmarks/segmentation.py
	$(BIN)/python benchmarks/improvement.py
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/artifacts
