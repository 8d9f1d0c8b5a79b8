"""Real, unmodified clients against coimail: smtplib sends, imaplib reads back.

Usage: smtp_imap_roundtrip.py SMTP_PORT IMAP_PORT USER PASSWORD
Exits non-zero with a message on any mismatch.
"""
import email.utils
import imaplib
import smtplib
import sys
import uuid

smtp_port, imap_port, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

msgid = f"<{uuid.uuid4()}@python.test>"
# Bytes chosen to catch mangling: a leading dot, 8-bit UTF-8, a long line, an empty line.
original = (
    "From: Python Sender <py@python.test>\r\n"
    f"To: {user}\r\n"
    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from smtplib\r\n"
    f"Message-ID: {msgid}\r\n"
    f"Date: {email.utils.formatdate()}\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Hallo, schöne Grüße.\r\n"
    ".this line starts with a dot\r\n"
    "\r\n"
    + "x" * 900 + "\r\n"
    "end\r\n"
).encode("utf-8")

with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as s:
    code, _ = s.ehlo("python.test")
    assert code == 250, code
    refused = s.sendmail("py@python.test", [user], original)
    assert not refused, refused

imap = imaplib.IMAP4("127.0.0.1", imap_port, timeout=30)
caps = imap.capabilities
assert "IMAP4REV1" in caps, caps
typ, _ = imap.login(user, password)
assert typ == "OK", typ
typ, mailboxes = imap.list()
assert typ == "OK" and any(b'"INBOX"' in m or m.endswith(b" INBOX") for m in mailboxes), mailboxes
typ, data = imap.select("INBOX")
assert typ == "OK", (typ, data)
count = int(data[0])
assert count >= 1, count
typ, data = imap.fetch(str(count), "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
assert typ == "OK", (typ, data)
meta, fetched = data[0]
assert b"\\Seen" not in meta, meta

# The server may only prepend trace headers (Return-Path, Received); the
# message itself must come back byte for byte.
assert fetched.endswith(original), (fetched[-300:], original[-300:])
prefix = fetched[: len(fetched) - len(original)]
for line in prefix.decode("ascii").split("\r\n"):
    assert line == "" or line[0] in " \t" or line.split(":")[0] in ("Return-Path", "Received"), line
size = int(meta.split(b"RFC822.SIZE ")[1].split()[0].rstrip(b")"))
assert size == len(fetched), (size, len(fetched))

# BODY[] (no PEEK) marks the message seen.
typ, data = imap.fetch(str(count), "(BODY[])")
typ, data = imap.fetch(str(count), "(FLAGS)")
assert b"\\Seen" in data[0], data
imap.logout()
print(f"roundtrip ok: {len(original)} bytes, message {count}")
