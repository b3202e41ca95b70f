"""Run a server binary in the foreground in its own session and stop it without leaving processes behind.

Used for Dovecot (``dovecot -F``) and usable for any daemon a test starts: :func:`spawn` puts the child in
a new session (so its process group can be killed as a whole), :func:`stop_group` sends SIGTERM, waits,
SIGKILLs the group and waits until no live process of the group is left.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path

log = logging.getLogger(__name__)


def spawn(cmd: list[str], output: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session with stdout and stderr appended to ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("ab") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0, *, graceful: bool = True) -> None:
    """Stop ``proc`` and every process of its group; returns when none is alive (or warns at timeout)."""
    if graceful and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %s ignored SIGTERM for %s s; killing its process group", proc.pid, timeout)
    # Children that outlive the leader (or a leader that ignored SIGTERM) share its process group.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("pid %s did not exit %s s after SIGKILL", proc.pid, timeout)
    wait_group_gone(proc.pid, timeout)


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of group ``pgid``, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # zombies are init's to reap
            members.append(int(stat.parent.name))
    return members


def wait_group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no live process of group ``pgid`` is left; False (with a warning) at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return True
        time.sleep(0.05)
    log.warning("processes %s of group %s still exist after %s s", group_members(pgid), pgid, timeout)
    return False
