"""What every ``maildesk`` command starts from: the ``--config`` option, the settings read from it, the store
opened from them and the ticket a person named; and how a command stops when one of them is missing.

Shell layer.  The store is imported inside the functions, so ``maildesk --help`` loads no SQLAlchemy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from maildesk.config import Settings, parse_settings
from maildesk.errors import ConfigError

DEFAULT_CONFIG = "config/maildesk.toml"

config_option = click.option("-c", "--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
                             help="Path of maildesk.toml.")


def load_settings(path: str) -> tuple[Settings, Path]:
    """Read and validate the config file; the base folder is the one above ``config/``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    settings = parse_settings(text, str(path))
    base = file.resolve().parent
    return settings, base.parent if base.name == "config" else base


def secret_values(settings: Settings) -> list[str]:
    """The values of the environment variables the settings name as secrets (to keep them out of logs)."""
    import os

    names = [settings.smtp.password_env, settings.smtp.token_env]
    for box in settings.mailboxes:
        names += [box.server.password_env, box.server.token_env]
    return [os.environ[n] for n in names if n and os.environ.get(n)]


def fail_config(exc: ConfigError) -> None:
    for problem in exc.problems:
        click.echo(problem, err=True)
    sys.exit(1)


def settings_or_exit(config_path: str) -> tuple[Settings, Path]:
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        fail_config(exc)
        raise  # unreachable; keeps type checkers content


def rules_dir(settings: Settings, base: Path) -> Path:
    folder = Path(settings.rules_dir)
    return folder if folder.is_absolute() else base / folder


def open_sessions(settings: Settings):  # noqa: ANN201 - SessionFactory import stays lazy
    from maildesk.store import migrate
    from maildesk.store.session import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    return make_session_factory(engine)


def ticket_or_exit(session: object, number: str):  # noqa: ANN201 - a store model, imported lazily
    """The ticket a person named (any spelling of its number), or a one-line error and exit 1."""
    from maildesk.ingest.thread import extract_ticket_ref
    from maildesk.store import queries

    ref = extract_ticket_ref(number) or number.strip().upper()
    ticket = queries.ticket_by_number(session, ref)  # type: ignore[arg-type]
    if ticket is None:
        click.echo(f"no ticket {ref}", err=True)
        sys.exit(1)
    return ticket
