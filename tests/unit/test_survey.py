"""The satisfaction survey: ratings read from real-looking replies, tokens that bind them, mailto links."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from maildesk.tickets.survey import (
    RATINGS,
    SCORES,
    find_survey_token,
    label,
    mailto_link,
    parse_rating,
    survey_choices,
    survey_token,
    verify_survey_token,
)

SECRET = "installation-secret"
A, B = "TS20261123001", "TS20261123002"


@pytest.mark.parametrize(
    ("text", "value", "comment"),
    [
        ("非常满意，谢谢", "very-satisfied", "谢谢"),
        ("非常满意", "very-satisfied", ""),
        ("满意", "satisfied", ""),
        ("满意。", "satisfied", ""),
        ("不满意", "dissatisfied", ""),
        ("不满意，等了两天才有人理", "dissatisfied", "等了两天才有人理"),
        ("非常不满意！", "dissatisfied", ""),
        ("不太满意，打印机还是慢", "dissatisfied", "打印机还是慢"),
        ("很满意，张工很耐心", "very-satisfied", "张工很耐心"),
        ("一般", "neutral", ""),
        ("一般，希望下次快一点", "neutral", "希望下次快一点"),
        ("感觉一般", "neutral", "感觉"),
        ("服务很好，非常满意，谢谢", "very-satisfied", "服务很好，谢谢"),
        ("4", "very-satisfied", ""),
        ("1", "dissatisfied", ""),
        ("３", "satisfied", ""),
        ("４\n处理得很快", "very-satisfied", "处理得很快"),
        ("4分", "very-satisfied", ""),
        ("评分：2", "neutral", ""),
        ("评分: 3 分", "satisfied", ""),
        ("评分：４（非常满意）\r\n\r\n意见（可选）：\r\n挺快的", "very-satisfied", "挺快的"),
        ("满意度 1", "dissatisfied", ""),
        ("rating: 2", "neutral", ""),
        ("Rating: 4 (Very satisfied)\n\nComment (optional):\nquick fix", "very-satisfied", "quick fix"),
        ("score 3/4", "satisfied", ""),
        ("Very satisfied, thanks!", "very-satisfied", "thanks!"),
        ("Satisfied", "satisfied", ""),
        ("dissatisfied - nobody called me back", "dissatisfied", "nobody called me back"),
        ("I am not satisfied", "dissatisfied", "I am"),
        ("Neutral.", "neutral", ""),
        ("ＶＥＲＹ ＳＡＴＩＳＦＩＥＤ", "very-satisfied", ""),
        ("谢谢！\n非常满意", "very-satisfied", "谢谢"),
    ],
)
def test_a_reply_gives_its_rating_and_keeps_the_rest_as_comment(text: str, value: str, comment: str) -> None:
    rating = parse_rating(text)
    assert rating is not None
    assert (rating.value, rating.score, rating.comment) == (value, SCORES[value], comment)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "谢谢",
        "hello, any update?",
        "5",
        "0",
        "评分：5",
        "我一般都是早上开机",  # "一般" as "usually", not a rating
        "满意度调查收到了",  # "满意度" is the word "satisfaction", not a rating
        "问题还没解决，打印机照样卡纸",
        "2 screenshots attached",
        "> 非常满意\n> quoted from someone else",
        "It is operating: 3 printers down",
        "line one\nline two\nline three\n非常满意",  # too deep in the reply to be an answer
    ],
)
def test_a_reply_without_a_rating_gives_none(text: str) -> None:
    assert parse_rating(text) is None


def test_the_four_ratings_score_four_to_one_with_both_languages_labels() -> None:
    assert [SCORES[v] for v in RATINGS] == [4, 3, 2, 1]
    assert [label(v, "zh-CN") for v in RATINGS] == ["非常满意", "满意", "一般", "不满意"]
    assert [label(v, "en-GB") for v in RATINGS] == ["Very satisfied", "Satisfied", "Neutral", "Dissatisfied"]


# --- tokens -----------------------------------------------------------------------------------------


def test_a_token_is_16_hex_characters_and_verifies_for_its_own_ticket() -> None:
    token = survey_token(SECRET, A)
    assert len(token) == 16 and int(token, 16) >= 0
    assert verify_survey_token(SECRET, A, token)
    assert verify_survey_token(SECRET, A, token.upper())


def test_another_ticket_s_token_is_rejected() -> None:
    assert not verify_survey_token(SECRET, A, survey_token(SECRET, B))


def test_a_tampered_or_truncated_token_is_rejected() -> None:
    token = survey_token(SECRET, A)
    flipped = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert not verify_survey_token(SECRET, A, flipped)
    assert not verify_survey_token(SECRET, A, token[:8])
    assert not verify_survey_token(SECRET, A, "")


def test_a_token_made_under_another_secret_is_rejected() -> None:
    assert not verify_survey_token(SECRET, A, survey_token("another-installation", A))


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret must not be empty"):
        survey_token("", A)


def test_the_marker_is_found_in_a_mailto_subject_and_in_quoted_text() -> None:
    token = survey_token(SECRET, A)
    assert find_survey_token(f"Re: 【技术支持】{A} 满意度 4 [s:{token}]") == (A, token)
    quoted = f"非常满意\n\n> 如果超过几天没有收到您的回复，工单将自动关闭。\n> 工单编号：{A} [s:{token}]\n"
    assert find_survey_token(quoted) == (A, token)
    assert find_survey_token(f"工单编号：{A}\n[s:{token}]") is None  # the marker must follow its number
    assert find_survey_token("no marker here") is None


def test_a_forged_answer_quoting_another_ticket_s_marker_fails_against_the_subject_tag() -> None:
    """The runner checks the token against the ticket of the subject tag, not the number next to the marker."""
    stolen = f"【技术支持】{B} 满意度 1 [s:{survey_token(SECRET, B)}]"
    number, token = find_survey_token(stolen) or ("", "")
    assert number == B
    assert not verify_survey_token(SECRET, A, token)


# --- mailto links --------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("rating", RATINGS)
def test_a_mailto_link_parses_back_to_its_rating_and_token(locale: str, rating: str) -> None:
    token = survey_token(SECRET, A)
    link = mailto_link("support@example.com", A, token, rating, locale)
    parts = urlsplit(link)
    assert parts.scheme == "mailto" and unquote(parts.path) == "support@example.com"
    assert all(ch.isascii() and not ch.isspace() for ch in link)
    query = parse_qs(parts.query)
    subject, body = query["subject"][0], query["body"][0]
    assert subject.startswith(f"【技术支持】{A} ")
    assert find_survey_token(subject) == (A, token)
    for text in (subject, body):
        parsed = parse_rating(text)
        assert parsed is not None and parsed.value == rating
    assert "\r\n" in body


def test_a_mailto_body_with_a_comment_typed_under_the_prompt_keeps_only_the_comment() -> None:
    body = parse_qs(urlsplit(mailto_link("s@example.com", A, "0" * 16, "neutral", "zh-CN")).query)["body"][0]
    rating = parse_rating(body + "希望响应再快一点")
    assert rating is not None and (rating.value, rating.comment) == ("neutral", "希望响应再快一点")


def test_a_plus_address_survives_the_mailto_encoding() -> None:
    link = mailto_link("support+desk@example.com", A, "0" * 16, "satisfied", "en")
    assert unquote(urlsplit(link).path) == "support+desk@example.com"


def test_an_unknown_rating_has_no_link() -> None:
    with pytest.raises(ValueError, match="rating must be one of"):
        mailto_link("s@example.com", A, "0" * 16, "meh", "en")


def test_survey_choices_give_the_resolution_notice_one_link_per_rating_best_first() -> None:
    choices = survey_choices(SECRET, "support@example.com", A, "zh-CN")
    assert [(c["value"], c["label"], c["score"]) for c in choices] == [
        ("very-satisfied", "非常满意", 4), ("satisfied", "满意", 3), ("neutral", "一般", 2), ("dissatisfied", "不满意", 1)
    ]
    assert all(str(c["mailto"]).startswith("mailto:support@example.com?subject=") for c in choices)
