"""Delta Chat one-way latency through a chatmail relay (benches/chatmail_latency.rs).

Usage: pingpong.py HOST IMAP_PORT SUBMISSION_PORT ADDR1 ADDR2 PASSWORD ACCOUNTS_DIR MESSAGES
(IMAP and submission with STARTTLS, any certificate accepted.)

Two deltachat-rpc-server accounts log in (on coimail in chatmail mode that
creates them), set up contact with Secure-Join, then take turns: Alice sends,
Bob waits for it, Bob sends, Alice waits, MESSAGES times each way. One-way
latency: from the send_text call to the receiver's IncomingMsg
event (same process, same clock), so it includes the sender's SMTP
submission, the server, and the receiver's IMAP IDLE wake-up and fetch.
Prints one line of JSON: {"a_to_b": [ms...], "b_to_a": [ms...], "xchatmail": bool}.
"""
import imaplib
import json
import os
import sys
import time
import urllib.parse

from deltachat_rpc_client import DeltaChat, EventType, Rpc

host, imap_port, smtp_port = sys.argv[1], sys.argv[2], sys.argv[3]
addr1, addr2, password, accounts_dir = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
n = int(sys.argv[8])
# Seconds between rounds (see the loop); the 9th argument, default 1.2.
PAUSE = float(sys.argv[9]) if len(sys.argv) > 9 else 1.2
# PINGPONG_TRACE=FILE: each message's send and receive, and every event the
# accounts report, with wall-clock times, to line up with the daemon's log
# (RUST_LOG on the bench).
TRACE = open(os.environ["PINGPONG_TRACE"], "a") if os.environ.get("PINGPONG_TRACE") else None


def trace(what, text):
    if TRACE:
        print(f"{time.time():.6f} {what} {text}", file=TRACE, flush=True)


def login_qr(addr):
    q = urllib.parse.urlencode(
        {"p": password, "v": "1", "ih": host, "ip": imap_port, "is": "starttls", "ic": "3",
         "sh": host, "sp": smtp_port, "ss": "starttls", "sc": "3"}
    )
    return f"dclogin:{addr}?{q}"


def wait_text(account, text):
    """The time the IncomingMsg event carrying `text` was read."""
    while True:
        event = account.wait_for_event()
        trace(f"event {account.id} {event.kind}", getattr(event, "msg", "") or "")
        if event.kind == EventType.INCOMING_MSG:
            at = time.monotonic()
            got = account.get_message_by_id(event.msg_id).get_snapshot().text
            if got == text:
                trace("received", text)
                return at


with Rpc(accounts_dir=accounts_dir) as rpc:
    dc = DeltaChat(rpc)
    alice, bob = dc.add_account(), dc.add_account()
    for account, addr in ((alice, addr1), (bob, addr2)):
        account.set_config("displayname", addr.split("@")[0])
        account.add_transport_from_qr(login_qr(addr))
        account.bring_online()
    conn = imaplib.IMAP4(host, int(imap_port))
    conn.login(addr1, password)
    xchatmail = b"XCHATMAIL" in conn.capability()[1][0].split()
    conn.logout()

    bob.secure_join(alice.get_qr_code())
    alice.wait_for_securejoin_inviter_success()
    bob.wait_for_securejoin_joiner_success()
    a_chat = alice.get_contact_by_addr(addr2).create_chat()
    b_chat = bob.get_contact_by_addr(addr1).create_chat()
    # One untimed round first: both sides' connections are warm after it.
    a_chat.send_text("warm-up a")
    wait_text(bob, "warm-up a")
    b_chat.send_text("warm-up b")
    wait_text(alice, "warm-up b")

    a_to_b, b_to_a = [], []
    for i in range(n):
        # Delta Chat submits at most about one message per second per account
        # (seen in the daemon's log: a sender's MAIL commands come 1.0 s apart
        # however early send_text was called). Without a pause Alice's next
        # ping would wait for that pacing, which is the client's, not the
        # server's; a person chatting sends no faster anyway.
        time.sleep(PAUSE)
        text = f"ping {i}"
        sent = time.monotonic()
        trace("send", text)
        a_chat.send_text(text)
        a_to_b.append((wait_text(bob, text) - sent) * 1000)
        text = f"pong {i}"
        sent = time.monotonic()
        trace("send", text)
        b_chat.send_text(text)
        b_to_a.append((wait_text(alice, text) - sent) * 1000)
    print(json.dumps({"a_to_b": a_to_b, "b_to_a": b_to_a, "xchatmail": xchatmail}))
