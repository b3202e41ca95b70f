"""Several daemons on one PostgreSQL: one poller per mailbox at a time, freed when its holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from maildesk.store.locks import lock_key, mailbox_lock
from maildesk.store.session import make_engine

pytestmark = pytest.mark.postgres


def test_only_one_holder_at_a_time(pg_url: str) -> None:
    first, second = make_engine(pg_url), make_engine(pg_url)
    with mailbox_lock(first, "mailbox:support") as held:
        assert held
        with mailbox_lock(second, "mailbox:support") as other:
            assert not other
        with mailbox_lock(second, "mailbox:other") as different:
            assert different
    with mailbox_lock(second, "mailbox:support") as after:
        assert after


def test_lock_of_a_killed_holder_is_free_at_once(pg_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from maildesk.store.locks import mailbox_lock
        from maildesk.store.session import make_engine
        with mailbox_lock(make_engine({pg_url!r}), "mailbox:support") as held:
            print("held" if held else "not held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with mailbox_lock(make_engine(pg_url), "mailbox:support") as held:
            assert not held
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        with mailbox_lock(make_engine(pg_url), "mailbox:support") as held:
            assert held
    finally:
        holder.kill()
        holder.wait(10)


def test_lock_keys_are_stable_and_distinct() -> None:
    assert lock_key("mailbox:support") == lock_key("mailbox:support")
    assert lock_key("mailbox:support") != lock_key("mailbox:sales")
