"""``python -m devstack up --state DIR``: run Dovecot + the SMTP sink in the foreground until stopped."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from types import FrameType

from devstack.mailstack import PASSWORD_ENV, MailStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Dovecot and the SMTP sink; write STATE/stack.json")
    up.add_argument("--state", required=True, help="state folder (created; reused if it exists)")
    up.add_argument("--user", default="support", help="IMAP user (default: support)")
    up.add_argument("--imap-port", type=int, default=None, help="fixed IMAP port (default: a free one)")
    up.add_argument("--smtp-port", type=int, default=None, help="fixed SMTP port (default: a free one)")
    up.add_argument("--tls", action="store_true", help="also STARTTLS/IMAPS with a generated test CA")
    up.add_argument("--load-samples", action="store_true", help="APPEND the sample mails to INBOX")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stack = MailStack(args.state, user=args.user, imap_port=args.imap_port, smtp_port=args.smtp_port,
                      tls=args.tls, load_samples=args.load_samples)
    stack.start()
    try:
        info = stack.describe()
        print(json.dumps(info, indent=2, ensure_ascii=False), flush=True)
        if not os.environ.get(PASSWORD_ENV):
            print(f"generated IMAP password for {stack.imap_user}: {stack.imap_password} "
                  f"(set {PASSWORD_ENV} to choose one)", flush=True)
        print(f"stack running; details in {stack.stack_file}; Ctrl-C or SIGTERM stops it", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()
        print("stack stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
