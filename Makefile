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

# The numerics on every CPU class users have (tests/cpus): `make test` runs the host and
# an emulated AVX2-only x86-64; this adds emulated aarch64 (an aarch64 Python and the
# lock's aarch64 wheels, fetched once into .cache/cpus; needs root for a mount namespace).
.PHONY: test-cpus
test-cpus: $(STAMP) system-deps
	$(BIN)/pytest tests/cpus -m '' $(PYTEST_ARGS)

# Every parser of outside input, fuzzed with FUZZ_EXAMPLES cases per target (100,000 by
# default; more: `make fuzz FUZZ_EXAMPLES=1000000`). What it finds is kept in
# .cache/hypothesis and tried first next time; keep a crash in tests/corpus/ (tests/fuzz.py).
.PHONY: fuzz
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -m fuzz \
		--hypothesis-show-statistics $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check appliance engines ota tests tools
	$(BIN)/ruff format --check appliance engines ota tests tools
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/appliance bench $(ARGS)

# Everything in .venv comes from pylock.toml (exact versions, sha256 of every file, wheels
# only): uv is bootstrapped from it with pip's --require-hashes, then installs the rest.
$(STAMP): pyproject.toml pylock.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PYTHON) tools/uv_requirement.py pylock.toml > $(VENV)/uv-requirement.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --only-binary :all: \
		--require-hashes -r $(VENV)/uv-requirement.txt
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --no-build --require-hashes pylock.toml
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation --editable .
	touch $(STAMP)

# Refresh the lock after changing a dependency in pyproject.toml (and to take newer
# releases: ARGS=--upgrade). One resolution for every platform the product runs on
# (x86-64 and aarch64 Linux, Python 3.11+); tests/test_lock.py checks it covers both.
.PHONY: lock
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra test --extra eval --group tools --universal --quiet \
		--python-version 3.11 --only-binary :all: --format pylock.toml -o pylock.toml $(ARGS)

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

# The INT8 accuracy gates recomputed on each CPU class, on the build's own evaluation
# inputs (cut once with the converter venv from ../shared/data): figures, not a test.
.PHONY: cpu-gates
cpu-gates: $(STAMP) $(ENGINES_STAMP)
	$(ENGINES_VENV)/bin/python -m engines.cpu_gates inputs .cache/cpus/gate-inputs.npz
	for cpu in host haswell aarch64; do echo "== $$cpu"; \
		$(BIN)/python -m tests.cpus.emulation $$cpu -m engines.cpu_gates measure \
		.cache/cpus/gate-inputs.npz || exit 1; done

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
