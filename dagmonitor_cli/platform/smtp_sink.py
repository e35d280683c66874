"""A local SMTP sink: a real SMTP server (aiosmtpd) that stores every mail as a ``.eml`` file.

Each accepted message is written atomically to ``<mail_dir>/<UTC time>-<seq>-<digest>.eml``,
as received, with ``X-Envelope-From`` and one ``X-Envelope-To`` line per recipient prepended,
so tests and people can check who a mail really went to (Bcc recipients included).

Run it as ``python -m dagmonitor_cli.platform.smtp_sink --dir .local/mail --port 2525``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import signal
import smtplib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from dagmonitor_cli.platform.files import write_atomic

_sequence = itertools.count(1)


class MaildirHandler:
    """aiosmtpd handler that writes each envelope to one ``.eml`` file."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        mail_dir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        header = [f"X-Envelope-From: {envelope.mail_from}".encode()]
        header += [f"X-Envelope-To: {rcpt}".encode() for rcpt in envelope.rcpt_tos]
        data = b"\r\n".join(header) + b"\r\n" + content
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        digest = hashlib.sha256(data).hexdigest()[:12]
        name = f"{stamp}-{next(_sequence):06d}-{digest}.eml"
        write_atomic(self.mail_dir / name, data)
        return "250 Message accepted for delivery"


def sink_ready(host: str, port: int) -> bool:
    """Whether an SMTP server on ``host:port`` greets and answers NOOP."""
    try:
        with smtplib.SMTP(host, port, timeout=2) as client:
            code, _ = client.noop()
            return code == 250
    except (OSError, smtplib.SMTPException):
        return False


async def serve(mail_dir: Path, host: str, port: int) -> None:
    """Run the sink until SIGTERM or SIGINT."""
    controller = Controller(MaildirHandler(mail_dir), hostname=host, port=port)
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"smtp sink listening on {host}:{port}, mail in {mail_dir}", flush=True)
    try:
        await stop.wait()
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="folder for the .eml files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.dir.resolve(), args.host, args.port))


if __name__ == "__main__":
    main()
