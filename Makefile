# Two entry points, both doing all set-up themselves on a fresh machine:
#   make run   - the daemon on the embedded default (synthetic face), live picture URL printed
#   make test  - lint, type checks and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint system-deps

run: $(STAMP)
	$(BIN)/appliance run $(ARGS)

test: $(STAMP) system-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check appliance engines ota tests
	$(BIN)/ruff format --check appliance engines ota tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/appliance bench $(ARGS)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[test]'
	touch $(STAMP)

# Debian packages the tests run for real (systemd-analyze, QEMU for the VM tests).
system-deps:
	@sh tests/system-deps.sh

# Factory model bundles (engines/bundles/, committed so a fresh clone has them):
# converters live in their own venv, so the daemon never needs tensorflow. Reads the
# clips in ../shared/data for calibration and accuracy gates (engines/README.md).
ENGINES_VENV ?= .venv-engines
ENGINES_STAMP := $(ENGINES_VENV)/.installed

.PHONY: engines
engines: $(ENGINES_STAMP)
	$(ENGINES_VENV)/bin/python -m engines build $(ARGS)
	$(ENGINES_VENV)/bin/python -m engines verify

$(ENGINES_STAMP): engines/requirements.txt
	$(PYTHON) -m venv $(ENGINES_VENV)
	$(ENGINES_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(ENGINES_VENV)/bin/python -m pip install --quiet -r engines/requirements.txt
	touch $@

# The super-resolution network (engines/sr): trained here, resumable (.cache/sr holds
# the checkpoint), then exported, quantized and gated into engines/bundles/sr_x2.
TRAIN_VENV ?= .venv-train
TRAIN_STAMP := $(TRAIN_VENV)/.installed

.PHONY: train-sr sr-bundle sr-eval
train-sr: $(TRAIN_STAMP)
	PYTHONPATH=. $(TRAIN_VENV)/bin/python -m engines.sr.train $(ARGS)

sr-bundle: $(TRAIN_STAMP)
	PYTHONPATH=. $(TRAIN_VENV)/bin/python -m engines.sr.bundle $(ARGS)

sr-eval: $(STAMP)
	$(BIN)/python -m engines.sr.evaluate --model engines/bundles/sr_x2/sr_x2.fp32.onnx $(ARGS)

$(TRAIN_STAMP): engines/sr/requirements.txt
	$(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install --quiet -r engines/sr/requirements.txt
	touch $@
