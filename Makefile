# The two set-up commands of the README: `make demo` (the main job) and `make test` (the suite).
# Both create ./.venv on first use. torch is pinned; on a machine without an NVIDIA GPU the CPU build is asked of
# PyTorch's CPU wheel index first (10 s time-box), falling back to the configured index when that is unreachable.
# OpenCV: any importable cv2 is kept (VENV_FLAGS=--system-site-packages sees the system's, e.g. JetPack's
# GStreamer-enabled build); the pip wheel (edgeface[opencv]) is installed only where none is importable
# (`make opencv` is that step alone; tests/test_install.py runs it on a simulated Jetson venv).
# GStreamer (element, appsink source, RTSP tests) comes from the system's packages: `make test` installs them with
# apt where it runs as root (CI) and links the system's PyGObject into the venv (tools/gstreamer-setup.sh).
VENV ?= .venv
VENV_FLAGS ?=
PY := $(VENV)/bin/python
VENV_PIP ?= $(PY) -m pip
TORCH_PIN ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV_FLAGS) $(VENV)
	$(VENV_PIP) install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 || [ -e /etc/nv_tegra_release ]; then \
		$(VENV_PIP) install -q $(TORCH_PIN); \
	else \
		$(VENV_PIP) install -q --timeout 10 --retries 0 --index-url $(TORCH_CPU_INDEX) $(TORCH_PIN) 2>/dev/null \
		|| $(VENV_PIP) install -q $(TORCH_PIN); \
	fi
	$(VENV_PIP) install -q -e '.[all]'
	$(MAKE) --no-print-directory opencv
	touch $@

.PHONY: opencv
opencv:  # keep any importable cv2; the opencv-python-headless wheel only where there is none
	@if $(PY) -c 'import cv2' 2>/dev/null; then \
		echo "OpenCV: keeping $$($(PY) -c 'import cv2; print(cv2.__version__, "from", cv2.__file__)')"; \
	else \
		echo "OpenCV: no importable cv2, installing edgeface[opencv]"; \
		$(VENV_PIP) install -q -e '.[opencv]'; \
	fi

.PHONY: demo test lint gstreamer
demo: $(VENV)/.installed  # on the shipped weights; each run replaces ./edgeface-out
	rm -rf edgeface-out
	$(VENV)/bin/edgeface pipeline --out edgeface-out

gstreamer: $(VENV)/.installed
	@sh tools/gstreamer-setup.sh $(PY)

test: $(VENV)/.installed gstreamer
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(PY) -m ruff check .
