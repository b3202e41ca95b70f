"""Render a notification from its templates: subject, text and HTML.

Pure: the Jinja2 environment is built by the shell (a sandbox, with HTML
autoescaping) and passed in.  A template set is ``<kind>.subject.j2``,
``<kind>.txt.j2`` and ``<kind>.html.j2`` under a locale folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from maildesk.errors import TemplateError

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


def build_environment(loader: jinja2.BaseLoader) -> SandboxedEnvironment:
    """The sandboxed environment every template runs in; HTML is autoescaped."""
    return SandboxedEnvironment(
        loader=loader,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def pick_locale(preferred: str | None) -> str:
    if preferred in LOCALES:
        return str(preferred)
    if preferred and preferred.lower().startswith("en"):
        return "en"
    return DEFAULT_LOCALE


def render(env: jinja2.Environment, kind: str, locale: str, context: dict[str, Any]) -> Rendered:
    """Render ``kind`` in ``locale``; the subject is one line, the HTML part optional."""
    base = f"{pick_locale(locale)}/{kind}"
    try:
        subject = env.get_template(f"{base}.subject.j2").render(context)
        text = env.get_template(f"{base}.txt.j2").render(context)
        try:
            html_template = env.get_template(f"{base}.html.j2")
        except jinja2.TemplateNotFound:
            html = None
        else:
            html = html_template.render(context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name} not found") from None
    except jinja2.TemplateError as exc:
        where = f"{getattr(exc, 'filename', None) or base}:{getattr(exc, 'lineno', None) or '?'}"
        raise TemplateError(f"{where}: {exc}") from None
    return Rendered(subject=" ".join(subject.split()), text=text, html=html)
