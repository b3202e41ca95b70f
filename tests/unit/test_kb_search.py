"""The pure parts of the knowledge base: terms, scoring and threshold, article texts, "已解决", the mails."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import jinja2
import pytest

from maildesk.domain import Address
from maildesk.kb import search
from maildesk.kb.articles import (
    ArticleDraft,
    draft_from_ticket,
    find_tag,
    format_number,
    parse_edit,
    says_solved,
    to_markdown,
)
from maildesk.outbound.notices import AckFacts, AckSuggestion, Desk, build_ack
from maildesk.outbound.render import LOCALES, build_environment, render

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
PRINTER = search.search_text("打印机无法打印", "财务部三楼打印机一直卡纸，无法打印。", "搓纸轮老化",
                             "已更换搓纸轮并清理打印队列，打印恢复正常。")
VPN = search.search_text("VPN 连接失败", "在家无法连接公司 VPN，提示证书过期。", "", "重新导入证书。")


def _candidate(article_id: int, text: str) -> search.Candidate:
    return search.Candidate(article_id, format_number(article_id), f"article {article_id}", text)


def test_chinese_is_segmented_into_lower_case_index_terms_without_stop_words() -> None:
    terms = search.index_terms("请问Outlook无法收取邮件，怎么办？Error-0x800CCC0E")
    assert "outlook" in terms and "无法" in terms and "收取" in terms
    assert "请问" not in terms and "怎么办" not in terms and "，" not in terms
    assert all(t == t.lower() and t.isalnum() for t in terms)


def test_query_terms_are_distinct_subject_first_and_bounded() -> None:
    terms = search.query_terms("打印机卡纸", "打印机 卡纸 " + " ".join(f"word{i}" for i in range(100)))
    assert terms[:2] == ("打印机", "卡纸") and len(terms) == search.MAX_QUERY_TERMS == len(set(terms))


def test_backend_queries_quote_every_term() -> None:
    assert search.fts5_match(["打印机", "or", "near"]) == '"打印机" OR "or" OR "near"'
    assert search.tsquery(["打印机", "卡纸"]) == "打印机 | 卡纸"


def test_idf_stays_positive_in_a_one_article_base_and_rare_terms_weigh_more() -> None:
    assert search.idf(1, 1) > 0 and search.idf(0, 1) == search.idf(1, 1)
    assert search.idf(1, 100) > search.idf(50, 100) > 0


def test_a_query_scores_one_against_itself_and_zero_against_nothing() -> None:
    terms = ("打印机", "卡纸", "硒鼓")
    assert search.score(terms, terms, {}, 1)[0] == pytest.approx(1.0)
    assert search.score(terms, ["vpn", "证书"], {}, 1) == (0.0, ())


def test_the_same_problem_in_other_words_passes_and_an_unrelated_mail_does_not() -> None:
    candidates = [_candidate(1, PRINTER), _candidate(2, VPN)]
    df = {"无法": 2, "打印机": 1, "卡纸": 1, "vpn": 1}
    same = search.query_terms("三楼打印机又卡纸了", "打印机卡纸，打不出来。")
    found = search.choose(same, candidates, df, 2)
    assert [s.number for s in found] == ["KB0001"] and set(found[0].matched) >= {"打印机", "卡纸"}
    unrelated = search.query_terms("Outlook 收不到邮件", "从昨天开始 Outlook 无法收取邮件。")
    assert search.choose(unrelated, candidates, df, 2) == ()


def test_one_shared_word_is_never_enough_even_with_a_high_score() -> None:
    assert search.choose(("打印机",), [_candidate(1, PRINTER)], {}, 1, threshold=0.0) == ()


def test_at_most_three_suggestions_best_first() -> None:
    texts = ["打印机 卡纸", "打印机 卡纸 硒鼓", "打印机 卡纸 硒鼓 定影器", "打印机 卡纸", "打印机 卡纸 硒鼓"]
    candidates = [_candidate(i + 1, t) for i, t in enumerate(texts)]
    found = search.choose(("打印机", "卡纸", "硒鼓", "定影器"), candidates, {}, 5)
    assert [s.number for s in found] == ["KB0003", "KB0002", "KB0005"]
    assert found[0].score >= found[1].score >= found[2].score


def test_a_cause_line_of_the_solution_becomes_the_cause() -> None:
    draft = draft_from_ticket(" 打印机无法打印 ", "卡纸", "原因：搓纸轮老化\n已更换搓纸轮。", "hardware")
    assert (draft.title, draft.cause, draft.solution) == ("打印机无法打印", "搓纸轮老化", "已更换搓纸轮。")
    assert draft_from_ticket("x", "y", "重启即可。", "other").cause == ""


def test_edit_lines_set_fields_until_the_next_label_or_the_quote() -> None:
    fields = parse_edit("好的，改一下：\nTitle: Printer jams\n解决方案：1. 关机\n2. 取出卡纸\n> 问题: old")
    assert fields == {"title": "Printer jams", "solution": "1. 关机\n2. 取出卡纸"}
    assert parse_edit("谢谢，不用改") == {}


@pytest.mark.parametrize(("text", "solved"), [
    ("已解决", True), ("问题已解决，谢谢！", True), ("Solved, thanks", True), ("it works now, thank you", True),
    ("还没解决", False), ("问题解决了吗？", False), ("not solved yet", False), ("谢谢", False),
    ("已解决" + "，另外我的显示器也有问题，能不能顺便帮我看看，型号是 DELL U2720Q，屏幕一直闪烁" * 2, False),
])
def test_says_solved_only_for_a_short_reply_that_says_so(text: str, solved: bool) -> None:
    assert says_solved(text) is solved


def test_article_numbers_and_subject_tags() -> None:
    assert format_number(7) == "KB0007" and format_number(12345) == "KB12345"
    with pytest.raises(ValueError, match="positive"):
        format_number(0)
    assert find_tag("回复: 【知识库】kb0007 打印机") == "KB0007" and find_tag("Re: 【技术支持】TS2026") is None


def test_markdown_has_the_title_the_facts_and_a_dash_for_an_empty_cause() -> None:
    text = to_markdown("KB0001", ArticleDraft("打印机", "卡纸", "", "换纸", "hardware"), version=2,
                       source="TS20261123001", updated="2026-11-23 10:00")
    assert text.startswith("# KB0001 打印机\n") and "TS20261123001" in text and "## 原因 / Cause\n\n—" in text


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    return build_environment(jinja2.FileSystemLoader(str(TEMPLATES)))


@pytest.mark.parametrize("locale", LOCALES)
def test_the_ack_shows_suggestions_escaped_and_says_how_to_close(env: jinja2.Environment, locale: str) -> None:
    desk = Desk("support@example.com", "IT", "bounce@example.com", "example.com", "s", "Asia/Shanghai", "zh-CN")
    facts = AckFacts("TS20261123001", "打印机", "medium", Address("a@b.c", "A"), locale, None, None,
                     timedelta(hours=2), True, datetime(2026, 11, 23, 4, tzinfo=UTC), None, (),
                     suggestions=(AckSuggestion("KB0001", "<b>打印机</b>", "第一步\n<script>x</script>"),))
    mail = message_from_bytes(build_ack(env, desk, facts, datetime(2026, 11, 23, 2, tzinfo=UTC)).raw)
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in mail.walk()
             if p.get_content_type().startswith("text/")}
    assert "KB0001" in parts["text/plain"] and "<script>x</script>" in parts["text/plain"]
    assert ("已解决" if locale == "zh-CN" else '"solved"') in parts["text/plain"]
    assert "<script>" not in parts["text/html"] and "&lt;script&gt;x&lt;/script&gt;" in parts["text/html"]
    without = build_ack(env, desk, replace(facts, suggestions=()), datetime(2026, 11, 23, tzinfo=UTC))
    assert b"KB0001" not in without.raw


@pytest.mark.parametrize("locale", LOCALES)
def test_the_article_mail_renders_with_its_tag_and_edit_labels(env: jinja2.Environment, locale: str) -> None:
    rendered = render(env, "kb_article", locale, {
        "desk_name": "IT", "support_address": "support@example.com", "kb_number": "KB0001",
        "title": "打印机 <卡纸>", "problem": "卡纸", "cause": "", "solution": "换搓纸轮", "category": "hardware",
        "version": 1, "source": "TS20261123001"})
    assert rendered.subject == "【知识库】KB0001 打印机 <卡纸>"
    assert ("解决方案:" if locale == "zh-CN" else "Solution:") in rendered.text
    assert rendered.html is not None and "打印机 &lt;卡纸&gt;" in rendered.html
