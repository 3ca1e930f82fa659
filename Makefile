# accelgen developer entry points. `make demo` and `make test` are the two
# commands a newcomer needs; both create .venv and install the pinned
# dependencies from pyproject.toml first.
#
# Needs: python3 >= 3.10 with the venv module (Debian: python3-venv), g++, make, perl.

PYTHON ?= python3
VENV ?= .venv
PIP_VERSION ?= 26.3
# pytest arguments. Two pytest-xdist workers by default (CI has two cores; a fresh clone
# with cold caches took 20 min with them, 30 min without, on a shared machine); e.g.
# PYTEST_ARGS= for one process, PYTEST_ARGS="-n 2 -m 'not slow'" to skip the slow ones.
PYTEST_ARGS ?= -n 2

VPY := $(VENV)/bin/python
# `make setup` is redone only when pyproject.toml changes: the stamp's name
# carries a checksum of it.
SETUP_KEY := $(shell cksum < pyproject.toml | cut -d' ' -f1)
SETUP_STAMP := $(VENV)/.accelgen-setup-$(SETUP_KEY)
# apt is tried at most once per venv, so an offline machine does not pay
# for it on every `make setup`.
APT_STAMP := $(VENV)/.accelgen-apt-iverilog

.PHONY: all setup test demo doctor clean distclean

all: test

setup: $(SETUP_STAMP) $(APT_STAMP)

$(SETUP_STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || \
	  { echo "setup: accelgen needs Python >= 3.10; $(PYTHON) is $$($(PYTHON) -V 2>&1). Try PYTHON=python3.11 make setup" >&2; exit 1; }
	@if [ ! -x $(VPY) ]; then \
	  echo "setup: creating $(VENV) with $$($(PYTHON) -V 2>&1)"; \
	  $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	    echo "setup: '$(PYTHON) -m venv' failed; on Debian install the python3-venv package" >&2; exit 1; }; \
	fi
	$(VPY) -m pip install --progress-bar off --upgrade "pip==$(PIP_VERSION)"
	$(VPY) -m pip install --progress-bar off -e ".[test]"
	@rm -f $(VENV)/.accelgen-setup-*
	@touch $@

# Best effort: Icarus Verilog is the second cocotb simulator. Never fails setup.
$(APT_STAMP): | $(SETUP_STAMP)
	@if command -v iverilog >/dev/null 2>&1; then \
	  echo "setup: iverilog found at $$(command -v iverilog)"; \
	elif [ -n "$${ACCELGEN_NO_APT:-}" ]; then \
	  echo "setup: iverilog not found; ACCELGEN_NO_APT is set, not installing it (Icarus tests will be skipped)"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "setup: iverilog not found; install the Debian package iverilog to run cocotb on Icarus (those tests will be skipped)"; \
	else \
	  echo "setup: iverilog not found; running: apt-get install -y --no-install-recommends iverilog (set ACCELGEN_NO_APT=1 to skip)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get install -y --no-install-recommends iverilog \
	    || { apt-get update && apt-get install -y --no-install-recommends iverilog; }; } \
	  || echo "setup: could not install iverilog; continuing without it (Icarus tests will be skipped)"; \
	fi
	@touch $@

test: setup
	$(VPY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/accelgen demo

doctor: setup
	$(VENV)/bin/accelgen doctor

# Build products and caches in the tree; keeps .venv.
clean:
	rm -rf build dist .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o -type d \
	  \( -name __pycache__ -o -name sim_build -o -name build_cache -o -name '*.egg-info' \) \
	  -print -prune | xargs rm -rf

# Everything generated, including .venv and saved results.
distclean: clean
	rm -rf $(VENV) .hypothesis results
