"""Verifies every DKIM-Signature of a message with dkimpy, an independent
DKIM implementation, taking the key records from `coimail dns` output.

usage: dkim_verify.py ZONE_FILE MESSAGE_FILE
ZONE_FILE holds zone-file lines as `coimail dns` prints them; the TXT
records' quoted strings are joined as a resolver would. Prints one line per
signature, "pass <a> <d> <s>" or "fail <a> <d> <s>", and exits 1 unless all pass.
"""
import re
import sys

import dkim


def txt_records(zone_text):
    records = {}
    for line in zone_text.splitlines():
        if line.startswith(";") or " IN TXT " not in line:
            continue
        name = line.split()[0].rstrip(".").lower()
        strings = re.findall(r'"((?:[^"\\]|\\.)*)"', line.split(" IN TXT ", 1)[1])
        records[name] = "".join(s.replace('\\"', '"').replace("\\\\", "\\") for s in strings)
    return records


def main():
    records = txt_records(open(sys.argv[1]).read())
    message = open(sys.argv[2], "rb").read()

    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip(".").lower(), "").encode()

    verifier = dkim.DKIM(message)
    count = len([h for h in verifier.headers if h[0].lower() == b"dkim-signature"])
    if count == 0:
        print("no signature")
        sys.exit(1)
    ok = True
    for i in range(count):
        try:
            good, why = verifier.verify(idx=i, dnsfunc=dnsfunc), ""
        except dkim.DKIMException as e:
            # dkimpy raises on some failures (body hash mismatch) instead of returning False.
            good, why = False, f" ({e})"
        sig = dict(verifier.signature_fields)
        fields = " ".join(sig.get(k, b"?").decode() for k in (b"a", b"d", b"s"))
        print(("pass " if good else "fail ") + fields + why)
        ok = ok and good
    sys.exit(0 if ok else 1)


main()
