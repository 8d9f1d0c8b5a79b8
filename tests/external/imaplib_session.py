"""A full IMAP session with Python's unmodified imaplib against coimail.

Usage: imaplib_session.py PORT USER PASSWORD CA_CERT_PEM
STARTTLS (the server's self-signed certificate is the only trust anchor),
then every common command, each response checked; IDLE over the raw
connection (imaplib before 3.14 has no idle()); COMPRESS=DEFLATE through
imaplib's documented read/readline/send hooks with zlib, including an IDLE
EXISTS that must arrive while the client sends nothing.
Exits non-zero with a message on the first wrong answer; prints "imaplib session ok".
"""
import imaplib
import re
import socket
import ssl
import sys
import time
import zlib

port, user, password, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("IDLE", ("AUTH", "SELECTED"))


def ok(result, what):
    typ, data = result
    assert typ == "OK", f"{what}: {typ} {data}"
    return data


def message(n, subject, multipart=False):
    head = (
        f"From: Interop Sender <sender{n}@python.test>\r\n"
        f"To: {user}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <interop-{n}@python.test>\r\n"
        "Date: Wed, 25 Nov 2026 08:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
    )
    if not multipart:
        return (head + "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + f"Body of message {n}.\r\n").encode()
    return (
        head + 'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain part\r\n"
        "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html part</p>\r\n"
        "--b1--\r\n"
    ).encode()


def tls_context():
    ctx = ssl.create_default_context(cafile=ca)
    # The certificate names "localhost"; we connect to 127.0.0.1. The chain
    # is still verified against the server's own certificate.
    ctx.check_hostname = False
    return ctx


class CompressingIMAP4(imaplib.IMAP4):
    """imaplib with RFC 4978 COMPRESS=DEFLATE: raw deflate, sync flush per send."""

    _deflate = None

    def compress(self):
        ok(self._simple_command("COMPRESS", "DEFLATE"), "COMPRESS")
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        self._plain = b""

    def send(self, data):
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)

    def _more(self):
        chunk = self.file.read1(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("socket closed while compressed")
        self._plain += self._inflate.decompress(chunk)

    def readline(self):
        if self._deflate is None:
            return super().readline()
        while b"\n" not in self._plain:
            self._more()
        line, _, self._plain = self._plain.partition(b"\n")
        return line + b"\n"

    def read(self, size):
        if self._deflate is None:
            return super().read(size)
        while len(self._plain) < size:
            self._more()
        data, self._plain = self._plain[:size], self._plain[size:]
        return data


def idle_until_exists(imap, trigger, expected):
    """IDLE, run `trigger` (from another connection), expect `* expected EXISTS` promptly, DONE."""
    tag = imap._new_tag()
    imap.send(tag + b" IDLE\r\n")
    assert imap.readline().startswith(b"+"), "no IDLE continuation"
    trigger()
    imap.sock.settimeout(5)
    started = time.monotonic()
    line = imap.readline()
    imap.sock.settimeout(30)
    assert line.strip() == f"* {expected} EXISTS".encode(), line
    elapsed = time.monotonic() - started
    imap.send(b"DONE\r\n")
    while True:
        line = imap.readline()
        if line.startswith(tag + b" "):
            assert line.startswith(tag + b" OK"), line
            return elapsed


def other_append(subject):
    def run():
        o = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        ok(o.login(user, password), "second LOGIN")
        ok(o.append("INBOX", None, None, message(99, subject)), "APPEND from another session")
        o.logout()

    return run


# --- not authenticated: CAPABILITY, STARTTLS, LOGIN --------------------------
imap = CompressingIMAP4("127.0.0.1", port, timeout=30)
assert "STARTTLS" in imap.capabilities, imap.capabilities
assert "COMPRESS=DEFLATE" not in imap.capabilities, "COMPRESS before login"
ok(imap.starttls(tls_context()), "STARTTLS")
assert "STARTTLS" not in imap.capabilities, imap.capabilities
ok(imap.login(user, password), "LOGIN")
caps = ok(imap.capability(), "CAPABILITY")[0].decode().upper().split()
for c in ("IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "COMPRESS=DEFLATE", "LITERAL+"):
    assert c in caps, (c, caps)

# --- authenticated: NAMESPACE, LIST, CREATE, STATUS --------------------------
ns = ok(imap.namespace(), "NAMESPACE")[0]
assert ns.startswith(b'(("" "/"))'), ns
boxes = ok(imap.list(), "LIST")
assert any(b.endswith(b' "INBOX"') or b.endswith(b" INBOX") for b in boxes), boxes
ok(imap.create("Interop"), "CREATE")
ok(imap.create("Interop/Archive"), "CREATE child")
typ, data = imap.create("Interop")
assert typ == "NO" and b"ALREADYEXISTS" in data[0], (typ, data)
boxes = b"\n".join(ok(imap.list('""', "Interop*"), "LIST pattern"))
assert b'"Interop"' in boxes and b'"Interop/Archive"' in boxes and b"\\HasChildren" in boxes, boxes
status = ok(imap.status("Interop", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"), "STATUS")[0]
assert re.search(rb"MESSAGES 0\b", status) and b"UIDNEXT 1" in status, status

# --- APPEND with flags and date; SELECT ---------------------------------------
date = imaplib.Time2Internaldate(time.mktime((2026, 11, 25, 8, 0, 0, 0, 0, -1)))
appended = []
for n, (subject, flags, multi) in enumerate(
    [("first plain", r"(\Flagged)", False), ("second alternative", None, True), ("third plain", r"(\Seen)", False)],
    start=1,
):
    typ, data = imap.append("INBOX", flags, date, message(n, subject, multi))
    assert typ == "OK", (typ, data)
    m = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
    assert m, data
    appended.append(int(m.group(2)))
assert appended == sorted(appended), appended
exists = int(ok(imap.select("INBOX"), "SELECT")[0])
assert exists == 3, exists
assert imap.untagged_responses.get("UIDVALIDITY"), imap.untagged_responses

# --- SEARCH --------------------------------------------------------------------
assert ok(imap.search(None, "SUBJECT", '"alternative"'), "SEARCH SUBJECT")[0] == b"2"
assert ok(imap.search(None, "FLAGGED"), "SEARCH FLAGGED")[0] == b"1"
assert ok(imap.search(None, "UNSEEN"), "SEARCH UNSEEN")[0] == b"1 2"
assert ok(imap.search(None, "BODY", "html"), "SEARCH BODY")[0] == b"2"
uids = ok(imap.uid("SEARCH", None, "ALL"), "UID SEARCH")[0].split()
assert [int(u) for u in uids] == appended, (uids, appended)

# --- FETCH: ENVELOPE, BODYSTRUCTURE, header fields -----------------------------
def fetch_messages(data):
    """imaplib's FETCH data regrouped per message: (all non-literal text, [literals])."""
    msgs = []
    for d in data:
        head, lit = (d[0], d[1]) if isinstance(d, tuple) else (d, None)
        if re.match(rb"\d+ \(", head):
            msgs.append([b"", []])
        msgs[-1][0] += head
        if lit is not None:
            msgs[-1][1].append(lit)
    return msgs


data = ok(imap.fetch("1:3", "(UID FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])"), "FETCH")
msgs = fetch_messages(data)
assert len(msgs) == 3, data
for n, (text, literals) in enumerate(msgs, start=1):
    assert text.startswith(f"{n} (".encode()), text
    assert b"ENVELOPE (" in text and b"BODYSTRUCTURE (" in text and b"UID " in text, text
    assert len(literals) == 1, literals
    headers = literals[0]
    assert b"Subject: " in headers and b"From: " in headers and b"Message-ID" not in headers, headers
    assert headers.endswith(b"\r\n\r\n"), headers
assert b'"first plain"' in msgs[0][0] and b'"sender1" "python.test"' in msgs[0][0], msgs[0][0]
assert b'"alternative"' in msgs[1][0].lower() and b'"html"' in msgs[1][0].lower(), msgs[1][0]
assert b"\\Flagged" in msgs[0][0] and b"\\Seen" in msgs[2][0], msgs
body = ok(imap.fetch("1", "(BODY.PEEK[TEXT])"), "FETCH BODY.PEEK[TEXT]")[0][1]
assert body == b"Body of message 1.\r\n", body

# --- STORE ----------------------------------------------------------------------
flags = ok(imap.store("1:2", "+FLAGS", r"(\Seen $Interop)"), "STORE +FLAGS")
assert all(b"\\Seen" in f and b"$Interop" in f for f in flags), flags
flags = ok(imap.store("1", "-FLAGS.SILENT", r"(\Flagged)"), "STORE -FLAGS.SILENT")
assert flags == [None], flags
flags = ok(imap.fetch("1", "(FLAGS)"), "FETCH FLAGS")[0]
assert b"\\Flagged" not in flags and b"\\Seen" in flags, flags

# --- COPY, UID MOVE, EXPUNGE ----------------------------------------------------------
typ, data = imap.copy("1", "Interop")
assert typ == "OK" and b"COPYUID" in data[0], (typ, data)
typ, data = imap.uid("MOVE", str(appended[1]), "Interop/Archive")
assert typ == "OK", (typ, data)
assert imap.untagged_responses.pop("EXPUNGE", None) == [b"2"], "UID MOVE must expunge message 2"
ok(imap.store("2", "+FLAGS", r"(\Deleted)"), "STORE \\Deleted")
expunged = ok(imap.expunge(), "EXPUNGE")
assert expunged == [b"2"], expunged
assert int(ok(imap.select("INBOX"), "reSELECT")[0]) == 1
status = ok(imap.status("Interop", "(MESSAGES)"), "STATUS after COPY")[0]
assert b"MESSAGES 1" in status, status
status = ok(imap.status("Interop/Archive", "(MESSAGES)"), "STATUS after MOVE")[0]
assert b"MESSAGES 1" in status, status

# --- RENAME (with children), DELETE ------------------------------------------------
ok(imap.rename("Interop", "Renamed"), "RENAME")
boxes = b"\n".join(ok(imap.list('""', "*"), "LIST after RENAME"))
assert b'"Renamed/Archive"' in boxes and b'"Interop"' not in boxes, boxes
ok(imap.delete("Renamed/Archive"), "DELETE child")
ok(imap.delete("Renamed"), "DELETE")
typ, data = imap.select("Renamed")
assert typ == "NO", (typ, data)
ok(imap.select("INBOX"), "SELECT INBOX again")

# --- IDLE (uncompressed) -----------------------------------------------------------
idle_until_exists(imap, other_append("during idle"), 2)

# --- COMPRESS=DEFLATE, then the same traffic compressed ------------------------------
imap.compress()
typ, data = imap._simple_command("COMPRESS", "DEFLATE")
assert typ == "NO" and b"COMPRESSIONACTIVE" in data[0], (typ, data)
ok(imap.noop(), "NOOP compressed")
assert int(ok(imap.select("INBOX"), "SELECT compressed")[0]) == 2
data = ok(imap.fetch("1:*", "(FLAGS BODY.PEEK[])"), "FETCH compressed")
bodies = [d[1] for d in data if isinstance(d, tuple)]
assert bodies[0].endswith(b"Body of message 1.\r\n") and b"Subject: during idle" in bodies[1], bodies
big = message(7, "big compressed") + b"0123456789abcdef" * 40000 + b"\r\n"
typ, data = imap.append("INBOX", None, None, big)
assert typ == "OK", (typ, data)
fetched = ok(imap.fetch("3", "(BODY.PEEK[])"), "FETCH big compressed")[0][1]
assert fetched == big, (len(fetched), len(big))
elapsed = idle_until_exists(imap, other_append("during compressed idle"), 4)
assert elapsed < 2, f"EXISTS took {elapsed:.2f} s under COMPRESS"

# --- LOGOUT ------------------------------------------------------------------
typ, data = imap.logout()
assert typ in ("BYE", "OK"), (typ, data)
print(f"imaplib session ok (compressed IDLE EXISTS after {elapsed * 1000:.1f} ms)")
