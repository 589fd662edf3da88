# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= config/default.toml
ARGS ?=

.PHONY: setup run demo test lint bench bench-detector default-model clean

setup: $(VENV)/.installed

# One pip command for everything so pip picks a botocore that both moto and aiobotocore accept.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

run: setup
	$(VENV)/bin/hydromon run --config $(CONFIG) $(ARGS)

# Offline: a real-audio node played into a local mirror under var/demo, followed live.
demo: setup
	$(VENV)/bin/hydromon demo --config $(CONFIG) $(ARGS)

test: setup
	./scripts/ensure-services.sh
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) bench/decode.py
	$(PY) bench/models.py

# Bench the detector's generalisation (leave one call type out, held-out background).
bench-detector: setup
	HF_HUB_OFFLINE=1 $(PY) bench/detector.py $(ARGS)

# The embedded default detector (models/default), from the repo's own open audio; fixed seeds.
default-model: setup
	HF_HUB_OFFLINE=1 $(PY) -m training.default_model --config config/training.toml \
		--out runs/default-model --install models/default $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
