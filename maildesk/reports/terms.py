"""The most frequent problems: terms and two-word phrases of ticket texts, Chinese and English.

Pure: texts in (already masked), counted terms out.  Chinese is segmented with
jieba (its dictionary plus a few IT words it splits, such as 内网 and 蓝屏);
English words are compared lower-cased and shown in their most common
spelling.  A term counts once per ticket (document frequency), so one long
mail cannot outweigh many short ones.  Stop words, numbers, masked digits,
single characters, ticket numbers and what jieba tags as a person's name
(``nr``) are left out, so a signature does not become a "problem".
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

IT_WORDS = ("内网", "外网", "蓝屏", "宕机", "卡纸", "硒鼓", "共享盘", "掉线", "无线网络", "密码重置", "重置密码",
            "打印机", "扫描仪", "投影仪", "显示器", "邮箱", "企业微信", "钉钉", "账号", "权限", "报销单")
_STOP_TEXT = """的 了 是 我 你 您 他 她 们 我们 你们 在 有 和 与 及 就 不 也 都 很 还 又 再 把 被 让 给 对 从 到 向 吧 吗 呢 啊
    请 请问 帮忙 帮 一下 一个 这个 那个 这 那 什么 怎么 怎么办 如何 为什么 问题 情况 现象 谢谢 感谢 您好 你好 麻烦 今天
    昨天 明天 现在 刚才 早上 上午 下午 晚上 目前 已经 一直 还是 但是 可以 能 会 要 需要 希望 尽快 出现 发现 使用 进行
    没有 不能 不了 时候 之后 以后 之前 然后 所以 因为 如果 同事 大家 部门 附件 截图 如下 以下 急 急用 收到 回复 邮件 联系
    the a an to is are was were be been of for and or in on at it its my me i we our you your he she they
    this that these those please can could cannot can't not no with from by as but if so do does did have has
    had will would should hi hello dear thanks thank regards best re fw fwd again since when after before
    still also just get got any some all there here what how why which who now today yesterday morning
    afternoon issue problem help need needs team shows show every since mobile phone tel fax mail
    系统 手机 座机 电话 分机 联系 联系方式 微信 姓名"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
NAME_TAGS = frozenset(("nr", "nrt", "nrfg", "m", "x"))  # person names, numerals, punctuation
_TICKET = re.compile(r"^TS\d{8,}$", re.IGNORECASE)
_WORDISH = re.compile(r"[A-Za-z\u3400-\u9fff]")
TOP_TERMS, TOP_PHRASES, MIN_TICKETS = 12, 8, 2


@dataclass(frozen=True)
class Term:
    """A term or phrase and the number of tickets that mention it."""

    text: str
    tickets: int


@functools.cache
def _tokenizer() -> Any:
    """One tagging tokenizer with the IT words added as nouns (built once; the dictionary loads lazily).

    jieba is imported here, on first use: importing it costs about a second, which every command
    (and a second daemon that must be refused at once) would otherwise pay.
    """
    import jieba
    import jieba.posseg

    tokenizer = jieba.Tokenizer()
    for word in IT_WORDS:
        tokenizer.add_word(word, freq=20000, tag="n")
    return jieba.posseg.POSTokenizer(tokenizer)


def segment(text: str) -> list[str | None]:
    """The words of ``text``; ``None`` marks a gap (punctuation or a stop word) that breaks a phrase."""
    words: list[str | None] = []
    for pair in _tokenizer().lcut(text):
        token = pair.word.strip()
        if not token:
            continue
        words.append(token if pair.flag not in NAME_TAGS and _is_content(token) else None)
    return words


def _is_content(token: str) -> bool:
    return (len(token) >= 2 and "*" not in token and _WORDISH.search(token) is not None
            and token.lower() not in STOP_WORDS and not _TICKET.match(token))


def _key(word: str) -> str:
    return word.lower()


def frequent_terms(texts: Iterable[str], limit: int = TOP_TERMS) -> tuple[Term, ...]:
    """The words most tickets mention, at least ``MIN_TICKETS`` each."""
    return _top(([w for w in segment(t) if w] for t in texts), limit)


def frequent_phrases(texts: Iterable[str], limit: int = TOP_PHRASES) -> tuple[Term, ...]:
    """Two content words in a row (``无法 打印``, ``vpn disconnects``) that most tickets mention."""
    return _top((_pairs(segment(t)) for t in texts), limit)


def _pairs(words: Sequence[str | None]) -> list[str]:
    pairs = []
    for first, second in zip(words, words[1:], strict=False):
        if first and second:
            glue = " " if first[-1].isascii() and second[0].isascii() else ""
            pairs.append(f"{first}{glue}{second}")
    return pairs


def _top(documents: Iterable[list[str]], limit: int) -> tuple[Term, ...]:
    tickets: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
    for words in documents:
        for word in words:
            spellings.setdefault(_key(word), Counter())[word] += 1
        tickets.update({_key(w) for w in words})
    ranked = sorted((k for k, n in tickets.items() if n >= MIN_TICKETS), key=lambda k: (-tickets[k], k))
    return tuple(Term(spellings[k].most_common(1)[0][0], tickets[k]) for k in ranked[:limit])
