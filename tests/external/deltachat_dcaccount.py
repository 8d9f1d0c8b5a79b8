"""Delta Chat (deltachat-rpc-server from PyPI) scans a DCACCOUNT: invite
printed by `coimail chatmail invite`. Run inside the network namespace
tests/chatmail_new.rs makes, where the invite's host resolves to 127.0.0.1
and coimail listens on 443.

Usage: deltachat_dcaccount.py URI HOST ACCOUNTS_DIR
Checks that Delta Chat reads URI as an account invite for HOST, then lets
it create the account (it POSTs to the URL). Setting the account up after
that needs a certificate Delta Chat trusts for the mail host, which a test
cannot have, so that step's error is printed for the caller to check.
Exits non-zero with a message on any other failure.
"""
import sys

from deltachat_rpc_client import DeltaChat, Rpc

uri, host, accounts_dir = sys.argv[1:4]

with Rpc(accounts_dir=accounts_dir) as rpc:
    dc = DeltaChat(rpc)
    account = dc.add_account()
    parsed = rpc.check_qr(account.id, uri)
    assert parsed == {"kind": "account", "domain": host}, parsed
    print("invite read:", parsed)
    try:
        account.add_transport_from_qr(uri)
        print("configured")
    except Exception as e:  # the mail host's certificate: see above
        print("setup error:", e)
    print("deltachat dcaccount done")
