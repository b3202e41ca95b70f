"""``make demo``: a local mail stack, the real daemon, and what it did.

Starts a throwaway Dovecot and an SMTP sink on 127.0.0.1, puts the sample
mails of ``devstack/samples/`` into the support mailbox, runs
``maildesk run`` as a separate process, shows the tickets made and the
acknowledgments received, sends a requester's reply to the first ticket and
shows it threaded.  Then it keeps running until Ctrl-C, which stops
everything it started.  ``--once`` stops right after the tour.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from email.utils import format_datetime, make_msgid
from pathlib import Path

from devstack.dovecot import Dovecot
from devstack.smtpsink import SmtpSink

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(__file__).resolve().parent / "samples"
SUPPORT = "support@example.com"


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def _write_config(state: Path, dovecot: Dovecot, sink: SmtpSink) -> Path:
    config = state / "config"
    config.mkdir(parents=True, exist_ok=True)
    for name in ("rules.toml", "sla.toml", "groups.toml", "agents.toml"):
        if (ROOT / "config" / name).exists():
            shutil.copy(ROOT / "config" / name, config / name)
    path = config / "maildesk.toml"
    path.write_text(textwrap.dedent(f"""
        # Written by the demo: a desk on the local mail stack.
        [desk]
        support_address = "{SUPPORT}"
        support_name = "技术支持中心"
        timezone = "Asia/Shanghai"
        rules_dir = "{config}"
        templates_dir = "{ROOT / 'templates'}"

        [database]
        url = "sqlite:///{state / 'var' / 'maildesk.db'}"

        [[mailbox]]
        name = "support"
        host = "{dovecot.host}"
        port = {dovecot.imap_port}
        security = "none"            # loopback only; real servers use tls or starttls
        user = "support"
        password_env = "MAILDESK_DEMO_IMAP_PASSWORD"
        poll_interval = "5s"

        [smtp]
        host = "{sink.host}"
        port = {sink.port}
        security = "none"
        interval = "2s"
    """), encoding="utf-8")
    return path


def _maildesk(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "maildesk", *args], env=env, capture_output=True, text=True,
                            timeout=60)
    return result.stdout + result.stderr


def _subject(raw: bytes) -> str:
    return str(make_header(decode_header(message_from_bytes(raw)["Subject"] or "")))


def _wait(predicate, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def _reply_for(number: str, to_ack: bytes) -> bytes:
    """The sample reply (Outlook, zh-CN) of the requester, threaded under our acknowledgment."""
    template = (SAMPLES / "reply-template.eml").read_text(encoding="utf-8")
    ack_id = (message_from_bytes(to_ack)["Message-ID"] or "").strip()
    text = (template.replace("{ticket}", number).replace("{in_reply_to}", ack_id)
            .replace("{message_id}", make_msgid(domain="example.com"))
            .replace("{date}", format_datetime(datetime.now(UTC))))
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def _of_kind(sink: SmtpSink, kind: str) -> list:
    return [m for m in sink.received if (message_from_bytes(m.raw)["X-Maildesk-Kind"] or "").strip() == kind]


def _agent_answer(agent: str, notice: bytes, number: str) -> bytes:
    """The agent's answer, to the personal reply address of the notice, with a command on top."""
    original = message_from_bytes(notice)
    return (f"From: {agent}\r\nTo: {original['Reply-To']}\r\nSubject: =?utf-8?b?"
            + __import__("base64").b64encode(f"回复: 【技术支持】{number}".encode()).decode()
            + f"?=\r\nMessage-ID: {make_msgid(domain='example.com')}\r\nDate: {format_datetime(datetime.now(UTC))}"
            + "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Transfer-Encoding: 8bit\r\n\r\n#状态 已解决\r\n李女士您好：已清理打印队列并更换硒鼓，"
            + "打印已恢复。请在实际使用中确认。\r\n").encode("utf-8")


def _template_sender() -> str:
    head = (SAMPLES / "reply-template.eml").read_text(encoding="utf-8").split("\n", 1)[0]
    return head.rpartition("<")[2].rstrip(">\r ")


def run_demo(state: Path, once: bool) -> int:
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    password = secrets.token_urlsafe(12)
    samples = sorted(SAMPLES.glob("[0-9]*.eml"))
    with Dovecot(state / "dovecot") as dovecot, SmtpSink(eml_dir=state / "sink") as sink:
        dovecot.add_user("support", password)
        _say(f"mail stack up: IMAP 127.0.0.1:{dovecot.imap_port} (user support), SMTP sink 127.0.0.1:{sink.port}")
        config = _write_config(state, dovecot, sink)
        env = {**os.environ, "MAILDESK_DEMO_IMAP_PASSWORD": password}
        for sample in samples:
            dovecot.append("support", password, "INBOX", sample.read_bytes())
        _say(f"{len(samples)} sample mails delivered to {SUPPORT}; starting the daemon (log: {state / 'daemon.log'})")
        log = (state / "daemon.log").open("wb")
        daemon = subprocess.Popen([sys.executable, "-m", "maildesk", "run", "-c", str(config)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            if not _wait(lambda: len(_of_kind(sink, "ack")) >= len(samples), 60):
                print(f"only {len(_of_kind(sink, 'ack'))} acknowledgments arrived; see {state / 'daemon.log'}")
                return 1
            _say("tickets (maildesk tickets list)")
            print(_maildesk("tickets", "list", "-c", str(config), env=env))
            _say("acknowledgments received by the SMTP sink")
            for mail in _of_kind(sink, "ack"):
                print(f"  to {', '.join(mail.rcpt_tos):<32} {_subject(mail.raw)}")
            notices = _of_kind(sink, "new_ticket_notice") + _of_kind(sink, "supervisor_notice")
            _say(f"{len(notices)} notices to agents (each with a personal reply address), e.g.")
            for mail in notices[:4]:
                print(f"  to {', '.join(mail.rcpt_tos):<32} {_subject(mail.raw)}")
            replier = _template_sender()
            first = next(m for m in _of_kind(sink, "ack") if replier in m.rcpt_tos)
            number = _subject(first.raw).split("】", 1)[1].split()[0]
            _say(f"the requester replies to {number} (回复: 【技术支持】{number} …)")
            dovecot.append("support", password, "INBOX", _reply_for(number, first.raw))
            _wait(lambda: "reply from" in _maildesk("tickets", "show", number, "-c", str(config), env=env), 30)
            notice = next(m for m in notices if number.encode() in m.raw)
            agent = notice.rcpt_tos[0]
            _say(f"agent {agent} answers from a mail client with '#状态 已解决' on top")
            dovecot.append("support", password, "INBOX", _agent_answer(agent, notice.raw, number))
            _wait(lambda: bool(_of_kind(sink, "resolution_notice")), 30)
            print(_maildesk("tickets", "show", number, "-c", str(config), env=env))
            for kind in ("agent_reply", "resolution_notice"):
                for mail in _of_kind(sink, kind):
                    print(f"  {kind:<18} to {', '.join(mail.rcpt_tos):<24} {_subject(mail.raw)}")
            print(f"acknowledgments in all: {len(_of_kind(sink, 'ack'))} (the replies got none, as they should)")
            if once:
                return 0
            _say(f"running. Send more mail: IMAP APPEND to 127.0.0.1:{dovecot.imap_port} as support / {password}; "
                 f"received mails are in {state / 'sink'}. Ctrl-C stops everything.")
            while daemon.poll() is None:
                time.sleep(0.5)
            return 0
        except KeyboardInterrupt:
            return 0
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
            log.close()
            _say("stopped the daemon, the SMTP sink and Dovecot")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", default=str(ROOT / ".demo"), help="folder for the demo's servers and data")
    parser.add_argument("--once", action="store_true", help="stop after the tour instead of waiting for Ctrl-C")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(run_demo(Path(args.state), args.once))


if __name__ == "__main__":
    main()
