"""Decide whether a mail really comes from an agent: a From address proves nothing.

Pure.  ``verify_agent`` first refuses every From that could be read two ways
(two From headers, two addresses, a ``Sender`` that differs, encoded words,
non-ASCII or look-alike characters, an address hidden in the display name),
then asks for proof allowed for the From domain by the ``TrustPolicy``:

``dkim``   the topmost ``Authentication-Results`` header, written by one of our
           ``authserv_ids``, says ``dkim=pass`` with ``header.d`` (or
           ``header.i``) equal to the From domain;
``spf``    the same header says ``spf=pass`` with ``smtp.mailfrom`` at the From domain;
``token``  the mail went to ``support+<token>@…``, the agent's secret reply
           address, and the token is the one maildesk made for that agent.

Only the topmost ``Authentication-Results`` counts: our server prepends its
own, so a header the sender forged sits below it.  If the sender forged one
with our authserv-id, our server's still sits above it.  The receiving server
must therefore write its DKIM and SPF results into one header.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from maildesk.domain import Address, ParsedMail
from maildesk.ingest.headers import parse_addresses

METHODS = ("dkim", "spf", "token")
DEFAULT_METHODS = ("token",)
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,}$")
_ADDR_LIKE = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
_RECIPIENT_HEADERS = ("delivered-to", "x-original-to")
# Latin look-alikes in Cyrillic and Greek, only to say which agent a spoof aimed at.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁԛԝӏвкмнтαεοριτυνκχ",
    "aeopcyxijsdqwlbkmhtaeopituvkx",
)


@dataclass(frozen=True)
class DomainTrust:
    """Which proofs count for mail from ``domain``."""

    domain: str
    methods: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"trust for {self.domain}: methods must be some of {', '.join(METHODS)}, not {list(self.methods)}")
        object.__setattr__(self, "domain", self.domain.strip().lower())


@dataclass(frozen=True)
class TrustPolicy:
    """Our receiving server's authserv-ids and what is trusted per From domain."""

    authserv_ids: tuple[str, ...] = ()
    domains: tuple[DomainTrust, ...] = ()

    def methods_for(self, domain: str) -> tuple[str, ...]:
        """The proofs accepted for ``domain``; only the reply token when it is not listed."""
        wanted = domain.lower()
        found = next((d for d in self.domains if d.domain == wanted), None)
        return found.methods if found else DEFAULT_METHODS

    def trusts_server(self, authserv_id: str) -> bool:
        return authserv_id.lower() in {a.lower() for a in self.authserv_ids}


@dataclass(frozen=True)
class AgentCheck:
    """The verdict on one mail.

    ``address`` is the agent's address when ``is_agent``; when ``claimed`` it is
    the agent someone tried to act as (by From, look-alike or display name),
    who should be told.  ``method`` is the proof that passed.
    """

    is_agent: bool
    address: str | None
    method: str | None
    reason: str
    claimed: bool = False


@dataclass(frozen=True)
class ResultInfo:
    """One ``method=result`` of an Authentication-Results header with its properties."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        return next((v for k, v in self.properties if k == name), None)


def make_reply_address(support_address: str, token: str) -> str:
    """The agent's secret reply address ``local+token@domain`` of the support address."""
    local, at, domain = support_address.strip().rpartition("@")
    if not at or not local or not domain or "+" in local:
        raise ValueError(f"support address {support_address!r} must be local@domain without '+'")
    if not _TOKEN.match(token):
        raise ValueError("a reply token must be 8–128 characters of A–Z, a–z, 0–9, '-' or '_'")
    return f"{local}+{token}@{domain.lower()}"


def verify_agent(
    mail: ParsedMail,
    agent_addresses: frozenset[str],
    policy: TrustPolicy,
    *,
    reply_token: Callable[[str], str],
    support_address: str,
) -> AgentCheck:
    """Whether ``mail`` is from an agent, by which proof, and whether an agent was impersonated."""
    agents = frozenset(a.lower() for a in agent_addresses)
    problem, address = _check_from(mail)
    if problem is not None:
        target = _impersonated(mail, agents)
        return AgentCheck(False, target, None, problem, claimed=target is not None)
    assert address is not None
    key = address.key
    if key not in agents:
        return AgentCheck(False, None, None, f"{key} is not in the agent directory")
    tried = []
    for method in policy.methods_for(address.domain):
        passed, why = _prove(method, mail, key, policy, reply_token, support_address)
        if passed:
            return AgentCheck(True, key, method, why)
        tried.append(why)
    return AgentCheck(False, key, None, "not authenticated: " + "; ".join(tried), claimed=True)


# --- the From must be readable one way only ---------------------------------------


def _check_from(mail: ParsedMail) -> tuple[str | None, Address | None]:
    """A reason the From is ambiguous or odd, or (None, the address)."""
    values = mail.header_all("from")
    if len(values) != 1:
        return f"{len(values)} From headers", None
    value, address = values[0], mail.from_addr
    if address is None:
        return "the From address is unreadable", None
    if value.count("@") != 1 or len(_ADDR_LIKE.findall(value)) != 1:
        return "the From header holds more than one address (or one in its display name)", None
    if re.match(r'^[^<"]*:', value):
        return "the From header uses group syntax", None
    local, _, domain = address.addr.rpartition("@")
    if "=?" in address.addr or _ADDR_LIKE.findall(value)[0].lower() != address.key:
        return "the From address contains an encoded word", None
    if unicodedata.normalize("NFKC", address.addr) != address.addr or not address.addr.isascii():
        return "the From address has non-ASCII or look-alike characters", None
    if not _LOCAL.match(local) or not _DOMAIN.match(domain):
        return "the From address has odd characters", None
    return _check_sender(mail, address), address


def _check_sender(mail: ParsedMail, address: Address) -> str | None:
    senders = mail.header_all("sender")
    if not senders:
        return None
    if len(senders) > 1 or mail.sender is None or senders[0].count("@") != 1:
        return "the Sender header is repeated or unreadable"
    if mail.sender.key != address.key:
        return f"Sender {mail.sender.key} differs from From {address.key}"
    return None


def _skeleton(text: str) -> str:
    """A form where look-alikes and quoting collapse (``"ｚhаng"@…`` → ``zhang@…``)."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_CONFUSABLES).replace('"', "").replace("\\", "")


def _impersonated(mail: ParsedMail, agents: frozenset[str]) -> str | None:
    """The agent a refused From points at, through its address, a look-alike, or its display name."""
    skeletons = {_skeleton(a): a for a in agents}
    texts = [*mail.header_all("from"), *(a.addr for a in [mail.from_addr] if a)]
    for text in texts:
        for found in _ADDR_LIKE.findall(_skeleton(text)):
            if found in skeletons:
                return skeletons[found]
    return None


# --- proofs --------------------------------------------------------------------------


def _prove(
    method: str, mail: ParsedMail, address: str, policy: TrustPolicy,
    reply_token: Callable[[str], str], support_address: str,
) -> tuple[bool, str]:
    if method == "token":
        return _prove_token(mail, address, reply_token, support_address)
    header = mail.header("authentication-results")
    if header is None:
        return False, f"{method}: no Authentication-Results header"
    server, results = parse_authentication_results(header)
    if not policy.trusts_server(server):
        return False, f"{method}: the topmost Authentication-Results is from {server!r}, not our server"
    domain = address.rpartition("@")[2]
    for info in results:
        if info.method == method and info.result == "pass" and domain in _aligned_domains(info):
            return True, f"{method}=pass for {domain} by {server}"
    return False, f"{method}: no pass for {domain} from {server}"


def _aligned_domains(info: ResultInfo) -> set[str]:
    """The domain a dkim result (``header.d``, else ``header.i``) or an spf result (``smtp.mailfrom``) vouches for."""
    if info.method == "dkim":
        value = info.get("header.d") or info.get("header.i")
    else:
        value = info.get("smtp.mailfrom")
    return {value.rpartition("@")[2].strip().lower().rstrip(".")} if value else set()


def _prove_token(
    mail: ParsedMail, address: str, reply_token: Callable[[str], str], support_address: str
) -> tuple[bool, str]:
    base_local, _, base_domain = support_address.strip().lower().rpartition("@")
    expected = reply_token(address).lower().encode("utf-8")
    offered = False
    for recipient in _recipients(mail):
        local, _, domain = recipient.lower().rpartition("@")
        head, plus, token = local.partition("+")
        if not plus or head != base_local or domain != base_domain:
            continue
        offered = True
        if hmac.compare_digest(token.encode("utf-8"), expected):
            return True, f"sent to the agent's reply address {base_local}+…@{base_domain}"
    return False, "token: " + ("the reply token is not this agent's" if offered else "no reply address among the recipients")


def _recipients(mail: ParsedMail) -> Iterable[str]:
    for found in (*mail.to, *mail.cc):
        yield found.addr
    for name in _RECIPIENT_HEADERS:
        for value in mail.header_all(name):
            yield from (a.addr for a in parse_addresses(value)[0])


# --- RFC 8601 ------------------------------------------------------------------------


def parse_authentication_results(value: str) -> tuple[str, tuple[ResultInfo, ...]]:
    """The authserv-id and the results of one ``Authentication-Results`` value, read tolerantly.

    Comments in parentheses are dropped, quoted values unquoted, names
    lower-cased; a result without ``method=result`` is skipped.
    """
    parts = _split_outside_quotes(_strip_comments(value), ";")
    head = _tokens(parts[0]) if parts else []
    server = head[0].strip('"') if head else ""
    results = []
    for part in parts[1:]:
        pairs = [t.split("=", 1) for t in _tokens(re.sub(r"\s*=\s*", "=", part)) if "=" in t]
        if not pairs:
            continue
        method, result = pairs[0][0].split("/", 1)[0].lower(), pairs[0][1].strip('"').lower()
        props = tuple((k.lower(), v.strip('"')) for k, v in pairs[1:])
        results.append(ResultInfo(method, result, props))
    return server, tuple(results)


def _strip_comments(value: str) -> str:
    out, depth, quoted, escaped = [], 0, False, False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
            continue
        elif char == '"' and not depth:
            quoted = not quoted
        elif char == "(" and not quoted:
            depth += 1
            continue
        elif char == ")" and not quoted and depth:
            depth -= 1
            out.append(" ")
            continue
        if not depth:
            out.append(char)
    return "".join(out)


def _split_outside_quotes(value: str, separator: str) -> list[str]:
    return re.findall(r'(?:"[^"]*"|[^"' + re.escape(separator) + r"])+", value) or [""]


def _tokens(text: str) -> list[str]:
    return re.findall(r'(?:"[^"]*"|[^\s"])+', text)
