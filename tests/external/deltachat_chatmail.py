"""Delta Chat (deltachat-rpc-server from PyPI) against coimail in chatmail
mode: two accounts that do not exist yet log in (the server creates them),
set up contact with Secure-Join (so everything after is encrypted), and
exchange messages both ways through the encrypted-only filter.

Usage: deltachat_chatmail.py HOST IMAP_PORT SUBMISSION_PORT ADDR1 ADDR2 PASSWORD ACCOUNTS_DIR [SAMPLES_DIR]
With SAMPLES_DIR, the Secure-Join request and the first chat message are
saved there as the server stored them (crates/chatmail/src/filter/samples/).
Exits non-zero with a message on any failure.
"""
import imaplib
import os
import sys
import time
import urllib.parse

from deltachat_rpc_client import DeltaChat, Rpc

host, imap_port, smtp_port = sys.argv[1], sys.argv[2], sys.argv[3]
addr1, addr2, password, accounts_dir = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
samples = sys.argv[8] if len(sys.argv) > 8 else None


def login_qr(addr):
    # DCLOGIN with explicit servers: STARTTLS on both, self-signed certificate accepted (ic/sc=3).
    q = urllib.parse.urlencode(
        {"p": password, "v": "1", "ih": host, "ip": imap_port, "is": "starttls", "ic": "3",
         "sh": host, "sp": smtp_port, "ss": "starttls", "sc": "3"}
    )
    return f"dclogin:{addr}?{q}"


def capabilities(addr):
    conn = imaplib.IMAP4(host, int(imap_port))
    conn.login(addr, password)
    typ, data = conn.capability()
    conn.logout()
    return data[0].split()


def take_raw(addr, name, timeout=60):
    """The newest message in addr's INBOX, saved as SAMPLES_DIR/name.
    The account's Delta Chat must be offline: on a chatmail server it
    deletes what it fetched."""
    conn = imaplib.IMAP4(host, int(imap_port))
    conn.login(addr, password)
    deadline = time.monotonic() + timeout
    while True:
        conn.select("INBOX", readonly=True)
        typ, data = conn.uid("SEARCH", "ALL")
        if data[0].split():
            break
        assert time.monotonic() < deadline, f"nothing arrived in {addr}'s INBOX"
        time.sleep(0.1)
    typ, msg = conn.uid("FETCH", data[0].split()[-1], "(BODY.PEEK[])")
    conn.logout()
    raw = msg[0][1]
    with open(os.path.join(samples, name), "wb") as f:
        f.write(raw)
    print("saved", name, len(raw), "bytes")


with Rpc(accounts_dir=accounts_dir) as rpc:
    dc = DeltaChat(rpc)
    alice, bob = dc.add_account(), dc.add_account()
    for account, addr in ((alice, addr1), (bob, addr2)):
        account.set_config("displayname", addr.split("@")[0])
        # The accounts do not exist: this first login creates them.
        account.add_transport_from_qr(login_qr(addr))
        account.bring_online()
    caps = capabilities(addr1)
    assert b"XCHATMAIL" in caps, caps
    print("created both accounts on first login; XCHATMAIL advertised")

    # Secure-Join: Bob scans Alice's QR code. Alice stays offline at first
    # when samples are wanted, so Bob's request can be read from her INBOX.
    qr = alice.get_qr_code()
    if samples:
        alice.stop_io()
    bob.secure_join(qr)
    if samples:
        take_raw(addr1, "deltachat-securejoin-request.eml")
        alice.start_io()
    alice.wait_for_securejoin_inviter_success()
    bob.wait_for_securejoin_joiner_success()
    print("secure-join done")

    contact = alice.get_contact_by_addr(addr2)
    chat = contact.create_chat()
    if samples:
        bob.stop_io()
    sent = chat.send_text("hello from alice")
    if samples:
        # The newest message in Bob's INBOX: Alice's chat message.
        take_raw(addr2, "deltachat-encrypted.eml")
        bob.start_io()
    msg = bob.wait_for_incoming_msg()
    snapshot = msg.get_snapshot()
    assert snapshot.text == "hello from alice", snapshot.text
    assert snapshot.show_padlock, "the message was not end-to-end encrypted"
    print("bob received:", snapshot.text)

    reply_chat = snapshot.chat
    reply_chat.accept()
    reply_chat.send_text("hello back from bob")
    msg = alice.wait_for_incoming_msg()
    snap = msg.get_snapshot()
    assert snap.text == "hello back from bob", snap.text
    assert snap.show_padlock
    print("alice received:", snap.text)
    print("deltachat chatmail ok")
