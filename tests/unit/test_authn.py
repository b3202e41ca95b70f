"""No impostors (issue 6 item 4, RELIABILITY H9): raw spoofed mails are refused, genuine ones accepted."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import pytest

from maildesk.ingest.authn import (
    AgentCheck,
    DomainTrust,
    TrustPolicy,
    make_reply_address,
    parse_authentication_results,
    verify_agent,
)
from maildesk.ingest.parse import parse_mail

SECRET = b"test-secret-not-for-production"
SUPPORT = "support@example.com"
ZHANG, LI = "zhang@example.com", "li@example.com"
PARTNER, SIGNED_ONLY = "partner@partner.test", "ops@dkim-only.test"
AGENTS = frozenset({ZHANG, LI, PARTNER, SIGNED_ONLY})
POLICY = TrustPolicy(
    authserv_ids=("mx.example.com",),
    domains=(DomainTrust("example.com", ("dkim", "spf", "token")), DomainTrust("dkim-only.test", ("dkim",))),
)


def token(address: str) -> str:
    return hmac.new(SECRET, address.lower().encode(), hashlib.sha256).hexdigest()[:24]


def reply_to(address: str) -> str:
    return make_reply_address(SUPPORT, token(address))


OURS = "Authentication-Results: mx.example.com;"
DKIM_OK = f"{OURS} dkim=pass (2048-bit key) header.d=example.com header.i=@example.com header.s=s1 header.b=AbC"
SPF_OK = f"{OURS} spf=pass (mx.example.com: domain of zhang@example.com designates 192.0.2.1) smtp.mailfrom=zhang@example.com"
BOTH_FAIL = f"{OURS} dkim=fail header.d=example.com; spf=fail smtp.mailfrom=zhang@example.com"


def raw(from_: str | None = ZHANG, *headers: str, to: str = SUPPORT, extra: tuple[str, ...] = ()) -> bytes:
    """A mail with ``headers`` on top (as the receiving server prepends them), then the sender's own."""
    lines = [*headers, "Received: from mail.example.com by mx.example.com", *extra]
    if from_ is not None:
        lines.append(f"From: {from_}")
    lines += [f"To: {to}", "Subject: Re: 【技术支持】TS20261123001", "Message-ID: <m1@example.com>",
              "Date: Mon, 23 Nov 2026 10:00:00 +0800", "MIME-Version: 1.0",
              "Content-Type: text/plain; charset=utf-8", "", "#status resolved", ""]
    return "\r\n".join(lines).encode("utf-8")


@dataclass(frozen=True)
class Case:
    name: str
    mail: bytes
    claims: str | None = ZHANG  # the agent who should be told someone tried to act as them


SPOOFS = [
    Case("agent From without any Authentication-Results", raw()),
    Case("Authentication-Results from another authserv-id", raw(ZHANG, "Authentication-Results: mx.evil.test; dkim=pass header.d=example.com")),
    Case("look-alike authserv-id", raw(ZHANG, "Authentication-Results: mx.example.com.evil.test; dkim=pass header.d=example.com")),
    Case("authserv-id hidden in a comment", raw(ZHANG, "Authentication-Results: (mx.example.com) mx.evil.test; dkim=pass header.d=example.com")),
    Case("forged pass with our id below our real fail", raw(ZHANG, BOTH_FAIL, extra=(DKIM_OK,))),
    Case("forged pass with our id below our 'none'", raw(ZHANG, f"{OURS} none", extra=(DKIM_OK, SPF_OK))),
    Case("forged pass below a foreign top header", raw(ZHANG, "Authentication-Results: filter.example.net; dkim=neutral", extra=(DKIM_OK,))),
    Case("pass only in ARC-Authentication-Results", raw(ZHANG, "ARC-Authentication-Results: i=1; mx.example.com; dkim=pass header.d=example.com")),
    Case("pass only in X-Authentication-Results", raw(ZHANG, "X-Authentication-Results: mx.example.com; dkim=pass header.d=example.com")),
    Case("dkim pass for another domain", raw(ZHANG, f"{OURS} dkim=pass header.d=evil.test")),
    Case("dkim pass for a domain ending in ours", raw(ZHANG, f"{OURS} dkim=pass header.d=example.com.evil.test")),
    Case("dkim pass for a subdomain", raw(ZHANG, f"{OURS} dkim=pass header.d=mail.example.com")),
    Case("dkim pass with d of another domain and i of ours", raw(ZHANG, f"{OURS} dkim=pass header.d=evil.test header.i=@example.com")),
    Case("dkim pass only inside a comment", raw(ZHANG, f"{OURS} dkim=fail (dkim=pass header.d=example.com) header.d=example.com")),
    Case("dkim neutral", raw(ZHANG, f"{OURS} dkim=neutral header.d=example.com")),
    Case("dkim temperror", raw(ZHANG, f"{OURS} dkim=temperror header.d=example.com")),
    Case("dkim policy", raw(ZHANG, f"{OURS} dkim=policy header.d=example.com")),
    Case("spf pass for another domain", raw(ZHANG, f"{OURS} spf=pass smtp.mailfrom=mallory@evil.test")),
    Case("spf pass for a domain ending in ours", raw(ZHANG, f"{OURS} spf=pass smtp.mailfrom=bounce@example.com.evil.test")),
    Case("spf softfail", raw(ZHANG, f"{OURS} spf=softfail smtp.mailfrom=zhang@example.com")),
    Case("spf pass for the HELO only", raw(ZHANG, f"{OURS} spf=pass smtp.helo=example.com")),
    Case("two From headers, agent first", raw(ZHANG, DKIM_OK, extra=("From: mallory@evil.test",))),
    Case("two From headers, agent second", raw("mallory@evil.test", f"{OURS} dkim=pass header.d=evil.test", extra=(f"From: {ZHANG}",))),
    Case("two From headers, both the agent", raw(ZHANG, DKIM_OK, extra=(f"From: {ZHANG}",))),
    Case("From with two addresses", raw(f"{ZHANG}, mallory@evil.test", DKIM_OK)),
    Case("From with two addresses, agent second", raw(f"mallory@evil.test, {ZHANG}", f"{OURS} dkim=pass header.d=evil.test")),
    Case("Sender differs from From", raw(ZHANG, DKIM_OK, extra=("Sender: mallory@evil.test",))),
    Case("Sender repeated", raw(ZHANG, DKIM_OK, extra=(f"Sender: {ZHANG}", "Sender: mallory@evil.test"))),
    Case("Sender unreadable", raw(ZHANG, DKIM_OK, extra=("Sender: <<mallory>>",))),
    Case("encoded-word local part", raw("=?utf-8?q?zhang?=@example.com", DKIM_OK)),
    Case("encoded-word local part, base64", raw("=?utf-8?b?emhhbmc=?=@example.com", DKIM_OK)),
    Case("encoded address in the display name", raw("=?utf-8?q?zhang=40example=2Ecom?= <mallory@evil.test>", f"{OURS} dkim=pass header.d=evil.test")),
    Case("CVE-2023-27043: quoted agent address as display name", raw(f'"{ZHANG}" <mallory@evil.test>', f"{OURS} dkim=pass header.d=evil.test")),
    Case("CVE-2023-27043: bare agent address as display name", raw(f"{ZHANG} <mallory@evil.test>", f"{OURS} dkim=pass header.d=evil.test")),
    Case("CVE-2023-27043: attacker address as display name", raw(f"mallory@evil.test <{ZHANG}>", f"{OURS} dkim=pass header.d=evil.test")),
    Case("CVE-2023-27043: quoted local part holding the agent address", raw(f'"{ZHANG}"@evil.test', f"{OURS} dkim=pass header.d=evil.test")),
    Case("CVE-2023-27043: address after the address", raw(f"{ZHANG}@evil.test", f"{OURS} dkim=pass header.d=evil.test")),
    Case("CVE-2023-27043: bracketed agent then a domain", raw(f"<{ZHANG}>@evil.test", f"{OURS} dkim=pass header.d=evil.test")),
    Case("agent address in a comment", raw(f"mallory@evil.test ({ZHANG})", f"{OURS} dkim=pass header.d=evil.test")),
    Case("display name with an escaped quote around the agent", raw(f'"Zhang\\" <{ZHANG}>" <mallory@evil.test>', f"{OURS} dkim=pass header.d=evil.test")),
    Case("group syntax around the agent", raw(f"agents: {ZHANG};", DKIM_OK)),
    Case("full-width look-alike local part", raw("ｚｈａｎｇ@example.com", DKIM_OK)),
    Case("full-width at sign", raw("zhang＠example.com", DKIM_OK)),
    Case("full-width domain", raw("zhang@ｅｘａｍｐｌｅ.com", DKIM_OK)),
    Case("Cyrillic a in the local part", raw("zh\u0430ng@example.com", DKIM_OK)),
    Case("Cyrillic e in the domain", raw("zhang@\u0435xample.com", DKIM_OK)),
    Case("Greek alpha in the local part", raw("zh\u03b1ng@example.com", DKIM_OK)),
    Case("NUL byte in the address", raw(f"{ZHANG}\x00@evil.test", DKIM_OK)),
    Case("quoted local part", raw('"zhang"@example.com', DKIM_OK)),
    Case("token of another agent", raw(ZHANG, to=reply_to(LI))),
    Case("token with a wrong HMAC", raw(ZHANG, to=make_reply_address(SUPPORT, "0123456789abcdef01234567"))),
    Case("token cut short", raw(ZHANG, to=f"support+{token(ZHANG)[:12]}@example.com")),
    Case("empty token", raw(ZHANG, to="support+@example.com")),
    Case("right token at another mailbox", raw(ZHANG, to=f"helpdesk+{token(ZHANG)}@example.com")),
    Case("right token at another domain", raw(ZHANG, to=f"support+{token(ZHANG)}@evil.test")),
    Case("token only in Reply-To", raw(ZHANG, extra=(f"Reply-To: {reply_to(ZHANG)}",))),
    Case("token only in a display name", raw(ZHANG, to=f'"{reply_to(ZHANG)}" <{SUPPORT}>')),
    Case("wrong token in Delivered-To", raw(ZHANG, extra=(f"Delivered-To: {reply_to(LI)}",))),
    Case("token for a domain that trusts only dkim", raw(SIGNED_ONLY, to=reply_to(SIGNED_ONLY)), claims=SIGNED_ONLY),
    Case("dkim pass for an unlisted domain (token only)", raw(PARTNER, f"{OURS} dkim=pass header.d=partner.test"), claims=PARTNER),
    Case("no From, agent as Sender", raw(None, DKIM_OK, extra=(f"Sender: {ZHANG}",)), claims=None),
]

GENUINE = [
    ("dkim pass aligned", raw(ZHANG, DKIM_OK), "dkim"),
    ("dkim pass by header.i only", raw(ZHANG, f"{OURS} dkim=pass header.i=@example.com"), "dkim"),
    ("dkim pass with a quoted domain and a version", raw(ZHANG, 'Authentication-Results: mx.example.com 1; dkim=pass (good) header.d="example.com"'), "dkim"),
    ("dkim pass in a folded header", raw(ZHANG, f"{OURS}\r\n\tspf=none smtp.mailfrom=example.com;\r\n\tdkim=pass\r\n header.d=example.com"), "dkim"),
    ("uppercase authserv-id and domain", raw("Zhang <zhang@EXAMPLE.COM>", "Authentication-Results: MX.Example.com; dkim=pass header.d=Example.COM"), "dkim"),
    ("Chinese display name", raw("=?utf-8?b?5byg5bel?= <zhang@example.com>", DKIM_OK), "dkim"),
    ("display name in a comment", raw("zhang@example.com (张工)", DKIM_OK), "dkim"),
    ("folded encoded display name", raw("=?utf-8?b?5byg5bel?=\r\n <zhang@example.com>", DKIM_OK), "dkim"),
    ("GB2312 display name", raw("=?gb2312?b?1cW5pA==?= <zhang@example.com>", DKIM_OK), "dkim"),
    ("raw UTF-8 display name", raw("张工 <zhang@example.com>", DKIM_OK), "dkim"),
    ("quoted display name with a comma and parentheses", raw('"Zhang, Wei (IT)" <zhang@example.com>', SPF_OK), "spf"),
    ("Sender equal to From", raw(ZHANG, DKIM_OK, extra=(f"Sender: {ZHANG}",)), "dkim"),
    ("forged fail below our pass", raw(ZHANG, DKIM_OK, extra=(BOTH_FAIL,)), "dkim"),
    ("spf pass aligned", raw(ZHANG, SPF_OK), "spf"),
    ("spf pass with a bare domain, dkim fail", raw(ZHANG, f"{OURS} dkim=fail header.d=example.com; spf=pass smtp.mailfrom=example.com"), "spf"),
    ("token in To", raw(ZHANG, to=reply_to(ZHANG)), "token"),
    ("token in Cc", raw(ZHANG, extra=(f"Cc: 王工 <ops-lead@example.com>, {reply_to(ZHANG)}",)), "token"),
    ("token in Delivered-To", raw(ZHANG, extra=(f"Delivered-To: {reply_to(ZHANG)}",)), "token"),
    ("token in X-Original-To", raw(ZHANG, extra=(f"X-Original-To: {reply_to(ZHANG)}",)), "token"),
    ("token with an upper-cased mailbox", raw(ZHANG, to=reply_to(ZHANG).upper()), "token"),
    ("token for a domain that is not listed", raw(PARTNER, to=reply_to(PARTNER)), "token"),
    ("dkim for a domain that trusts only dkim", raw(SIGNED_ONLY, f"{OURS} dkim=pass header.d=dkim-only.test"), "dkim"),
]


def check(mail: bytes) -> AgentCheck:
    return verify_agent(parse_mail(mail), AGENTS, POLICY, reply_token=token, support_address=SUPPORT)


def test_the_corpus_is_as_large_as_reliability_h9_asks() -> None:
    assert len(SPOOFS) >= 40 and len(GENUINE) >= 10


@pytest.mark.parametrize("case", SPOOFS, ids=[c.name for c in SPOOFS])
def test_no_spoof_variant_is_accepted_as_an_agent(case: Case) -> None:
    verdict = check(case.mail)
    assert not verdict.is_agent and verdict.method is None, verdict
    assert verdict.reason


@pytest.mark.parametrize("case", SPOOFS, ids=[c.name for c in SPOOFS])
def test_the_agent_a_spoof_aimed_at_is_named_so_they_can_be_told(case: Case) -> None:
    verdict = check(case.mail)
    assert verdict.claimed == (case.claims is not None), verdict
    assert verdict.address == case.claims


@pytest.mark.parametrize(("name", "mail", "method"), GENUINE, ids=[g[0] for g in GENUINE])
def test_every_genuine_agent_mail_is_accepted_with_its_proof(name: str, mail: bytes, method: str) -> None:
    verdict = check(mail)
    assert verdict.is_agent, verdict
    assert verdict.method == method and not verdict.claimed
    assert verdict.address in AGENTS


def test_a_requester_is_neither_an_agent_nor_a_claim() -> None:
    verdict = check(raw("Wang Fang <wang.fang@example.com>", DKIM_OK))
    assert (verdict.is_agent, verdict.claimed, verdict.address) == (False, False, None)


def test_an_unauthenticated_agent_mail_says_what_was_tried() -> None:
    verdict = check(raw(ZHANG, BOTH_FAIL))
    assert verdict.claimed and verdict.address == ZHANG
    assert "dkim" in verdict.reason and "spf" in verdict.reason and "token" in verdict.reason


def test_unlisted_domains_trust_only_the_reply_token() -> None:
    assert POLICY.methods_for("partner.test") == ("token",)
    assert POLICY.methods_for("EXAMPLE.com") == ("dkim", "spf", "token")


def test_a_trust_rule_refuses_unknown_methods() -> None:
    with pytest.raises(ValueError, match="methods must be some of"):
        DomainTrust("example.com", ("dmarc",))


def test_the_reply_address_is_a_plus_address_of_the_support_mailbox() -> None:
    assert make_reply_address("Support@Example.COM", "abcDEF123456") == "Support+abcDEF123456@example.com"
    for bad_token in ("", "short", "has space in it", "a@b.example.com", "x" * 200):
        with pytest.raises(ValueError):
            make_reply_address(SUPPORT, bad_token)
    with pytest.raises(ValueError):
        make_reply_address("support+x@example.com", "abcdef123456")


def test_authentication_results_are_read_with_comments_quotes_and_several_results() -> None:
    server, results = parse_authentication_results(
        'mx.example.com (Postfix) 1; dkim=pass (1024-bit key; unprotected) header.d=example.com '
        'header.s="s;1"; spf = pass (sender is ok) smtp.mailfrom=a@example.com; arc=none'
    )
    assert server == "mx.example.com"
    assert [(r.method, r.result) for r in results] == [("dkim", "pass"), ("spf", "pass"), ("arc", "none")]
    assert results[0].get("header.s") == "s;1" and results[1].get("smtp.mailfrom") == "a@example.com"


def test_an_authentication_results_without_results_reads_as_none() -> None:
    assert parse_authentication_results("mx.example.com; none") == ("mx.example.com", ())
