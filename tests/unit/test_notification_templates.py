"""Every notification of issues 5 and 6 renders in both locales, safely, from exactly the variables it documents."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2 import meta, nodes

from maildesk.errors import TemplateError
from maildesk.outbound.render import LOCALES, build_environment, render
from maildesk.tickets.survey import survey_choices, survey_token

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
SECRET = "test-secret"
NUMBER = "TS20261123007"
HOSTILE = "<script>alert(1)</script> {{7*7}}"

COMMANDS = [
    {"zh": "#状态 已解决|待用户|处理中", "en": "#status resolved|pending|open", "help": "change the status"},
    {"zh": "#优先级 紧急|高|中|低", "en": "#priority urgent|high|medium|low", "help": "re-judge the priority"},
    {"zh": "#指派 姓名", "en": "#assign NAME", "help": "assign a handler"},
    {"zh": "#备注", "en": "#note", "help": "internal note, never relayed"},
]
NEW_TICKET = {
    "number": NUMBER,
    "subject": "财务系统无法登录",
    "requester_name": "王芳",
    "requester_address": "wang.fang@example.com",
    "requester_phone": "135****5678",
    "impact": "整个财务部（12人）无法开票",
    "category": "software",
    "priority": "urgent",
    "group_name": "软件研发组",
    "first_response_due": "2026-11-23 09:45",
    "resolve_due": "2026-11-23 11:30",
    "body": "今天早上开始登录财务系统提示“数据库连接超时”。\n已经重启电脑，还是不行。",
    "reply_address": "support+k3j9x2@example.com",
    "commands": COMMANDS,
}
SAMPLES: dict[str, dict[str, Any]] = {
    "agent_reply": {"number": NUMBER, "subject": "财务系统无法登录", "agent_name": "张工",
                    "body": "您好，数据库连接池已重启，请再试一次。\n如仍有问题请回复。"},
    "pending_reminder": {"number": NUMBER, "subject": "打印机无法打印", "requester_name": "李雷",
                         "waiting_days": 2, "n": 1},
    "resolution_notice": {"number": NUMBER, "subject": "VPN连接中断", "requester_name": "Li Lei",
                          "solution": "1. 更新 VPN 客户端到 5.2\n2. 重新导入配置", "agent_name": "张工",
                          "survey": survey_choices(SECRET, "support@example.com", NUMBER, "zh-CN"),
                          "survey_token": survey_token(SECRET, NUMBER)},
    "auto_close": {"number": NUMBER, "subject": "密码重置", "requester_name": "", "days": 3},
    "rating_thanks": {"number": NUMBER, "subject": "密码重置", "rating_label": "非常满意", "comment": "谢谢，很快"},
    "reopened_ack": {"number": NUMBER, "subject": "无线网络频繁掉线"},
    "new_ticket_notice": NEW_TICKET,
    "supervisor_notice": {**NEW_TICKET, "reason": "紧急/高优先级工单"},
    "deadline_warning": {"number": NUMBER, "subject": "服务器宕机", "deadline": "first_response",
                         "due_at": "2026-11-23 09:45", "left_minutes": 4, "assignee_name": "张工"},
    "escalation": {"number": NUMBER, "subject": "服务器宕机", "level": 1, "level_name": "系统运维组组长",
                   "reason": "首次响应超时", "description": "生产服务器 db-01 无法访问", "impact": "全公司 ERP 停用",
                   "tried": [{"at": "09:32", "who": "张工", "text": "重启服务，无效"},
                             {"at": "09:40", "who": "张工", "text": "检查磁盘，/var 已满"}],
                   "suggested_team": "系统运维组"},
    "progress_report": {"number": NUMBER, "subject": "服务器宕机", "priority": "urgent", "status": "open",
                        "since_minutes": 90, "last_update": "已清理 /var，正在恢复数据库",
                        "next_report_due": "2026-11-23 11:00"},
    "oncall_digest": {"date": "2026-11-23", "open_count": 17, "at_risk": [
        {"number": NUMBER, "subject": "服务器宕机", "priority": "urgent", "due": "11:30", "left_minutes": 25,
         "assignee": "张工"},
        {"number": "TS20261122003", "subject": "VPN连接中断", "priority": "high", "due": "10:00",
         "left_minutes": -15, "assignee": None},
    ]},
    "command_error": {"number": NUMBER, "errors": [{"line": 1, "raw": "#优先级 特急", "problem": "未知优先级“特急”"}]},
    "assigned_notice": {"number": NUMBER, "subject": "打印机无法打印", "assignee_name": "李工",
                        "assigned_by": "王组长", "priority": "medium", "due": "2026-11-23 14:00"},
    "impostor_notice": {"agent_name": "张工", "claimed_address": "zhang@example.com", "subject": "Re: 【技术支持】TS…",
                        "received_at": "2026-11-23 10:02", "reason": "DKIM/SPF 未通过，且未发往个人回复地址"},
    "low_rating": {"number": NUMBER, "subject": "密码重置", "rating_label": "不满意", "comment": "等了两天",
                   "assignee_name": "张工"},
    "reopened_notice": {"number": NUMBER, "subject": "VPN连接中断", "reason": "用户回复问题仍未解决",
                        "text": "还没解决，今天又断了三次"},
    "oversize_notice": {"subject": "系统日志和内存转储 <附件>", "size": "31.4 MB", "limit": "25.0 MB"},
}
KINDS = tuple(SAMPLES)
NOT_TICKET_MAIL = {"oncall_digest", "impostor_notice", "oversize_notice"}
TRUSTED_FIELDS = {"priority", "status", "category", "deadline", "value", "mailto", "survey_token", "number"}
_DOC_LIST = r"\s*([a-z_]+(?:\s*,\s*[a-z_]+)*)"


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    return build_environment(jinja2.FileSystemLoader(str(TEMPLATES)))


def _context(kind: str, **overrides: Any) -> dict[str, Any]:
    return {"desk_name": "IT 服务台", "support_address": "support@example.com", **SAMPLES[kind], **overrides}


def _documented(kind: str, locale: str) -> tuple[set[str], set[str]]:
    """(required, optional) variable names from the comment at the top of the kind's text template."""
    head = (TEMPLATES / locale / f"{kind}.txt.j2").read_text(encoding="utf-8").split("#}", 1)[0]
    required = re.search(r"context:" + _DOC_LIST, head)
    optional = re.search(r"optional:" + _DOC_LIST, head)
    assert required, f"{locale}/{kind}.txt.j2 documents no context"

    def names(found: re.Match[str] | None) -> set[str]:
        return {n.strip() for n in found.group(1).split(",")} if found else set()

    return names(required), names(optional)


def _used(env: jinja2.Environment, name: str) -> set[str]:
    """Context variables a template reads, following extends and include (which share the context)."""
    source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
    tree = env.parse(source)
    aliases = {node.target for node in tree.find_all(nodes.Import)}  # blocks see top-level imports at run time
    used = set(meta.find_undeclared_variables(tree)) - aliases
    for node in tree.find_all((nodes.Extends, nodes.Include)):
        target = getattr(node, "template", None)
        if isinstance(target, nodes.Const):
            used |= _used(env, target.value)
    return used


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_subject_text_and_html(env: jinja2.Environment, kind: str, locale: str) -> None:
    rendered = render(env, kind, locale, _context(kind))
    assert rendered.subject.startswith("【技术支持】")
    if kind not in NOT_TICKET_MAIL:
        assert rendered.subject.startswith(f"【技术支持】{NUMBER}")
        assert NUMBER in rendered.text
    assert "\n" not in rendered.subject
    assert rendered.html is not None and rendered.html.lstrip().startswith("<!DOCTYPE html>")
    assert "support@example.com" in rendered.html


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_each_template_uses_exactly_the_variables_it_documents(env: jinja2.Environment, kind: str, locale: str) -> None:
    required, optional = _documented(kind, locale)
    used: set[str] = set()
    for part in ("subject", "txt", "html"):
        used |= _used(env, f"{locale}/{kind}.{part}.j2")
    assert used == required | optional
    assert set(_context(kind)) >= required


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_required_variable_fails_loudly(env: jinja2.Environment, kind: str, locale: str) -> None:
    required, _ = _documented(kind, locale)
    for name in sorted(required):
        context = _context(kind)
        del context[name]
        with pytest.raises(TemplateError):
            render(env, kind, locale, context)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_markup_in_any_text_field_is_escaped_in_html_and_template_syntax_stays_literal(
    env: jinja2.Environment, kind: str, locale: str
) -> None:
    rendered = render(env, kind, locale, _hostile(_context(kind)))
    assert rendered.html is not None
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "{{7*7}}" in rendered.text and "{{7*7}}" in rendered.html


def _hostile(value: Any, key: str = "") -> Any:
    """Every free-text value (not the enum values, numbers and our own links) replaced by markup."""
    if isinstance(value, dict):
        return {k: _hostile(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile(item, key) for item in value]
    if isinstance(value, str) and key not in TRUSTED_FIELDS:
        return HOSTILE
    return value


def test_hostile_list_items_are_escaped_too(env: jinja2.Environment) -> None:
    tried = [{"at": "09:00", "who": "<b>x</b>", "text": HOSTILE}]
    rendered = render(env, "escalation", "zh-CN", _context("escalation", tried=tried))
    assert rendered.html is not None and "<b>x</b>" not in rendered.html and "&lt;b&gt;x&lt;/b&gt;" in rendered.html


def test_a_subject_with_a_line_break_stays_one_line(env: jinja2.Environment) -> None:
    rendered = render(env, "agent_reply", "en", _context("agent_reply", subject="hello\r\nBcc: victim@example.com"))
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


@pytest.mark.parametrize("locale", LOCALES)
def test_the_resolution_notice_asks_for_confirmation_states_the_scale_and_links_every_rating(
    env: jinja2.Environment, locale: str
) -> None:
    survey = survey_choices(SECRET, "support@example.com", NUMBER, locale)
    rendered = render(env, "resolution_notice", locale, _context("resolution_notice", survey=survey))
    assert rendered.html is not None
    scale = "4 = 非常满意" if locale == "zh-CN" else "4 = Very satisfied"
    confirm = "还没解决" if locale == "zh-CN" else "still not working"
    for part in (rendered.text, rendered.html):
        assert scale in part and confirm in part
        assert f"[s:{survey_token(SECRET, NUMBER)}]" in part
    for choice in survey:
        assert str(choice["mailto"]) in rendered.text
        assert str(choice["mailto"]).replace("&", "&amp;") in rendered.html


def test_the_resolution_notice_renders_without_the_optional_survey_token(env: jinja2.Environment) -> None:
    context = _context("resolution_notice")
    del context["survey_token"]
    assert "[s:" not in render(env, "resolution_notice", "zh-CN", context).text


def test_the_on_call_digest_says_overdue_for_a_passed_deadline(env: jinja2.Environment) -> None:
    rendered = render(env, "oncall_digest", "zh-CN", _context("oncall_digest"))
    assert "已超时15分钟" in rendered.text and "剩余25分钟" in rendered.text
    assert "未指派" in rendered.text


def test_the_new_ticket_notice_lists_the_commands_in_both_languages(env: jinja2.Environment) -> None:
    rendered = render(env, "new_ticket_notice", "en", _context("new_ticket_notice"))
    assert "#状态 已解决|待用户|处理中" in rendered.text and "#status resolved|pending|open" in rendered.text
    assert "support+k3j9x2@example.com" in rendered.text and "135****5678" in rendered.text


def test_an_empty_comment_leaves_out_the_comment_block(env: jinja2.Environment) -> None:
    rendered = render(env, "rating_thanks", "zh-CN", _context("rating_thanks", comment=""))
    assert "您的意见" not in rendered.text


class _TagBalance(HTMLParser):
    VOID = frozenset({"meta", "br", "img", "hr", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1] == tag:
            self.open.pop()
        else:
            self.problems.append(f"</{tag}> while {self.open[-3:]} are open")


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_html_part_closes_every_tag_it_opens(env: jinja2.Environment, kind: str, locale: str) -> None:
    html = render(env, kind, locale, _context(kind)).html
    assert html is not None
    parser = _TagBalance()
    parser.feed(html)
    assert parser.problems == [] and parser.open == []
