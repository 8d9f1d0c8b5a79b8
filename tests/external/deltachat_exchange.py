"""Delta Chat (deltachat-rpc-server from PyPI) against coimail: two accounts
exchange messages both ways over submission and IMAP IDLE.

Usage: deltachat_exchange.py HOST IMAP_PORT SUBMISSION_PORT ADDR1 ADDR2 PASSWORD ACCOUNTS_DIR
Exits non-zero with a message on any failure.
"""
import sys
import urllib.parse

from deltachat_rpc_client import DeltaChat, Rpc

host, imap_port, smtp_port = sys.argv[1], sys.argv[2], sys.argv[3]
addr1, addr2, password, accounts_dir = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]


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
    print("deltachat exchange ok")
