"""A throwaway certificate authority for the TLS variants of the dev stack (uses the ``openssl`` CLI).

``TestCA(dir)`` creates (or reuses) ``dir/ca.crt`` + ``dir/ca.key``; :meth:`TestCA.issue` signs
certificates for given names, also already expired ones for the hostile TLS tests; :func:`self_signed`
makes a certificate no CA vouches for.  :meth:`TestCA.client_context` is the verifying client context
that trusts only this CA.
"""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import subprocess
from collections.abc import Sequence
from pathlib import Path

_KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

_CA_CONFIG = """\
[ ca ]
default_ca = devstack
[ devstack ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
"""


class TlsSetupError(RuntimeError):
    """openssl failed while making test certificates; the message carries its stderr."""


def _openssl(*args: str, cwd: Path | None = None) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise TlsSetupError("The openssl command is not installed; TLS variants need it")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise TlsSetupError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _san(names: Sequence[str]) -> str:
    entries = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            entries.append(f"IP:{name}")
        except ValueError:
            entries.append(f"DNS:{name}")
    return ",".join(entries)


class TestCA:
    """A CA kept in ``directory``; reused when its files already exist."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cert_path = self.directory / "ca.crt"
        self.key_path = self.directory / "ca.key"
        if not (self.cert_path.exists() and self.key_path.exists()):
            self._create()

    def _create(self) -> None:
        db = self.directory / "ca-db"
        (db / "newcerts").mkdir(parents=True, exist_ok=True)
        (db / "index.txt").write_text("")
        (db / "serial").write_text("1000\n")
        (db / "ca.cnf").write_text(_CA_CONFIG.format(dir=db))
        _openssl("req", "-x509", *_KEY_ARGS, "-keyout", str(self.key_path), "-out", str(self.cert_path),
                 "-days", "3650", "-subj", "/CN=devstack test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.key_path.chmod(0o644)  # throwaway key; dovecot's config process and tests read it

    def issue(self, name: str, out_dir: str | Path, names: Sequence[str] = ("localhost", "127.0.0.1"),
              *, days: int = 30, expired: bool = False, file_stem: str | None = None) -> tuple[Path, Path]:
        """Sign a server certificate for ``names``; returns ``(cert_path, key_path)``.

        ``expired=True`` makes one valid only on 2020-01-01 (for the "expired certificate" tests).
        """
        if not names:
            raise ValueError("A certificate needs at least one name")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = file_stem or name
        cert, key, csr, ext = (out / f"{stem}.crt", out / f"{stem}.key", out / f"{stem}.csr", out / f"{stem}.ext")
        _openssl("req", "-new", *_KEY_ARGS, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
        ext.write_text(f"subjectAltName = {_san(names)}\nbasicConstraints = CA:FALSE\n"
                       "keyUsage = critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage = serverAuth\n")
        dates = (["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"] if expired
                 else ["-days", str(days)])
        db = self.directory / "ca-db"
        _openssl("ca", "-batch", "-notext", "-config", str(db / "ca.cnf"), "-cert", str(self.cert_path),
                 "-keyfile", str(self.key_path), "-in", str(csr), "-out", str(cert), "-extfile", str(ext),
                 *dates)
        key.chmod(0o644)
        csr.unlink()
        ext.unlink()
        return cert, key

    def issue_server(self, name: str, out_dir: str | Path) -> tuple[Path, Path]:
        """The ``server.crt``/``server.key`` pair used by Dovecot and the SMTP sink (localhost, 127.0.0.1)."""
        out = Path(out_dir)
        cert, key = out / "server.crt", out / "server.key"
        if cert.exists() and key.exists():
            return cert, key
        return self.issue(name, out, ("localhost", "127.0.0.1"), file_stem="server")

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context (hostname check on) that trusts only this CA."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def server_context(self, out_dir: str | Path) -> ssl.SSLContext:
        """A server context with the ``server.crt`` issued by this CA into ``out_dir``."""
        cert, key = self.issue_server("localhost", out_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        return context


def self_signed(name: str, out_dir: str | Path, names: Sequence[str] = ("localhost", "127.0.0.1")
                ) -> tuple[Path, Path]:
    """A self-signed certificate for ``names`` that no CA vouches for; returns ``(cert, key)``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cert, key = out / f"{name}-selfsigned.crt", out / f"{name}-selfsigned.key"
    _openssl("req", "-x509", *_KEY_ARGS, "-keyout", str(key), "-out", str(cert), "-days", "30",
             "-subj", f"/CN={name}", "-addext", f"subjectAltName={_san(names)}")
    key.chmod(0o644)
    return cert, key
