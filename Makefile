# maildesk — the commands a newcomer needs.  Everything installs what it needs first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-deps test test-unit test-reliability test-soak lint demo bench bench-quick clean

# Dovecot for the local mail stack; Chromium and CJK fonts to render and check the HTML reports.
APT_PACKAGES := dovecot-imapd chromium fonts-noto-cjk
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing with apt:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	@touch $@

install: system-deps $(VENV)/.installed

lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check maildesk devstack tests

# Unit, integration, and the short scale of every fault test (tests/reliability).
test: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

test-unit: install
	$(VENV)/bin/pytest -q tests/unit

# The fault tests at full size (RELIABILITY.md): many more kills, crash hits and mails.
test-reliability: install
	MAILDESK_RELIABILITY_FULL=1 $(VENV)/bin/pytest -q -p no:cacheprovider tests/reliability

# The chaos soak (F16): 2 mails/s with a random fault every 2-5 min; `make test-soak MAILDESK_SOAK_MINUTES=480`
# for the nightly.  Skipped by the other targets.
MAILDESK_SOAK_MINUTES ?= 60
test-soak: install
	MAILDESK_SOAK=1 MAILDESK_SOAK_MINUTES=$(MAILDESK_SOAK_MINUTES) $(VENV)/bin/pytest -q -s -p no:cacheprovider \
	  -m soak tests/reliability/test_f16_soak.py

demo: install
	$(PY) -m devstack.demo

bench: install
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

clean:
	rm -rf var .demo .pytest_cache
