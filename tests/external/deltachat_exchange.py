"""Delta Chat (deltachat-rpc-server from PyPI) against coimail: two accounts
exchange messages both ways over submission and IMAP IDLE.

Usage: deltachat_exchange.py HOST IMAP_PORT SUBMISSION_PORT ADDR1 ADDR2 PASSWORD ACCOUNTS_DIR [coi]
With `coi`, both accounts first turn COI on with message filter `none` over
imaplib, the way a COI client would (SETMETADATA), and afterwards every
received chat must sit in INBOX tagged `$Chat` (COI R24/R26; Delta Chat
watches INBOX only, D6).
Exits non-zero with a message on any failure.
"""
import imaplib
import sys
import urllib.parse

from deltachat_rpc_client import DeltaChat, Rpc

host, imap_port, smtp_port = sys.argv[1], sys.argv[2], sys.argv[3]
addr1, addr2, password, accounts_dir = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
coi = len(sys.argv) > 8 and sys.argv[8] == "coi"
CONFIG = "/private/vendor/vendor.dovecot/coi/config"
# imaplib only sends commands it knows.
imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))


def imap(addr):
    conn = imaplib.IMAP4(host, int(imap_port))
    conn.login(addr, password)
    return conn


def enable_coi(addr):
    conn = imap(addr)
    typ, data = conn.capability()
    assert b"COI" in data[0].split(), data
    for entry, value in (("enabled", "yes"), ("message-filter", "none")):
        typ, data = conn._simple_command("SETMETADATA", '""', f'({CONFIG}/{entry} "{value}")')
        assert typ == "OK", (entry, typ, data)
    typ, data = conn._simple_command("GETMETADATA", "(DEPTH 1)", '""', CONFIG)
    typ, data = conn._untagged_response(typ, data, "METADATA")
    text = b" ".join(d if isinstance(d, bytes) else b"".join(d) for d in data)
    assert b"enabled" in text and b"none" in text, text
    conn.logout()


def chats_in_inbox(addr):
    """(messages in INBOX, how many carry $Chat)."""
    conn = imap(addr)
    conn.select("INBOX", readonly=True)
    typ, data = conn.uid("SEARCH", "ALL")
    total = len(data[0].split())
    typ, data = conn.uid("SEARCH", "KEYWORD", "$Chat")
    chats = len(data[0].split())
    conn.logout()
    return total, chats


def login_qr(addr):
    # DCLOGIN with explicit servers: STARTTLS on both, self-signed certificate accepted (ic/sc=3).
    q = urllib.parse.urlencode(
        {
            "p": password,
            "v": "1",
            "ih": host,
            "ip": imap_port,
            "is": "starttls",
            "ic": "3",
            "sh": host,
            "sp": smtp_port,
            "ss": "starttls",
            "sc": "3",
        }
    )
    return f"dclogin:{addr}?{q}"


if coi:
    enable_coi(addr1)
    enable_coi(addr2)

with Rpc(accounts_dir=accounts_dir) as rpc:
    dc = DeltaChat(rpc)
    alice, bob = dc.add_account(), dc.add_account()
    for account, addr in ((alice, addr1), (bob, addr2)):
        account.set_config("displayname", addr.split("@")[0])
        account.add_transport_from_qr(login_qr(addr))
        account.bring_online()

    chat = alice.create_chat(bob)
    chat.send_text("hello from alice")
    msg = bob.wait_for_incoming_msg()
    snapshot = msg.get_snapshot()
    assert snapshot.text == "hello from alice", snapshot.text
    print("bob received:", snapshot.text)

    reply_chat = snapshot.chat
    reply_chat.accept()
    reply_chat.send_text("hello back from bob")
    msg = alice.wait_for_incoming_msg()
    text = msg.get_snapshot().text
    assert text == "hello back from bob", text
    print("alice received:", text)
    if coi:
        for addr in (addr1, addr2):
            total, chats = chats_in_inbox(addr)
            print(addr, "INBOX messages:", total, "with $Chat:", chats)
            assert chats >= 1, (addr, total, chats)
    print("deltachat exchange ok")
