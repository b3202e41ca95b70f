"""Fixtures of the hostile-input tests: the integration suite's servers and its per-test deadline.

Everything is imported from ``tests/integration/conftest.py`` (Dovecot, the SMTP sink, the TCP proxy, the
test CA, PostgreSQL and the SIGALRM deadline ``MAILDESK_TEST_TIMEOUT``); nothing is defined twice.
"""

from __future__ import annotations

from tests.integration.conftest import *  # noqa: F403 - the integration fixtures, deadline included
