"""``python -m maildesk.cli`` runs the command line, like ``python -m maildesk``."""

from maildesk import guard_startup

guard_startup()  # before the heavy imports below: an early SIGTERM is a clean stop

from maildesk.cli import main  # noqa: E402

main()
