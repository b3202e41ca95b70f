"""Command lines at the top of an agent's mail (issue 6, item 3)."""

from __future__ import annotations

import pytest

from maildesk.ingest.commands import Command, extract_commands


def only(text: str) -> Command:
    block = extract_commands(text)
    assert not block.errors, block.errors
    assert len(block.commands) == 1, block.commands
    return block.commands[0]


@pytest.mark.parametrize(("line", "name", "argument"), [
    ("#status resolved", "status", "resolved"),
    ("#status pending", "status", "pending"),
    ("#status open", "status", "open"),
    ("#状态 已解决", "status", "resolved"),
    ("#状态 解决", "status", "resolved"),
    ("#状态 已处理", "status", "resolved"),
    ("#状态 待用户", "status", "pending"),
    ("#状态 等待用户", "status", "pending"),
    ("#状态 挂起", "status", "pending"),
    ("#状态 处理中", "status", "open"),
    ("#状态 打开", "status", "open"),
    ("#priority urgent", "priority", "urgent"),
    ("#priority high", "priority", "high"),
    ("#priority medium", "priority", "medium"),
    ("#priority low", "priority", "low"),
    ("#优先级 紧急", "priority", "urgent"),
    ("#优先级 高", "priority", "high"),
    ("#优先级 中", "priority", "medium"),
    ("#优先级 低", "priority", "low"),
    ("#assign 张工", "assign", "张工"),
    ("#指派 zhang-wei", "assign", "zhang-wei"),
    ("#group network", "group", "network"),
    ("#转组 网络组", "group", "网络组"),
    ("#note", "note", ""),
    ("#备注", "note", ""),
    ("#cc boss@Example.COM", "cc", "boss@example.com"),
    ("#抄送 <boss@example.com>", "cc", "boss@example.com"),
    ("#cc 王芳 <wang.fang@Example.com>", "cc", "wang.fang@example.com"),
    ("#merge TS20231025001", "merge", "TS20231025001"),
    ("#合并 【技术支持】TS20231025001", "merge", "TS20231025001"),
    ("#kb", "kb", ""),
    ("#知识库", "kb", ""),
    ("#escalate needs a DBA, restore failed twice", "escalate", "needs a DBA, restore failed twice"),
    ("#升级 需要数据库管理员", "escalate", "需要数据库管理员"),
    ("#escalate", "escalate", ""),
])
def test_every_command_is_read_in_english_and_chinese(line: str, name: str, argument: str) -> None:
    command = only(line + "\n\nThanks.")
    assert (command.name, command.argument, command.line, command.raw) == (name, argument, 1, line)


@pytest.mark.parametrize(("line", "name", "argument"), [
    ("＃ｓｔａｔｕｓ　ｒｅｓｏｌｖｅｄ", "status", "resolved"),
    ("＃状态　已解决", "status", "resolved"),
    ("#STATUS Resolved", "status", "resolved"),
    ("#Priority URGENT", "priority", "urgent"),
    ("＃优先级：紧急", "priority", "urgent"),
    ("#状态:待用户", "status", "pending"),
    ("#状态已解决", "status", "resolved"),
    ("#指派张工", "assign", "张工"),
    ("#合并ＴＳ２０２３１０２５００１", "merge", "TS20231025001"),
    ("  #kb", "kb", ""),
])
def test_full_width_case_colons_and_glued_chinese_values_are_accepted(line: str, name: str, argument: str) -> None:
    command = only(line)
    assert (command.name, command.argument) == (name, argument)


def test_a_priority_outside_the_list_names_the_line_and_the_choices() -> None:
    block = extract_commands("#status open\n#priority 特急\nPlease restart.")
    assert [(e.line, e.raw) for e in block.errors] == [(2, "#priority 特急")]
    assert block.errors[0].problem == "#priority needs one of urgent, high, medium, low (紧急, 高, 中, 低), got '特急'"


def test_an_unknown_command_is_an_error_with_its_line() -> None:
    block = extract_commands("\n\n#foo bar\nbody")
    assert block.errors[0].line == 3
    assert block.errors[0].problem.startswith("unknown command #foo")


@pytest.mark.parametrize(("line", "problem"), [
    ("#cc", "#cc needs an e-mail address"),
    ("#cc boss", "#cc needs an e-mail address, got 'boss'"),
    ("#merge", "#merge needs a ticket number like TS20231025001"),
    ("#merge 12345", "#merge needs a ticket number like TS20231025001, got '12345'"),
    ("#assign", "#assign needs a person's name, id or address"),
    ("#转组", "#group needs a group name or id"),
    ("#status", "#status needs one of resolved, pending, open (已解决, 待用户, 处理中)"),
    ("#状态 关闭", "#status needs one of resolved, pending, open (已解决, 待用户, 处理中), got '关闭'"),
])
def test_missing_or_invalid_arguments_are_errors(line: str, problem: str) -> None:
    block = extract_commands(line)
    assert block.commands == ()
    assert [(e.line, e.problem) for e in block.errors] == [(1, problem)]


def test_two_different_statuses_conflict_and_the_later_line_is_named() -> None:
    block = extract_commands("#status resolved\n#状态 待用户\n")
    assert [e.line for e in block.errors] == [2]
    assert "given twice" in block.errors[0].problem


def test_a_repeated_identical_command_is_kept_once() -> None:
    block = extract_commands("#status resolved\n#状态 已解决\n#kb\n#知识库")
    assert not block.errors
    assert [(c.name, c.argument) for c in block.commands] == [("status", "resolved"), ("kb", "")]


def test_cc_and_merge_may_list_several_values_on_one_line() -> None:
    block = extract_commands("#cc a@example.com, b@example.com\n#merge TS20231025001 TS20231025002")
    assert [(c.name, c.argument, c.line) for c in block.commands] == [
        ("cc", "a@example.com", 1), ("cc", "b@example.com", 1),
        ("merge", "TS20231025001", 2), ("merge", "TS20231025002", 2),
    ]


def test_the_body_is_the_text_without_the_command_lines() -> None:
    text = "\n#status resolved\n#note\n\n您好，\n\n打印机驱动已重新安装。\n"
    block = extract_commands(text)
    assert block.body == "您好，\n\n打印机驱动已重新安装。\n"
    assert [c.line for c in block.commands] == [2, 3]


def test_a_mail_with_only_commands_has_an_empty_body() -> None:
    assert extract_commands("#status resolved\n#kb\n").body == ""


def test_a_markdown_heading_is_not_a_command() -> None:
    block = extract_commands("# Steps\n1. Restart\n")
    assert block.commands == () and block.errors == ()
    assert block.body == "# Steps\n1. Restart\n"


def test_the_block_ends_at_the_first_line_that_is_not_a_command() -> None:
    block = extract_commands("#priority high\nHello,\n#status resolved\n")
    assert [c.name for c in block.commands] == ["priority"]
    assert block.body == "Hello,\n#status resolved\n"


def test_blank_lines_inside_the_block_do_not_end_it() -> None:
    block = extract_commands("#priority high\n\n#note\n\nInternal: vendor ticket 4711.")
    assert [c.name for c in block.commands] == ["priority", "note"]
    assert block.body == "Internal: vendor ticket 4711."


def test_a_number_after_the_hash_is_not_a_command() -> None:
    block = extract_commands("#1 restart the router\n#2 wait")
    assert block.commands == () and block.errors == ()


def test_text_without_commands_is_returned_unchanged() -> None:
    text = "\n\nHi,\nit works again.\n"
    block = extract_commands(text)
    assert (block.commands, block.errors, block.body) == ((), (), text)


def test_error_lines_are_removed_from_the_body_too() -> None:
    block = extract_commands("#foo\r\n#status resolved\r\nDone.\r\n")
    assert block.body == "Done.\r\n"
    assert block.errors[0].raw == "#foo"
    assert block.first("status") == Command("status", "resolved", 2, "#status resolved")
