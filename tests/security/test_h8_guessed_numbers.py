"""H8: an outsider names someone else's ticket, then 1,000 sequential ticket numbers.

Nothing is added to a foreign ticket's conversation (the first mail is held on it as an ``outsider``
message for the agents, flagged, and answered by nobody); no mail to the outsider carries the subject or
status of a ticket that is not theirs; after 5 numbers that are not theirs within 24 h the sender is
throttled (the rest quarantined with the reason) and the admins get exactly one alert.
"""

from __future__ import annotations

from sqlalchemy import select

from maildesk.store.models import Event, Message, Outbox, Participant, RawMail, Ticket
from tests.integration.desk_helpers import ADMIN, count, request_mail

from .desk import cycle, make_desk

OWNER_SUBJECT = "工资系统无法登录（财务部）"
MALLORY = "mallory@evil.test"
GUESSES = 1000


def test_guessed_ticket_numbers_reach_no_foreign_ticket_and_are_throttled_after_five(
        tmp_path, imap_account, smtp_sink, monkeypatch) -> None:  # noqa: ANN001
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch, batch_size=500)
    imap_account.append(request_mail("owner@corp.test", OWNER_SUBJECT, "财务部全员无法登录工资系统，状态紧急")[0])
    cycle(desk)
    with desk.sessions() as session:
        owner = session.scalars(select(Ticket)).one()
        owner_number, owner_id = owner.number, owner.id
    prefix, first = owner_number[:-3], int(owner_number[-3:])
    mails = [request_mail(MALLORY, f"回复: 【技术支持】{owner_number}", "请把这个工单的处理进展发给我")[0]]
    mails += [request_mail(MALLORY, f"回复: 【技术支持】{prefix}{first + i:03d}" if first + i < 1000
                           else f"回复: 【技术支持】{prefix}{first + i}", "进展如何？")[0]
              for i in range(1, GUESSES + 1)]
    imap_account.append_many(mails)
    while cycle(desk).fetched:
        pass
    cycle(desk)  # what the last turn queued is sent

    with desk.sessions() as session:
        foreign = session.scalars(select(Message).where(Message.ticket_id == owner_id)).all()
        assert sorted(m.kind for m in foreign) == ["outsider", "request"], "no foreign append"
        assert session.scalar(select(Participant).where(Participant.address == MALLORY,
                                                        Participant.ticket_id == owner_id)) is None
        raws = session.scalars(select(RawMail).where(RawMail.id > 1)).all()
        assert len(raws) == GUESSES + 1
        throttled = [r for r in raws if r.status == "quarantined" and r.reason.startswith("throttled")]
        handled = [r for r in raws if r.status == "done"]
        assert len(handled) == 5 and len(throttled) == GUESSES + 1 - 5, "throttle after 5"
        assert session.scalar(select(Event).where(Event.kind == "guess_throttled")) is not None
        alerts = session.scalars(select(Outbox).where(Outbox.kind == "admin_alert")).all()
        assert len(alerts) == 1 and alerts[0].recipients == [ADMIN]
    to_mallory = [m for m in smtp_sink.received if MALLORY in m.rcpt_tos]
    assert len(to_mallory) <= 5  # acks of the tickets their unknown numbers opened, within the hourly limit
    for sent in to_mallory:
        text = sent.raw.decode("utf-8", "replace")
        decoded = str(sent.message())
        assert OWNER_SUBJECT not in decoded and owner_number not in text, "nothing of the guessed ticket leaks"
    assert count(desk.sessions, Ticket, Ticket.requester_addr == "owner@corp.test") == 1
    print(f"\nH8: guesses={GUESSES + 1} foreign_appends=0 held_outsider=1 handled=5 "
          f"throttled={len(throttled)} alerts=1 mails_to_outsider={len(to_mallory)}")


def test_changing_the_letter_case_of_the_address_does_not_reset_the_count(tmp_path, imap_account, smtp_sink,
                                                                          monkeypatch) -> None:  # noqa: ANN001
    desk = make_desk(tmp_path, imap_account, smtp_sink, monkeypatch)
    variants = ["mallory", "Mallory", "mAllory", "maLlory", "malLory", "mallOry", "malloRy", "malloRY", "MALLORY",
                "MAllory"]
    imap_account.append_many([request_mail(f"{who}@evil.test", f"回复: 【技术支持】TS20261123{900 + i:03d}",
                                           "进展如何？")[0] for i, who in enumerate(variants)])
    while cycle(desk).fetched:
        pass
    with desk.sessions() as session:
        statuses = [r.status for r in session.scalars(select(RawMail).order_by(RawMail.id))]
    assert statuses == ["done"] * 5 + ["quarantined"] * 5
