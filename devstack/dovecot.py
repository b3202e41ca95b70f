"""A throwaway Dovecot IMAP server started from its own config inside a state folder.

The instance never reads ``/etc/dovecot`` (it is started with ``-c STATE/dovecot.conf``), listens on
127.0.0.1 only, keeps its sockets, logs, users and Maildirs under the state folder and is stopped (master
and children) by :meth:`Dovecot.stop`, by the context manager or, as a safety net, at interpreter exit.

As root the mail processes run as ``nobody``/``nogroup`` and the helpers as the package's ``dovecot`` and
``dovenull`` users; as an ordinary user every process runs as that user.  See NOTES-dovecot.md.
"""

from __future__ import annotations

import atexit
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from devstack import imapops, process
from devstack.dovecotconf import render_config
from devstack.net import LOOPBACK, free_port, wait_for_greeting
from devstack.tlsca import TestCA

log = logging.getLogger(__name__)

DOVECOT_BINARY_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")
_RUNNING: weakref.WeakSet[Dovecot] = weakref.WeakSet()
_COUNTER = iter(range(1, 1_000_000))
_COUNTER_LOCK = threading.Lock()

def find_dovecot_binary() -> str | None:
    """Return the path of the dovecot binary, or None when Dovecot is not installed."""
    found = shutil.which("dovecot")
    if found:
        return found
    return next((p for p in DOVECOT_BINARY_CANDIDATES if os.access(p, os.X_OK)), None)


class DovecotError(RuntimeError):
    """Dovecot could not be configured, started or stopped; the message includes the log tail."""


class Dovecot:
    """One throwaway Dovecot instance.  Use as a context manager or call :meth:`start`/:meth:`stop`.

    ``state_dir`` is created when missing (a private temp folder when None, removed again by ``stop``
    unless ``keep_state``).  As root every parent of it must stay traversable by ``nobody``: do not put
    it under pytest's ``tmp_path`` — pytest resets ``/tmp/pytest-of-USER`` to 0700 whenever another
    session starts, which breaks a running instance.
    ``users`` maps names to plain passwords; more can be added with :meth:`add_user` at any time.
    ``tls=True`` enables STARTTLS on the IMAP port and implicit TLS on :attr:`imaps_port` with a
    certificate for ``localhost``/``127.0.0.1`` issued by :attr:`ca` (a generated :class:`TestCA`).
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        users: dict[str, str] | None = None,
        tls: bool = False,
        ca: TestCA | None = None,
        imap_port: int | None = None,
        debug: bool = False,
        start_timeout: float = 15.0,
        binary: str | None = None,
        keep_state: bool = False,
    ) -> None:
        if start_timeout <= 0:
            raise ValueError("The Dovecot start timeout must be positive")
        self._own_state_dir = state_dir is None and not keep_state
        self._state_dir = Path(state_dir).resolve() if state_dir is not None else None
        self.host = LOOPBACK
        self._wanted_port = imap_port
        self.imap_port = 0
        self.imaps_port: int | None = None
        self.tls = tls or ca is not None
        self.ca = ca
        self.debug = debug
        self.start_timeout = start_timeout
        self.binary = binary or find_dovecot_binary()
        with _COUNTER_LOCK:
            self.instance_name = f"devstack-{os.getpid()}-{next(_COUNTER)}"
        self._users: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        for name, password in (users or {}).items():
            self.add_user(name, password)

    # ----------------------------------------------------------------- paths
    @property
    def state_dir(self) -> Path:
        """The state folder; a private temp folder is made on first use when none was given."""
        if self._state_dir is None:
            self._state_dir = Path(tempfile.mkdtemp(prefix="devstack-dovecot-")).resolve()
        return self._state_dir

    @property
    def config_path(self) -> Path:
        return self.state_dir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "log" / "dovecot.log"

    @property
    def users_dir(self) -> Path:
        """One passwd-file per user (``etc/users/NAME``), so a new user is visible at once."""
        return self.state_dir / "etc" / "users"

    @property
    def mail_root(self) -> Path:
        return self.state_dir / "mail"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def password(self, user: str) -> str:
        """The password registered for ``user`` (KeyError when unknown)."""
        return self._users[user]

    # ----------------------------------------------------------------- users
    def add_user(self, name: str, password: str) -> None:
        """Add or update a passwd-file user; works before start and while running (no reload needed).

        Dovecot re-reads a changed passwd-file at most once a second, so changing the password of an
        existing user of a running instance waits that second.
        """
        if not name or name.startswith(".") or any(c in name for c in ":/%\\ \r\n\0"):
            raise ValueError(f"The user name {name!r} must be non-empty without ':', '/', '%', '\\' or blanks")
        if not password or any(c in password for c in ":\r\n\0"):
            raise ValueError("The password must be non-empty without ':' or line breaks")
        changed = name in self._users and self._users[name] != password
        self._users[name] = password
        if self._state_dir is not None and self.users_dir.exists():
            self._write_user(name)
            if changed and self.running:
                time.sleep(1.1)

    def _write_user(self, name: str) -> None:
        path = self.users_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(f"{name}:{{PLAIN}}{self._users[name]}::::::\n")
        tmp.chmod(0o644)
        os.replace(tmp, path)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> Dovecot:
        """Write the config, start the master in the foreground and wait for the IMAP greeting."""
        if self.running:
            return self
        if not self.binary:
            raise DovecotError("The dovecot binary is not installed (apt-get install dovecot-imapd)")
        self._prepare_state_dir()
        attempts = 1 if self._wanted_port else 3
        for attempt in range(1, attempts + 1):
            self.imap_port = self._wanted_port or free_port()
            self.imaps_port = free_port() if self.tls else None
            self._write_config()
            try:
                self._spawn()
                return self
            except DovecotError:
                self._kill()
                if attempt == attempts or "Address already in use" not in self.log_tail():
                    raise
                log.warning("port %s was taken in the meantime; retrying with another", self.imap_port)
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        cmd = [str(self.binary), "-F", "-c", str(self.config_path)]
        self._proc = process.spawn(cmd, self.state_dir / "log" / "master.out")
        _RUNNING.add(self)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                raise DovecotError(f"dovecot exited with {self._proc.returncode}:\n{self.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DovecotError(f"dovecot sent no IMAP greeting within {self.start_timeout} s:\n"
                                   f"{self.log_tail()}")
            try:
                wait_for_greeting(self.host, self.imap_port, b"* OK", timeout=min(0.5, remaining))
                break
            except TimeoutError:
                continue
        log.info("dovecot %s listening on %s:%s (state %s)", self.instance_name, self.host,
                 self.imap_port, self.state_dir)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the master (SIGTERM, then SIGKILL of its process group) and wait for it to exit."""
        self._kill(timeout)
        _RUNNING.discard(self)
        if self._own_state_dir and self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server, stay down ``down_seconds``, start again on the same port with the same mail."""
        port = self.imap_port
        self._kill()
        time.sleep(down_seconds)
        wanted, self._wanted_port = self._wanted_port, port
        try:
            self.start()
        finally:
            self._wanted_port = wanted

    def _kill(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            process.stop_group(proc, timeout)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the Dovecot log and of the master's own output, for error messages."""
        parts = []
        for path in (self.log_path, self.state_dir / "log" / "master.out"):
            if path.exists():
                parts.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(parts)

    # ----------------------------------------------------------------- config
    def _prepare_state_dir(self) -> None:
        root = os.geteuid() == 0
        for sub in ("run", "lib", "log", "etc/users", "mail", "tls"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)
        if root:
            _make_parents_traversable(self.state_dir)
            nobody = pwd.getpwnam("nobody")
            os.chown(self.mail_root, nobody.pw_uid, nobody.pw_gid)
        for name in self._users:
            self._write_user(name)
        if self.tls and self.ca is None:
            self.ca = TestCA(self.state_dir / "tls")
        if self.ca is not None:
            self.ca.issue_server("localhost", self.state_dir / "tls")

    def _write_config(self) -> None:
        self.config_path.write_text(render_config(
            instance_name=self.instance_name, state_dir=self.state_dir, host=self.host,
            imap_port=self.imap_port, imaps_port=self.imaps_port, tls=self.tls, debug=self.debug,
        ))

    # ----------------------------------------------------------------- IMAP helpers
    @contextmanager
    def client(self, user: str, password: str | None = None, timeout: float = 30.0) -> Iterator[imapops.Client]:
        """A logged-in stdlib ``imaplib.IMAP4`` (wrapped) for anything the helpers below do not cover."""
        with imapops.Client.login(self.host, self.imap_port, user, password or self._users[user],
                                  timeout=timeout) as client:
            yield client

    def append(self, user: str, password: str | None, folder: str, raw_bytes: bytes,
               flags: Iterable[str] = ()) -> int | None:
        """APPEND one mail; returns its UID (from APPENDUID) or None."""
        with self.client(user, password) as c:
            return c.append(folder, raw_bytes, flags)

    def append_many(self, user: str, password: str | None, folder: str, raws: Iterable[bytes],
                    flags: Iterable[str] = (), batch: int = 200) -> list[int]:
        """Bulk APPEND on one connection (MULTIAPPEND with LITERAL+, ``batch`` mails per command)."""
        return imapops.bulk_append(self.host, self.imap_port, user, password or self._users[user],
                                   folder, raws, tuple(flags), batch=batch)

    def create_folder(self, user: str, folder: str) -> None:
        with self.client(user) as c:
            c.create(folder)

    def delete_folder(self, user: str, folder: str) -> None:
        with self.client(user) as c:
            c.delete(folder)

    def recreate_folder(self, user: str, folder: str) -> tuple[int, int]:
        """Empty ``folder`` and give it a new UIDVALIDITY; returns ``(old, new)``.

        Ordinary folders are deleted and created again over IMAP (UIDs restart at 1).  INBOX cannot be
        deleted, so it is expunged and gets a new UIDVALIDITY through ``doveadm mailbox update``
        (its UIDs continue from the old UIDNEXT).
        """
        with self.client(user) as c:
            old = c.uidvalidity(folder)
            if folder.upper() != "INBOX":
                c.delete(folder)
                c.create(folder)
        if folder.upper() == "INBOX":
            self.doveadm("expunge", "-u", user, "mailbox", "INBOX", "all")
            wanted = max(old + 1, int(time.time()))
            self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(wanted), "INBOX")
        new = self.uidvalidity(user, folder)
        if new == old:
            raise DovecotError(f"UIDVALIDITY of {folder!r} did not change ({old})")
        return old, new

    def doveadm(self, *args: str, timeout: float = 30.0) -> str:
        """Run ``doveadm -c OUR.conf ARGS`` (e.g. ``expunge``, ``mailbox status``); returns its stdout."""
        binary = shutil.which("doveadm") or str(Path(self.binary or "/usr/sbin/dovecot").parent.parent
                                                 / "bin" / "doveadm")
        done = subprocess.run([binary, "-c", str(self.config_path), *args], capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise DovecotError(f"doveadm {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.client(user) as c:
            return c.uidvalidity(folder)

    def list_uids(self, user: str, folder: str = "INBOX") -> list[int]:
        with self.client(user) as c:
            return c.uids(folder)

    def fetch_flags(self, user: str, folder: str = "INBOX") -> dict[int, frozenset[str]]:
        with self.client(user) as c:
            return c.flags(folder)


def _make_parents_traversable(path: Path) -> None:
    """Give every parent of ``path`` the search bit for others (o+x, not read) so nobody can reach it."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            log.warning("adding o+x to %s so that dovecot's mail processes can reach %s", parent, path)
            parent.chmod((mode & 0o7777) | 0o011)


@atexit.register
def _stop_all() -> None:
    for instance in list(_RUNNING):
        instance.stop()
