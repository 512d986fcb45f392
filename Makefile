# The two set-up commands of the README: `make demo` (the main job) and `make test` (the suite).
# Both create ./.venv on first use. torch is pinned; on a machine without an NVIDIA GPU the CPU build is asked of
# PyTorch's CPU wheel index first (10 s time-box), falling back to the configured index when that is unreachable.
# OpenCV: any importable cv2 is kept (VENV_FLAGS=--system-site-packages sees the system's); the pip wheel
# (edgeface[opencv]) is installed only where none is importable.
VENV ?= .venv
VENV_FLAGS ?=
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 || [ -e /etc/nv_tegra_release ]; then \
		$(PY) -m pip install -q $(TORCH_PIN); \
	else \
		$(PY) -m pip install -q --timeout 10 --retries 0 --index-url $(TORCH_CPU_INDEX) $(TORCH_PIN) 2>/dev/null \
		|| $(PY) -m pip install -q $(TORCH_PIN); \
	fi
	$(PY) -m pip install -q -e '.[all]'
	$(PY) -c 'import cv2' 2>/dev/null || $(PY) -m pip install -q -e '.[opencv]'
	touch $@

.PHONY: demo test lint
demo: $(VENV)/.installed  # on the shipped weights; each run replaces ./edgeface-out
	rm -rf edgeface-out
	$(VENV)/bin/edgeface pipeline --out edgeface-out

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(PY) -m ruff check .
