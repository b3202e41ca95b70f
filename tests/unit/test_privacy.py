"""Masking of phone numbers, addresses and names (RELIABILITY.md H14 corpus, P4 properties)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maildesk.privacy import mask_email, mask_emails, mask_name, mask_phones, mask_text

# (text, expected) — every phone shows its last four digits, with four digits before them hidden.
POSITIVES = [
    ("13812345678", "138****5678"),
    ("15900001111", "159****1111"),
    ("19912345678", "199****5678"),
    ("+86 138 1234 5678", "+86 138 **** 5678"),
    ("+86-138-1234-5678", "+86-138-****-5678"),
    ("+8613812345678", "+86138****5678"),
    ("(+86) 13812345678", "(+86) 138****5678"),
    ("138-1234-5678", "138-****-5678"),
    ("138 1234 5678", "138 **** 5678"),
    ("(010) 6543 2109", "(010) **** 2109"),
    ("(010)65432109", "(010)****2109"),
    ("010-65432109", "010-****2109"),
    ("010 6543 2109", "010 **** 2109"),
    ("0755-12345678", "0755-****5678"),
    ("0755 8888 6666", "0755 **** 6666"),
    ("021-6543-2109", "021-****-2109"),
    ("（010）6543 2109", "（010）**** 2109"),
    ("+86 10 6543 2109", "+86 10 **** 2109"),
    ("+86 (755) 1234-5678", "+86 (755) ****-5678"),
    ("１３８１２３４５６７８", "１３８****５６７８"),
    ("１３８－１２３４－５６７８", "１３８－****－５６７８"),
    ("请联系我13812345678谢谢", "请联系我138****5678谢谢"),
    ("电话13812345678", "电话138****5678"),
    ("手机：13812345678。", "手机：138****5678。"),
    ("电话:13812345678", "电话:138****5678"),
    ("座机0755-12345678转", "座机0755-****5678转"),
    ("Call me at 13812345678 please", "Call me at 138****5678 please"),
    ("tel: +86 138 1234 5678.", "tel: +86 138 **** 5678."),
    ("13812345678,13912345678", "138****5678,139****5678"),
    ("13812345678/13912345678", "138****5678/139****5678"),
    ("(13812345678)", "(138****5678)"),
    ("张三 13812345678 财务部", "张三 138****5678 财务部"),
    ("+1 415 555 0132", "+1 41* *** 0132"),
    ("+44 20 7946 0958", "+44 20 **** 0958"),
    ("phone=13812345678", "phone=138****5678"),
]

# Things with many digits that are not phone numbers: never touched.
NEGATIVES = [
    "TS20261123001",
    "【技术支持】TS20231025001",
    "工单TS20261123001已解决",
    "2026-11-23",
    "2026-11-23 14:30:05",
    "2026/11/23",
    "20261123",
    "20261123143000",
    "2026年11月23日 14:30",
    "14:30:00",
    "1732345678",
    "1732345678901",
    "192.168.1.10",
    "10.0.138.12",
    "fe80::1ff:fe23:4567:890a",
    "¥1,380,000.00",
    "￥13812345.67",
    "13812345678.50元",
    "USD 12,345,678",
    "订单号 ORD-13812345678",
    "PO2026112300012345",
    "SO-0755-12345678-01",
    "<13812345678.1234@mail.qq.com>",
    "Message-ID: <CAF13812345678abc@mail.gmail.com>",
    "13812345678@163.com",
    "https://erp.corp.test/order?id=13812345678",
    "http://10.1.1.1:8080/track/075512345678",
    "www.example.com/13812345678",
    "v13.8.1234.5678",
    "SN 5CD13812345678",
    "ticket #13812345678",
    "138123456789",
    "2138123456789",
    "0.13812345678",
    "13812345678%",
    "1381234567",
    "IMEI 861234567890123",
]


@pytest.mark.parametrize(("text", "expected"), POSITIVES)
def test_phone_numbers_show_only_their_last_four_digits(text: str, expected: str) -> None:
    assert mask_phones(text) == expected


@pytest.mark.parametrize("text", NEGATIVES)
def test_numbers_that_are_not_phones_are_left_alone(text: str) -> None:
    assert mask_phones(text) == text


def test_the_corpus_is_large_enough() -> None:
    assert len(POSITIVES) >= 30 and len(NEGATIVES) >= 30


@pytest.mark.parametrize(("text", "expected"), POSITIVES)
def test_masking_twice_changes_nothing_more(text: str, expected: str) -> None:
    assert mask_phones(expected) == expected


def test_a_mail_body_is_masked_phone_by_phone_and_nothing_else() -> None:
    body = ("您好，工单TS20261123001于2026-11-23 14:30提交，联系人张三，手机13812345678，"
            "座机(010) 6543 2109，服务器192.168.1.10，报价¥12,800.00，详见 https://wiki.corp.test/p/13812345678")
    assert mask_phones(body) == (
        "您好，工单TS20261123001于2026-11-23 14:30提交，联系人张三，手机138****5678，"
        "座机(010) **** 2109，服务器192.168.1.10，报价¥12,800.00，详见 https://wiki.corp.test/p/13812345678")


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("zhangsan@example.com", "zh***@example.com"),
        ("li@corp.test", "l***@corp.test"),
        ("a@b.cn", "a***@b.cn"),
        ("13812345678@163.com", "13***@163.com"),
        ("zh***@example.com", "zh***@example.com"),
        ("", ""),
    ],
)
def test_addresses_keep_their_domain_and_two_letters(addr: str, expected: str) -> None:
    assert mask_email(addr) == expected


def test_addresses_inside_text_are_masked() -> None:
    assert mask_emails("请回复 wang.wu@corp.test 或 li@corp.test") == "请回复 wa***@corp.test 或 l***@corp.test"
    assert mask_text("王五 wang.wu@corp.test 13812345678") == "王五 wa***@corp.test 138****5678"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("张三", "张*"),
        ("王小明", "王*"),
        ("欧阳娜娜", "欧阳*"),
        ("工程师*", "工程师*"),
        ("John Smith", "John S*"),
        ("Mary Ann Lee", "Mary A* L*"),
        ("admin", "ad***"),
        ("li.si@corp.test", "li***@corp.test"),
        ("  ", ""),
    ],
)
def test_names_keep_the_surname_or_first_name_only(name: str, expected: str) -> None:
    assert mask_name(name) == expected
    assert mask_name(expected) == expected


# --- properties (P4) ------------------------------------------------------------------------------

_DIGIT = "0123456789"
_FULL = "０１２３４５６７８９"


@st.composite
def mobiles(draw: st.DrawFn) -> str:
    digits = "1" + draw(st.sampled_from("3456789")) + draw(st.text(_DIGIT, min_size=9, max_size=9))
    sep = draw(st.sampled_from(["", "", " ", "-"]))
    text = f"{digits[:3]}{sep}{digits[3:7]}{sep}{digits[7:]}"
    prefix = draw(st.sampled_from(["", "", "+86 ", "+86", "0086", "(+86) "]))
    text = prefix + text
    if draw(st.booleans()):
        text = text.translate(str.maketrans(_DIGIT, _FULL))
    return text


@st.composite
def landlines(draw: st.DrawFn) -> str:
    area = "0" + draw(st.text(_DIGIT, min_size=2, max_size=3))
    local = draw(st.text(_DIGIT, min_size=7, max_size=8))
    form = draw(st.sampled_from(["({a}) {l}", "{a}-{l}", "{a} {l}", "({a}){l}"]))
    return form.format(a=area, l=local)


# What stands between numbers in a text: never a digit or a Latin letter glued to one.
_CONTEXT = st.sampled_from([" ", "电话", "请联系", "，", "。", " Tel ", " call ", "\n", "张三 ", "（", "）", "/"])
_NEGATIVE_FRAGMENTS = st.one_of(
    st.builds(lambda y, m, d, n: f"TS{y}{m:02d}{d:02d}{n:03d}", st.integers(2020, 2030), st.integers(1, 12),
              st.integers(1, 28), st.integers(1, 999)),
    st.builds(lambda y, m, d: f"{y}-{m:02d}-{d:02d}", st.integers(2020, 2030), st.integers(1, 12),
              st.integers(1, 28)),
    st.builds(lambda h, m, s: f"{h:02d}:{m:02d}:{s:02d}", st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)),
    st.builds(lambda *o: ".".join(map(str, o)), *(st.integers(0, 255) for _ in range(4))),
    st.builds(lambda n, c: f"¥{n:,}.{c:02d}", st.integers(0, 10**10), st.integers(0, 99)),
    st.builds(lambda n: f"ORD-{n}", st.integers(10**10, 10**16)),
    st.builds(lambda n: f"<{n}.{n % 97}@mail.corp.test>", st.integers(10**10, 10**12)),
    st.builds(lambda n: f"https://erp.corp.test/o/{n}", st.integers(10**10, 10**12)),
)

_DIGIT_RUN = re.compile(r"[0-9０-９]{7,}")


@given(st.lists(st.tuples(st.one_of(mobiles(), landlines()), _CONTEXT), max_size=6)
       .map(lambda parts: "".join(a + b for a, b in parts)))
@settings(max_examples=300)
def test_masking_is_idempotent_and_leaves_no_run_of_seven_digits(text: str) -> None:
    once = mask_phones(text)
    assert mask_phones(once) == once
    assert not _DIGIT_RUN.search(once), (text, once)


@given(st.lists(st.one_of(mobiles(), landlines()), min_size=1, max_size=4), _CONTEXT)
def test_every_phone_keeps_its_last_four_digits_and_loses_four(phones: list[str], glue: str) -> None:
    text = glue.join(phones)
    masked = mask_phones(text)
    assert masked.count("*") >= 4 * len(phones)
    assert len(masked) == len(text)
    for phone in phones:
        assert phone[-4:] in masked


@given(st.lists(st.one_of(_NEGATIVE_FRAGMENTS, _CONTEXT), max_size=8).map(" ".join))
@settings(max_examples=300)
def test_negatives_are_never_changed(text: str) -> None:
    assert mask_phones(text) == text


@given(st.text(max_size=200))
def test_only_digits_are_ever_replaced(text: str) -> None:
    masked = mask_phones(text)
    assert len(masked) == len(text)
    for before, after in zip(text, masked, strict=True):
        assert before == after or (after == "*" and before in _DIGIT + _FULL)
    assert mask_phones(masked) == masked
