"""The ``maildesk`` command: run the daemon, and look at or fix what it stores.

This module holds the root group and registers the subcommands, each kept in the module of its job:

    context.py       the ``--config`` option, ``load_settings``, the store opened, a bad config as exit 1
    operations.py    run, check-config, db upgrade, status, reconcile
    intake.py        parse, ingest (one mail by hand or from an MTA pipe)
    ticket_views.py  tickets list, tickets show
    queues.py        quarantine, outbox
    explain.py       rules test, sla explain
    reports/commands.py, kb/commands.py   report, kb

At load these modules import only click, the settings and the errors; the store, the daemon and the mail
clients are imported inside the commands.  So ``maildesk --help`` stays cheap, and ``maildesk run`` installs
the SIGTERM guard (``maildesk.guard_startup``) before anything heavy is imported.
"""

from __future__ import annotations

import click

from maildesk import logs
from maildesk.cli.context import DEFAULT_CONFIG, config_option, load_settings
from maildesk.cli.explain import rules, sla
from maildesk.cli.intake import EX_TEMPFAIL, ingest, parse
from maildesk.cli.operations import check_config, db, reconcile, run, status
from maildesk.cli.queues import outbox, quarantine
from maildesk.cli.ticket_views import tickets
from maildesk.kb.commands import kb
from maildesk.reports.commands import report

__all__ = ["DEFAULT_CONFIG", "EX_TEMPFAIL", "config_option", "load_settings", "main"]


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """maildesk: an IT support desk run over plain email."""
    ctx.ensure_object(dict)["verbose"] = verbose
    logs.configure(verbose=verbose)


# ``maildesk --help`` lists them alphabetically, whatever the order here.
SUBCOMMANDS: tuple[click.Command, ...] = (
    run, check_config, db, tickets, rules, sla, quarantine, outbox, status, reconcile, parse, ingest, report, kb,
)
for _command in SUBCOMMANDS:
    main.add_command(_command)
del _command
