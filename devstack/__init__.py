"""Local mail stack for integration tests, the demo and the benchmarks.

Everything here runs on 127.0.0.1 only and is started and stopped by its owner:

- :class:`devstack.dovecot.Dovecot` — a throwaway Dovecot IMAP server from its own config;
- :class:`devstack.smtpsink.SmtpSink` — an aiosmtpd server that keeps what it receives and can be scripted
  to fail;
- :class:`devstack.tcpproxy.TcpProxy` — a TCP proxy with toxics (cut, reset, stall, latency);
- :class:`devstack.mailstack.MailStack` — Dovecot + sink together, used by ``python -m devstack up``;
- :class:`devstack.tlsca.TestCA` — a throwaway certificate authority for the TLS variants.

Nothing in the ``maildesk`` package imports this package.
"""
