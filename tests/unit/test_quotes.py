"""extract_reply, is_short_thanks and says_not_solved on the shapes real mail clients write."""

from __future__ import annotations

import time

import pytest

from maildesk.ingest.quotes import extract_reply, is_device_signature, is_short_thanks, says_not_solved

OUTLOOK_EN_BLOCK = (
    "From: IT Helpdesk <helpdesk@example.com>\n"
    "Sent: Monday, November 23, 2026 10:00 AM\n"
    "To: Bob Lee <bob@example.com>\n"
    "Subject: RE: [TS20261123001] Printer on floor 3\n"
    "\n"
    "Please restart the printer and tell us if it helps.\n"
)
OUTLOOK_ZH_BLOCK = (
    "发件人: IT服务台 <helpdesk@example.com>\n"
    "发送时间: 2026年11月23日 10:00\n"
    "收件人: 张三 <zhangsan@example.com>\n"
    "主题: 答复: 【技术支持】TS20261123001 打印机卡纸\n"
    "\n"
    "请重启打印机后再试。\n"
)

# (sentence naming the case, text of the mail, expected reply text)
CASES: list[tuple[str, str, str]] = [
    (
        "gmail english top post drops the attribution and the quote",
        "Thanks, it works now.\n\nOn Mon, Nov 23, 2026 at 10:00 AM IT Helpdesk <helpdesk@example.com> wrote:\n\n"
        "> Please restart the printer.\n>\n> Regards,\n> IT\n",
        "Thanks, it works now.",
    ),
    (
        "gmail attribution wrapped over two lines is dropped whole",
        "Restarted, still jams.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Zhang San Long Name <\n"
        "zhangsan.longname@example.com> wrote:\n\n> Please restart.\n",
        "Restarted, still jams.",
    ),
    (
        "gmail chinese attribution with 于 is dropped",
        "好的，我下午试一下。\n\nIT服务台 <helpdesk@example.com> 于2026年11月23日周一 10:00写道：\n\n> 请重启打印机。\n",
        "好的，我下午试一下。",
    ),
    (
        "gmail chinese attribution wrapped before 写道 is dropped",
        "还是不行。\n\nIT服务台 <helpdesk@example.com> 于2026年11月23日周一\n上午10:00写道：\n\n> 请重启打印机。\n",
        "还是不行。",
    ),
    (
        "gmail attribution followed by unmarked history cuts there",
        "See the log attached.\n\nOn Mon, Nov 23, 2026 at 10:00 AM IT Helpdesk <helpdesk@example.com> wrote:\n\n"
        "Please send us the log file.\nIT\n",
        "See the log attached.",
    ),
    (
        "apple mail chinese attribution with 在 is dropped",
        "重启后可以打印了。\n\n在 2026年11月23日，10:00，IT服务台 <helpdesk@example.com> 写道：\n\n> 请重启打印机。\n",
        "重启后可以打印了。",
    ),
    (
        "iphone english reply drops device signature and quoted attribution",
        "Works now\n\nSent from my iPhone\n\n> On Nov 23, 2026, at 10:00, IT Helpdesk <helpdesk@example.com> wrote:\n"
        ">\n> Please restart.\n",
        "Works now",
    ),
    (
        "iphone chinese reply drops 发自我的iPhone",
        "可以了\n\n发自我的iPhone\n\n> 在 2026年11月23日，10:00，IT服务台 <helpdesk@example.com> 写道：\n>\n> 请重启。\n",
        "可以了",
    ),
    (
        "iphone chinese signature with a space is dropped",
        "收到，谢谢\n\n发自我的 iPhone\n",
        "收到，谢谢",
    ),
    (
        "ipad signature is dropped",
        "I'll be at my desk after 3.\n\nSent from my iPad\n",
        "I'll be at my desk after 3.",
    ),
    (
        "outlook desktop english header block cuts the history",
        "Hi,\n\nStill not working after the restart.\n\nRegards,\nBob\n\n" + OUTLOOK_EN_BLOCK,
        "Hi,\n\nStill not working after the restart.\n\nRegards,\nBob",
    ),
    (
        "outlook web underscore line before the header block is cut too",
        "Done, thank you.\n\n________________________________\n" + OUTLOOK_EN_BLOCK,
        "Done, thank you.",
    ),
    (
        "outlook web rendered from html with a rule line is cut",
        "Done.\n\n--------------------\nFrom: IT Helpdesk <helpdesk@example.com>\nSent: Monday, November 23, 2026"
        " 10:00 AM\nTo: Bob Lee <bob@example.com>\nSubject: RE: Printer\n\nPlease restart.\n",
        "Done.",
    ),
    (
        "outlook chinese header block cuts the history",
        "重启过了，还是卡纸。\n\n" + OUTLOOK_ZH_BLOCK,
        "重启过了，还是卡纸。",
    ),
    (
        "outlook chinese header block with full width colons and cc is cut",
        "已处理。\n\n发件人：IT服务台 <helpdesk@example.com>\n发送时间：2026年11月23日 10:00\n"
        "收件人：张三 <zhangsan@example.com>\n抄送：李四 <lisi@example.com>\n主题：答复：打印机\n\n请重启。\n",
        "已处理。",
    ),
    (
        "outlook bold header names rendered from html are recognised",
        "Yes, that helped.\n\n*From:* IT Helpdesk <helpdesk@example.com>\n*Sent:* Monday, November 23, 2026 10:00\n"
        "*To:* Bob Lee\n*Subject:* RE: Printer\n\nPlease restart.\n",
        "Yes, that helped.",
    ),
    (
        "outlook for mac header block with date instead of sent is cut",
        "Thanks!\nAnna\n\nFrom: IT Helpdesk <helpdesk@example.com>\nDate: Monday, 23 November 2026 at 10:00\n"
        "To: Anna Wu <anna@example.com>\nSubject: Re: VPN\n\nTry again.\n",
        "Thanks!\nAnna",
    ),
    (
        "outlook traditional chinese header block is cut",
        "已經可以了。\n\n寄件者: IT服務台 <helpdesk@example.com>\n寄件日期: 2026年11月23日 上午 10:00\n"
        "收件者: 張三 <zhangsan@example.com>\n主旨: 回覆: 印表機\n\n請重新開機。\n",
        "已經可以了。",
    ),
    (
        "original message separator cuts the history",
        "The error comes back every morning.\n\n-----Original Message-----\n" + OUTLOOK_EN_BLOCK,
        "The error comes back every morning.",
    ),
    (
        "chinese original message separator cuts the history",
        "问题依旧。\n\n-----原始邮件-----\n" + OUTLOOK_ZH_BLOCK,
        "问题依旧。",
    ),
    (
        "qq mail chinese separator cuts the history",
        "好的，我试试\n\n------------------ 原始邮件 ------------------\n发件人: \"IT服务台\"<helpdesk@example.com>;\n"
        "发送时间: 2026年11月23日(星期一) 上午10:00\n收件人: \"张三\"<zhangsan@example.com>;\n主题: 打印机\n\n请重启。\n",
        "好的，我试试",
    ),
    (
        "qq mail separator with literal nbsp entities cuts the history",
        "ok\n\n------------------&nbsp;Original&nbsp;------------------\nFrom: \"IT Helpdesk\"<helpdesk@example.com>;\n"
        "Date: Mon, Nov 23, 2026 10:00 AM\nTo: \"Bob\"<bob@example.com>;\nSubject: Printer\n\nRestart it.\n",
        "ok",
    ),
    (
        "netease 163 chinese attribution with quoted history is dropped",
        "打印机已经恢复了\n\n在 2026-11-23 10:00:00，\"IT服务台\" <helpdesk@example.com> 写道：\n>请重启打印机\n>IT服务台\n",
        "打印机已经恢复了",
    ),
    (
        "netease 163 attribution without quote marks cuts the history",
        "已解决\n\n在 2026-11-23 10:00:00，\"IT服务台\" <helpdesk@example.com> 写道：\n\n请重启打印机\n",
        "已解决",
    ),
    (
        "netease 163 english attribution starting with at is dropped",
        "Fixed.\n\nAt 2026-11-23 10:00:00, \"IT Helpdesk\" <helpdesk@example.com> wrote:\n>Please restart.\n",
        "Fixed.",
    ),
    (
        "netease mail master signature and reply separator are dropped",
        "好的\n\n发自网易邮箱大师\n\n---- 回复的原邮件 ----\n| 发件人 | IT服务台<helpdesk@example.com> |\n"
        "| 日期 | 2026年11月23日 10:00 |\n",
        "好的",
    ),
    (
        "foxmail header block with full width colons is cut",
        "我明天再试。\n\n发件人： IT服务台\n发送时间： 2026-11-23 10:00\n收件人： 张三\n主题： Re: 打印机\n\n请重启。\n",
        "我明天再试。",
    ),
    (
        "thunderbird english attribution without address is dropped",
        "Thanks, that did it.\n\nOn 11/23/26 10:00 AM, IT Helpdesk wrote:\n> Please restart.\n",
        "Thanks, that did it.",
    ),
    (
        "thunderbird chinese attribution is dropped",
        "谢谢\n\n在 2026/11/23 10:00, IT服务台 写道:\n> 请重启。\n",
        "谢谢",
    ),
    (
        "wecom mail signature and separator are dropped",
        "收到，马上处理\n\n发自企业微信\n\n------------------ 原始邮件 ------------------\n"
        "发件人: \"IT服务台\"<helpdesk@example.com>\n发送时间: 2026年11月23日(星期一) 上午10:00\n",
        "收到，马上处理",
    ),
    (
        "dingtalk mail signature and dashed header block are dropped",
        "收到\n\n来自钉钉专属商务邮箱\n------------------------------------------------------------------\n"
        "发件人：IT服务台<helpdesk@example.com>\n发送时间：2026年11月23日(星期一) 10:00\n"
        "收件人：张三<zhangsan@example.com>\n主　题：打印机\n\n请重启。\n",
        "收到",
    ),
    (
        "outlook for ios chinese signature is dropped",
        "我在路上，晚点回复\n\n获取 Outlook for iOS\n" + "________________________________\n" + OUTLOOK_ZH_BLOCK,
        "我在路上，晚点回复",
    ),
    (
        "outlook for android signature is dropped",
        "Will check tomorrow.\n\nGet Outlook for Android\n\n" + OUTLOOK_EN_BLOCK,
        "Will check tomorrow.",
    ),
    (
        "interleaved answers between short quotes are kept",
        "Hi,\n\nOn Mon, Nov 23, 2026 at 10:00 AM IT Helpdesk <helpdesk@example.com> wrote:\n> Which printer?\n"
        "The one on floor 3.\n\n> Since when?\nSince Monday morning.\n",
        "Hi,\n\nThe one on floor 3.\n\nSince Monday morning.",
    ),
    (
        "nested quotes are all removed",
        "Same here.\n\n> > Please restart.\n> Did that, no change.\n>> older text\n",
        "Same here.",
    ),
    (
        "bottom post keeps the answer after the quote",
        "On Mon, Nov 23, 2026 at 10:00 AM IT Helpdesk <helpdesk@example.com> wrote:\n> Please restart.\n\n"
        "Restarted, the printer works again.\n",
        "Restarted, the printer works again.",
    ),
    (
        "standard signature delimiter cuts the signature",
        "The scanner is offline again.\n\n-- \nBob Lee\nFinance, ext. 4411\n",
        "The scanner is offline again.",
    ),
    (
        "two dashes without the space are content not a signature",
        "Restart did not help\n--\nalso the screen flickers\n",
        "Restart did not help\n--\nalso the screen flickers",
    ),
    (
        "french gmail attribution is dropped",
        "Merci, ça marche.\n\nLe lun. 23 nov. 2026 à 10:00, IT Helpdesk <helpdesk@example.com> a écrit :\n> Redémarrez.\n",
        "Merci, ça marche.",
    ),
    (
        "german gmail attribution ending in the address is dropped",
        "Danke, geht wieder.\n\nAm Mo., 23. Nov. 2026 um 10:00 Uhr schrieb IT Helpdesk <helpdesk@example.com>:\n"
        "> Bitte neu starten.\n",
        "Danke, geht wieder.",
    ),
    (
        "japanese gmail attribution ending in the address is dropped",
        "直りました。\n\n2026年11月23日(月) 10:00 IT Helpdesk <helpdesk@example.com>:\n> 再起動してください。\n",
        "直りました。",
    ),
    (
        "a from line inside ordinary text is not a header block",
        "From: the third floor printer, every page comes out blank.\nPlease help.\n",
        "From: the third floor printer, every page comes out blank.\nPlease help.",
    ),
    (
        "a 写道 line without a date is content",
        "管理员在群里写道：\n明天机房停电，请提前关机。\n",
        "管理员在群里写道：\n明天机房停电，请提前关机。",
    ),
    (
        "a mail without quotes keeps its paragraphs and loses trailing blank lines",
        "Hello,\n\n\n\nmy laptop will not boot.\nIt shows a blue screen.\n\n\n",
        "Hello,\n\nmy laptop will not boot.\nIt shows a blue screen.",
    ),
    (
        "crlf line endings are handled",
        "Works.\r\n\r\nOn Mon, Nov 23, 2026 at 10:00 AM IT Helpdesk <helpdesk@example.com> wrote:\r\n> Restart.\r\n",
        "Works.",
    ),
    (
        "a mail that is only quoted keeps the quote without the signature",
        "> 请重启打印机。\n\n发自我的iPhone\n",
        "> 请重启打印机。",
    ),
    (
        "a forward without a note keeps the whole text",
        "-----Original Message-----\n" + OUTLOOK_EN_BLOCK,
        ("-----Original Message-----\n" + OUTLOOK_EN_BLOCK).rstrip("\n"),
    ),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_extract_reply_keeps_only_the_new_text(text: str, expected: str) -> None:
    assert extract_reply(text) == expected


def test_empty_text_gives_empty_reply() -> None:
    assert extract_reply("") == ""
    assert extract_reply("\n\n  \n") == ""


def test_a_mail_of_only_a_device_signature_is_not_emptied() -> None:
    assert extract_reply("Sent from my iPhone\n") == "Sent from my iPhone"


HOSTILE = {
    "a ten megabyte line": "On " + "a" * 10_000_000,
    "a million blank lines": "\n" * 2_000_000,
    "header-like lines": "From: x\nSent: y\n" * 120_000,
    "colon lines": "a:\n" * 660_000,
    "lines of trailing spaces": ("x" + " " * 399 + "\n") * 5_000,
    "lines of dashes": ("-" * 399 + "\n") * 5_000,
    "attributions without quotes": ("On Mon a@b wrote:\n" + "\n" * 7) * 100_000,
    "quote markers": "> q\n" * 500_000,
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_text_is_handled_within_the_per_mail_budget(text: str) -> None:
    started = time.process_time()
    reply = extract_reply(text)
    assert time.process_time() - started < 2.0
    assert len(reply) <= len(text)


def test_a_ten_megabyte_line_comes_back_whole() -> None:
    assert extract_reply("On " + "a" * 10_000_000 + "\n") == "On " + "a" * 10_000_000


def test_markers_past_the_scanned_window_are_not_looked_for() -> None:
    text = "log line\n" * 25_000 + "-----Original Message-----\n" + OUTLOOK_EN_BLOCK
    assert extract_reply(text).endswith("Please restart the printer and tell us if it helps.")


@pytest.mark.parametrize(
    "line",
    ["Sent from my iPhone", "Sent from my iPad", "发自我的iPhone", "发自我的 iPhone", "获取 Outlook for iOS",
     "Get Outlook for iOS", "Get Outlook for Android", "发自网易邮箱大师", "来自钉钉专属商务邮箱", "发自企业微信",
     "发自我的华为手机", "Sent from Mail for Windows", "发送自 Windows 10 版邮件应用"],
)
def test_device_signatures_are_recognised(line: str) -> None:
    assert is_device_signature(line)


@pytest.mark.parametrize("line", ["Sent the file from my laptop yesterday, see attachment", "来自我的同事的问题", ""])
def test_sentences_are_not_device_signatures(line: str) -> None:
    assert not is_device_signature(line)


@pytest.mark.parametrize(
    "text",
    ["谢谢", "多谢！", "thanks", "Thank you!", "收到", "好的 谢谢", "ok thanks 🙏", "Thanks a lot :)", "收到，谢谢！\n\n发自我的iPhone",
     "非常感谢！！", "谢谢！\n张三", "Many thanks,\nBob", "好的，辛苦了", "Got it, thanks.", "OK"],
)
def test_short_thanks_are_recognised(text: str) -> None:
    assert is_short_thanks(text)


@pytest.mark.parametrize(
    "text",
    ["谢谢，还有一个问题：邮箱满了怎么办？", "Thanks, but the VPN still drops every hour.", "收到\n还是不行", "", "🙏",
     "Thanks\nStill Broken", "谢谢 " * 30, "Please reset my password, thanks", "Hi", "您好！"],
)
def test_replies_with_content_are_not_short_thanks(text: str) -> None:
    assert not is_short_thanks(text)


@pytest.mark.parametrize(
    "text",
    ["重启后还是不行", "问题依旧", "仍然不行，打印机还是卡纸", "还没解决", "It is still not working.",
     "The fix doesn’t work on my laptop", "Not fixed, same error.", "试了一下，还是报错"],
)
def test_replies_saying_not_solved_are_recognised(text: str) -> None:
    assert says_not_solved(text)


@pytest.mark.parametrize(
    "text",
    ["已经解决了，不是还没解决", "好了，可以打印了，谢谢", "Thanks, it works now.", "已解决",
     "It's not that it doesn't work, it is just slow."],
)
def test_replies_not_saying_not_solved_are_not_flagged(text: str) -> None:
    assert not says_not_solved(text)
