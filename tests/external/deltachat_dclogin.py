"""Delta Chat (deltachat-rpc-server) set up from the dclogin: URI that
`coimail user add --dclogin` printed, then a message each way with a second
account. Usage: deltachat_dclogin.py URI HOST IMAP_PORT SUBMISSION_PORT OTHER_ADDR PASSWORD ACCOUNTS_DIR
Exits non-zero with a message on any failure.
"""
import sys
import urllib.parse

from deltachat_rpc_client import DeltaChat, Rpc

uri, host, imap_port, smtp_port, other, password, accounts_dir = sys.argv[1:8]


def login_qr(addr):
    q = urllib.parse.urlencode(
        {"p": password, "v": "1", "ih": host, "ip": imap_port, "is": "starttls", "ic": "3",
         "sh": host, "sp": smtp_port, "ss": "starttls"}
    )
    return f"dclogin:{addr}?{q}"


with Rpc(accounts_dir=accounts_dir) as rpc:
    dc = DeltaChat(rpc)
    scanned, sender = dc.add_account(), dc.add_account()
    # What the app does when the QR code is scanned.
    qr = rpc.check_qr(scanned.id, uri)
    assert qr["kind"] == "login", qr
    scanned.add_transport_from_qr(uri)
    scanned.bring_online()
    assert scanned.is_configured()
    addr = scanned.get_config("configured_addr")
    print("configured from dclogin:", addr)
    sender.add_transport_from_qr(login_qr(other))
    sender.bring_online()

    sender.create_chat(scanned).send_text("hello via dclogin")
    msg = scanned.wait_for_incoming_msg().get_snapshot()
    assert msg.text == "hello via dclogin", msg.text
    msg.chat.accept()
    msg.chat.send_text("reply from the scanned account")
    text = sender.wait_for_incoming_msg().get_snapshot().text
    assert text == "reply from the scanned account", text
    print("deltachat dclogin ok")
