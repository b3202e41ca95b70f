"""Render a notification from its templates: subject, text and HTML.

Pure: the Jinja2 environment is built by the shell (a sandbox, with HTML
autoescaping) and passed in.  A template set is ``<kind>.subject.j2``,
``<kind>.txt.j2`` and ``<kind>.html.j2`` under a locale folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.runtime
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from maildesk.errors import TemplateError

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


MAX_REPEAT_CHARS = 1_000_000  # what a template may build with '*' (an admin's typo must not eat the memory)
MAX_POWER = 1_000


class BoundedSandbox(SandboxedEnvironment):
    """Jinja2's sandbox, plus bounds on ``'x' * n`` and ``a ** b``, which the stock sandbox lets grow."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and \
                        len(seq) * max(times, 0) > MAX_REPEAT_CHARS:
                    raise SecurityError(f"repetition would build {len(seq) * times} items "
                                        f"(at most {MAX_REPEAT_CHARS})")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise SecurityError(f"exponent {right} is too large (at most {MAX_POWER})")
        return super().call_binop(context, operator, left, right)


def build_environment(loader: jinja2.BaseLoader) -> SandboxedEnvironment:
    """The sandboxed environment every template runs in; HTML is autoescaped."""
    return BoundedSandbox(
        loader=loader,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _where(exc: BaseException, fallback: str) -> str:
    """``file:line`` of the template that failed: from a syntax error, or the deepest template frame."""
    filename, line = getattr(exc, "filename", None), getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith(".j2"):
            filename, line = name, tb.tb_lineno
        tb = tb.tb_next
    return f"{filename or fallback}:{line or '?'}"


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
    except (jinja2.TemplateError, OverflowError, MemoryError, RecursionError) as exc:
        raise TemplateError(f"{_where(exc, base)}: {exc.__class__.__name__}: {exc}") from None
    return Rendered(subject=" ".join(subject.split()), text=text, html=html)
