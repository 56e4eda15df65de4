# The two commands of the README: `make dashboard` and `make test` (plus `make test-fast` while developing).
# Each sets up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The tests read real FER2013 image folders from here (CI points it at its shared copy).
FER_TEST_DATA ?= data
export FER_TEST_DATA

.PHONY: setup dashboard test test-fast

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	@# opencv-python-headless and MediaPipe's opencv-contrib-python share the cv2 folder and the last one
	@# installed wins: keep the build with windows, which `fer webcam` needs (the rest works with either).
	$(BIN)/python -m fer.inference.desktop --build || \
		$(BIN)/python -m pip install --force-reinstall --no-deps 'opencv-contrib-python>=4.10,<5'
	touch $@

dashboard: setup
	$(BIN)/fer dashboard

# Everything, as CI runs it: the fast tier in two test processes, then the slow tier in one (its
# trainings, worker queues, DDP and Ray runs use both cores themselves and keep their timing).
test: setup
	$(BIN)/python -m pytest -m "not slow" -n 2
	$(BIN)/python -m pytest -m slow

# For development: skips the tests marked slow (browser, worker queues, suites, trainings, subprocesses),
# two test processes at once (one thread each): under 3 minutes on a 2-core machine.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow" -n 2
