"""Delta Chat (deltachat-rpc-server from PyPI) sets up an account from an
address and a password alone: no server, port or security given, so it
must find them by autoconfig (https://autoconfig.<domain>/mail/config-v1.1.xml
first). Run inside the network namespace tests/http.rs makes, where the
domain's names resolve to 127.0.0.1 and coimail listens on 443, 993, 465,
143 and 587.

Usage: deltachat_autoconfig.py ADDR1 ADDR2 PASSWORD ACCOUNTS_DIR EXPECTED_SETTINGS CERTIFICATE_CHECKS
EXPECTED_SETTINGS is what Delta Chat must report it uses, e.g.
"imap:[mail.x:993:tls, mail.x:143:starttls] smtp:[mail.x:465:tls, mail.x:587:starttls]".
Exits non-zero with a message on any failure.
"""
import sys

from deltachat_rpc_client import DeltaChat, Rpc

addr1, addr2, password, accounts_dir, expected, checks = sys.argv[1:7]

with Rpc(accounts_dir=accounts_dir) as rpc:
    dc = DeltaChat(rpc)
    accounts = []
    for addr in (addr1, addr2):
        account = dc.add_account()
        account.add_or_update_transport({"addr": addr, "password": password, "certificateChecks": checks})
        assert account.is_configured(), f"{addr} not configured"
        used = account.get_info()["used_transport_settings"]
        print(addr, "uses:", used)
        assert expected in used, f"expected {expected!r} in {used!r}"
        account.bring_online()
        accounts.append(account)
    # The servers it found take the logins: a message goes out by
    # submission and arrives over IMAP.
    alice, bob = accounts
    alice.create_chat(bob).send_text("found by autoconfig")
    text = bob.wait_for_incoming_msg().get_snapshot().text
    assert text == "found by autoconfig", text
    print("deltachat autoconfig ok")
