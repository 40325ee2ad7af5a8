# The commands of README.md.  Everything a target needs is installed by the target.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests and benchmarks drive: command name -> package.
SYSTEM_TOOLS := sipp:sip-tester prosody:prosody
ARGS ?=
PYTEST_ARGS ?=

.PHONY: serve test bench soak profile lint system-deps bench-deps clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "sipresence needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e .
	@touch $@

# atheris (the fuzz extra) has wheels for Linux and macOS only: without it the short
# fuzzing pass of make test is skipped, and make fuzz says so.
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test,lint,media]'
	$(BIN)/pip install -q -e '.[fuzz]' || echo "atheris did not install: no coverage-guided fuzzing"
	@touch $@

# apt-get runs only when a tool is missing, after an update of the package lists.
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

serve: $(VENV)/.installed
	$(BIN)/sipresence serve $(ARGS)

test: system-deps $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The race in bench/kamailio.py needs Kamailio's presence server (not the tests).
KAMAILIO_PACKAGES := kamailio kamailio-presence-modules kamailio-sqlite-modules

bench-deps:
	@dpkg -s $(KAMAILIO_PACKAGES) >/dev/null 2>&1 || { \
	  echo "installing Debian packages: $(KAMAILIO_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq $(KAMAILIO_PACKAGES); }

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(BIN)/pip install -q -e '.[bench]'
	@touch $@

bench: system-deps bench-deps $(VENV)/.installed-bench
	$(BIN)/python -m bench

# A flame graph of the agent under SIPp load (py-spy) into bench/profiles/:
# make profile ARGS="subscribe.xml 3000"; publish.xml at 5,000/s by default.
profile: system-deps $(VENV)/.installed-bench
	$(BIN)/python -m bench profile $(ARGS)

# Ten minutes of mixed traffic with a restart halfway: leaks and lost state (bench/soak.py).
soak: $(VENV)/.installed-test
	$(BIN)/python -m bench soak $(ARGS)

# Coverage-guided fuzzing: every target of fuzz/targets.py for FUZZ_RUNS cases, one line
# (cases/s) per target; failing inputs in var/fuzz/crashes (python -m fuzz replay ...).
FUZZ_RUNS ?= 1000000
.PHONY: fuzz
fuzz: $(VENV)/.installed-test
	$(BIN)/python -m fuzz all -runs=$(FUZZ_RUNS) $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check sipresence tests bench fuzz
	$(BIN)/mypy sipresence

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
