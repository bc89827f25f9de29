# The README's two commands: `make demo` (main job) and `make test` (whole suite).
VENV ?= .venv
BIN := $(VENV)/bin
export EGL_PLATFORM ?= surfaceless
export PC3D_SAMPLES ?= $(abspath ../shared/data)

.PHONY: setup demo test lint

setup:
	bash tools/setup_env.sh $(VENV)

demo: setup
	$(BIN)/pc3d demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q
