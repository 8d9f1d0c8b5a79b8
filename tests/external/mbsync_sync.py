"""mbsync (isync) syncing coimail with a local Maildir both ways.

Usage: mbsync_sync.py PORT USER PASSWORD CA_CERT_PEM WORKDIR
mbsync talks STARTTLS, trusting the server's self-signed certificate through
CertificateFile. The server side is set up and checked with imaplib; the
local side by reading and writing Maildir files as a mail client would.
Checks that messages created on either side reach the other, that flags
propagate both ways, and that deletions propagate both ways.
Exits non-zero on the first difference; prints "mbsync sync ok".
"""
import imaplib
import os
import re
import subprocess
import sys
import time

port, user, password, ca, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
maildir = os.path.join(work, "Maildir")
os.makedirs(maildir, exist_ok=True)
config = os.path.join(work, "mbsyncrc")
with open(config, "w") as f:
    f.write(
        f"""IMAPAccount coimail
Host 127.0.0.1
Port {port}
User {user}
Pass "{password}"
SSLType STARTTLS
CertificateFile {ca}
AuthMechs LOGIN
Timeout 30

IMAPStore far
Account coimail

MaildirStore near
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel coimail
Far :far:
Near :near:
Patterns *
Create Both
Remove None
Expunge Both
CopyArrivalDate yes
SyncState *
Sync All
"""
    )


def message(subject):
    return (
        f"From: Sync Test <sync@python.test>\r\nTo: {user}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@python.test>\r\n"
        f"Date: Wed, 25 Nov 2026 08:00:00 +0000\r\n\r\nBody of {subject}.\r\n"
    ).encode()


def sync(round_name):
    r = subprocess.run(["mbsync", "-c", config, "-a"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"mbsync ({round_name}) failed with {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


def server():
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    typ, _ = imap.login(user, password)
    assert typ == "OK"
    return imap


def server_messages(mailbox="INBOX"):
    """{subject: set of flags} on the server (without \\Recent)."""
    imap = server()
    typ, data = imap.select(mailbox)
    assert typ == "OK", (mailbox, typ, data)
    out = {}
    if int(data[0]):
        typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        for d in data:
            if isinstance(d, tuple):
                flags = set(re.search(rb"FLAGS \(([^)]*)\)", d[0]).group(1).decode().split()) - {"\\Recent"}
                subject = d[1].decode().split(":", 1)[1].strip()
                assert subject not in out, f"{subject} twice on the server"
                out[subject] = flags
    imap.logout()
    return out


MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}


def local_files(folder="INBOX"):
    """{subject: (path, set of IMAP flags)} in the local Maildir folder."""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(maildir, folder, sub)
        for name in os.listdir(d) if os.path.isdir(d) else []:
            path = os.path.join(d, name)
            with open(path, "rb") as f:
                subject = re.search(rb"^Subject: (.*?)\r?$", f.read(), re.M).group(1).decode()
            letters = name.split(":2,", 1)[1] if ":2," in name else ""
            assert subject not in out, f"{subject} twice in the Maildir"
            out[subject] = (path, {MAILDIR_FLAGS[c] for c in letters if c in MAILDIR_FLAGS})
    return out


def local_flags(folder="INBOX"):
    return {s: flags for s, (_, flags) in local_files(folder).items()}


def set_local_flags(subject, letters, folder="INBOX"):
    path, _ = local_files(folder)[subject]
    base = os.path.basename(path).split(":2,", 1)[0]
    os.rename(path, os.path.join(maildir, folder, "cur", f"{base}:2,{letters}"))


def add_local(subject, folder="INBOX"):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, folder, sub), exist_ok=True)
    name = f"{time.time_ns()}.{os.getpid()}.interop"
    tmp = os.path.join(maildir, folder, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(message(subject))
    os.rename(tmp, os.path.join(maildir, folder, "new", name))


def expect(what, actual, expected):
    assert actual == expected, f"{what}:\n  expected {expected}\n  actual   {actual}"


# Round 1: the server has three messages; the first sync brings them down.
imap = server()
for subject, flags in (("alpha", "(\\Flagged)"), ("bravo", None), ("echo", None)):
    typ, data = imap.append("INBOX", flags, None, message(subject))
    assert typ == "OK", data
imap.logout()
sync("initial")
expect("local after round 1", local_flags(), {"alpha": {"\\Flagged"}, "bravo": set(), "echo": set()})

# Round 2: changes on both sides, then one sync.
add_local("charlie")  # new locally
set_local_flags("bravo", "S")  # read locally
os.remove(local_files()["alpha"][0])  # deleted locally
add_local("projects one", folder="Projects")  # a new local folder
imap = server()
imap.select("INBOX")
typ, data = imap.append("INBOX", None, None, message("delta"))  # new on the server
assert typ == "OK", data
typ, data = imap.search(None, "SUBJECT", "echo")
typ, data = imap.store(data[0].decode(), "+FLAGS", "(\\Answered)")  # answered on the server
assert typ == "OK", data
imap.logout()
sync("both ways")
expected = {"bravo": {"\\Seen"}, "charlie": set(), "delta": set(), "echo": {"\\Answered"}}
expect("server after round 2", server_messages(), expected)
expect("local after round 2", local_flags(), expected)
expect("server Projects after round 2", server_messages("Projects"), {"projects one": set()})

# Round 3: deleted and flagged on the server, a second sync brings that down.
imap = server()
imap.select("INBOX")
typ, data = imap.search(None, "SUBJECT", "echo")
imap.store(data[0].decode(), "+FLAGS", "(\\Deleted)")
typ, data = imap.expunge()
assert typ == "OK", data
typ, data = imap.search(None, "SUBJECT", "charlie")
imap.store(data[0].decode(), "+FLAGS", "(\\Flagged \\Seen)")
imap.logout()
sync("server changes")
expected = {"bravo": {"\\Seen"}, "charlie": {"\\Flagged", "\\Seen"}, "delta": set()}
expect("local after round 3", local_flags(), expected)
expect("server after round 3", server_messages(), expected)

# Round 4: nothing changed, nothing moves.
sync("idempotent")
expect("local after round 4", local_flags(), expected)
expect("server after round 4", server_messages(), expected)
print("mbsync sync ok")
