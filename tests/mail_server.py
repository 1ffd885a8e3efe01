"""A real SMTP server on loopback for the tests of the mail senders (config.mail.send_batch's callers), and
a port where nothing listens, for a mail server that is down."""

import socket
import socketserver
import threading


class FakeSMTP(socketserver.ThreadingTCPServer):
    """A real SMTP server on loopback, just enough of RFC 5321 for smtplib: it takes `accept` messages, then
    drops the connection; it answers 550 to the addresses in `refuse`. On `port`, or any free one."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *, accept: int = 1000, refuse: frozenset[str] = frozenset(), port: int = 0):
        super().__init__(("127.0.0.1", port), _SMTPSession)
        self.accept, self.refuse, self.received = accept, refuse, []

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class _SMTPSession(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self):
        server: FakeSMTP = self.server
        self.reply("220 fake ESMTP")
        recipients = []
        for raw in self.rfile:
            command = raw.decode().strip()
            verb = command[:4].upper()
            if verb in {"EHLO", "HELO"}:
                self.reply("250 fake")
            elif verb == "MAIL":
                if len(server.received) >= server.accept:
                    return  # the connection drops, as a server restarting would
                recipients = []
                self.reply("250 OK")
            elif verb == "RCPT":
                address = command.split("<", 1)[1].rstrip(">")
                if address in server.refuse:
                    self.reply("550 No such user")
                else:
                    recipients.append(address)
                    self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End with .")
                for line in self.rfile:
                    if line in (b".\r\n", b".\n"):
                        break
                server.received.extend(recipients)
                self.reply("250 Queued")
            elif verb == "RSET" or verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Not implemented")


def refusing_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def use_smtp(settings, port: int) -> None:
    """Send mail through the SMTP server on this loopback port (pytest-django's `settings` fixture)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
