"""One mail by hand: ``maildesk parse`` shows how a mail is read, ``maildesk ingest`` takes one from an MTA pipe.

Shell layer.  ``ingest`` exits 75 (EX_TEMPFAIL) whenever the mail was not stored, so the MTA keeps it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from maildesk.cli.context import config_option, load_settings
from maildesk.errors import ConfigError, StoreUnavailableError

EX_TEMPFAIL = 75


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def parse(file: str, as_json: bool) -> None:
    """Show how maildesk reads one mail (exit 0 for any mail it could read at all)."""
    from maildesk.ingest.describe import describe_mail

    raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    result = describe_mail(raw)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for key, value in result.items():
        click.echo(f"{key}: {value}")


@click.command()
@config_option
@click.argument("file", default="-", type=click.Path(dir_okay=False, allow_dash=True))
def ingest(config_path: str, file: str) -> None:
    """Take one mail from FILE or stdin (for an MTA pipe).

    Exits 0 when the mail is stored, 75 (EX_TEMPFAIL) when it could not be
    stored, so the MTA keeps it and retries.
    """
    from maildesk.ingest.imap import FetchedMail

    try:
        raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        click.echo(f"maildesk ingest: cannot read {file}: {exc.strerror}", err=True)
        sys.exit(EX_TEMPFAIL)
    if not raw.strip():
        click.echo("maildesk ingest: empty input, nothing stored", err=True)
        sys.exit(0)
    try:
        settings, base = load_settings(config_path)
        from maildesk.daemon import build_desk

        desk = build_desk(settings, base, require_secrets=False)  # a pipe needs no IMAP or SMTP secret
        # A pipe has no UIDs: a hash of the bytes stands in, so a redelivery is stored once.
        uid = int.from_bytes(hashlib.sha256(raw).digest()[:7], "big")
        desk.runner.store_fetched("pipe", 0, [FetchedMail(uid, raw)])
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(EX_TEMPFAIL)
    except Exception as exc:  # noqa: BLE001 - any failure to store must make the MTA retry
        from maildesk.store.session import translate

        error = translate(exc) or exc
        click.echo(f"maildesk ingest: not stored, try again later: {error}", err=True)
        sys.exit(EX_TEMPFAIL)
    try:
        desk.runner.process_pending(limit=1)
    except StoreUnavailableError as exc:
        click.echo(f"maildesk ingest: stored; processing deferred to the daemon: {exc}", err=True)
    click.echo(f"stored at {datetime.now(UTC).isoformat(timespec='seconds')}")
    sys.exit(0)
