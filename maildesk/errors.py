"""The one exception tree of maildesk.

::

    MaildeskError
    ├── ConfigError              a config or rule file is invalid (file, line, reason)
    ├── StoreError               the database failed
    │   └── StoreUnavailableError    it cannot be reached right now (transient)
    ├── FetchError               IMAP failed (translated in ingest/imap.py)
    │   └── AuthenticationError      login refused; retrying will not help
    ├── DeliveryError            SMTP failed (translated in outbound/smtp.py)
    │   ├── TemporaryDeliveryError   4xx or connection trouble: retry later
    │   └── PermanentDeliveryError   5xx: dead letter
    └── TemplateError            a template could not be loaded or rendered

Expected outcomes (a new ticket, a quarantine, a discard) are values, not
exceptions; these are for things that went wrong.
"""

from __future__ import annotations


class MaildeskError(Exception):
    """Base of every error maildesk raises on purpose."""


class ConfigError(MaildeskError):
    """A configuration file is invalid.

    ``problems`` lists every ``file:line: reason`` found, so an admin sees all
    of them at once instead of one per run.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class StoreError(MaildeskError):
    """The database refused or failed an operation."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached right now; try again later."""


class FetchError(MaildeskError):
    """Fetching mail over IMAP failed."""


class AuthenticationError(FetchError):
    """The server refused our credentials; retrying with the same ones is pointless."""


class DeliveryError(MaildeskError):
    """Sending a mail failed."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class TemporaryDeliveryError(DeliveryError):
    """A 4xx reply or a connection problem: the mail will be retried."""


class PermanentDeliveryError(DeliveryError):
    """A 5xx reply: retrying will not help."""


class TemplateError(MaildeskError):
    """A template is missing, unsafe, or failed to render."""
