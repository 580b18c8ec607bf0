# Fresh-machine entry points: `make reproduce` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch goes in first: a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
TEX_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-pictures texlive-latex-extra \
	latexmk cm-super dvipng ghostscript
DATA_PACKAGES := dataset-fashion-mnist

.PHONY: setup test reproduce readme timings reproduce-quick losses cnn tex-deps data-deps lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test,dev]"
	touch $@

# Debian packages: TeX for the figures and the paper, Fashion-MNIST for the CPU-sized CNN run.
# Installed only when missing, and only where apt-get exists and we may use it.
tex-deps:
	@command -v latexmk >/dev/null 2>&1 && command -v pdflatex >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES) >/dev/null; } || \
	  echo "warning: no LaTeX (install: $(TEX_PACKAGES)); PDF steps will be skipped"

data-deps:
	@[ -d /usr/share/datasets/fashion-mnist ] || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DATA_PACKAGES) >/dev/null; } || \
	  echo "warning: Fashion-MNIST not installed (apt-get install $(DATA_PACKAGES), or pass --data-dir)"

test: setup tex-deps data-deps
	$(BIN)/python -m pytest -q

# Timed from before the set-up, so the wall time in paper/generated/reproduce.json is the whole command's.
reproduce:
	@start=$$(date +%s); $(MAKE) --no-print-directory setup tex-deps data-deps && \
	  $(BIN)/iwtheory reproduce --started-at $$start

# Every config's quick variant, timed: results/cpu/timings.json, the configs' runtime lines and the README.
timings: setup data-deps
	$(BIN)/iwtheory timings

# After a `make reproduce`: its claims and timings into results/cpu/, and the README's tables from them.
readme: setup
	$(BIN)/iwtheory readme --snapshot

reproduce-quick: setup tex-deps data-deps
	$(BIN)/iwtheory reproduce --quick

# The loss study (issue: which losses keep the weights' effect), then the paper again with its section filled.
losses: setup tex-deps data-deps
	$(BIN)/iwtheory train experiments/study_losses.toml
	$(BIN)/iwtheory reproduce

# The CNN arm: the B&L CNN at CPU width on Fashion-MNIST and CIFAR-10 (an hour or more on 2 cores: not part of
# `make reproduce`); its records go to results/cpu/cnn/, committed, and the paper and README read them from there.
# CIFAR-10 from CIFAR_DIR, built there from ../shared/data when that copy exists; without it the CIFAR arm is skipped.
CIFAR_DIR ?= data/cifar10
cnn: setup data-deps
	@[ -d $(CIFAR_DIR) ] || [ ! -f ../shared/data/make_cifar10.py ] || $(BIN)/python ../shared/data/make_cifar10.py $(CIFAR_DIR)
	$(BIN)/iwtheory cnn --data-dir $(CIFAR_DIR)

lint: setup
	$(BIN)/ruff check iwtheory tests experiments

bench: setup
	$(BIN)/python experiments/benchmarks/theory_speed.py

clean:
	rm -rf $(VENV) runs paper/main.pdf
