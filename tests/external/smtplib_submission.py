"""Python's smtplib as a mail client submitting through coimail.

Usage: smtplib_submission.py HOST SUBMISSION_PORT SUBMISSIONS_PORT USER PASSWORD RCPT TAG

Sends three messages to RCPT, each with Message-ID <TAG-N@python.test>:
1. port 587: EHLO, STARTTLS, EHLO, AUTH (smtplib's choice: PLAIN), sendmail;
2. port 587: STARTTLS, AUTH LOGIN explicitly, send_message;
3. port 465: implicit TLS (SMTP_SSL), AUTH, sendmail.
On the way it checks three refusals: MAIL before AUTH gets 530, bytes with
bare LF line endings (what `sendmail(msg.as_bytes())` sends) get 554 5.6.0,
and a From header the user does not own gets 553 5.7.1.
Exits non-zero with a message on any mismatch; prints "smtplib submission ok".
"""
import email.message
import email.policy
import email.utils
import smtplib
import ssl
import sys

host, sub_port, subs_port, user, password, rcpt, tag = sys.argv[1:8]
sub_port, subs_port = int(sub_port), int(subs_port)

# The test server has a self-signed certificate.
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def message(n):
    m = email.message.EmailMessage()
    m["From"] = user
    m["To"] = rcpt
    m["Subject"] = f"smtplib {n}"
    m["Message-ID"] = f"<{tag}-{n}@python.test>"
    m["Date"] = email.utils.formatdate()
    m.set_content(f"Hello from smtplib, message {n}.\n.a line with a leading dot\n")
    return m


def fail(what):
    print(f"FAIL: {what}")
    sys.exit(1)


# 1. STARTTLS + smtplib's default AUTH mechanism.
with smtplib.SMTP(host, sub_port, local_hostname="laptop.test", timeout=30) as s:
    s.ehlo()
    if not s.has_extn("starttls"):
        fail("587 does not offer STARTTLS")
    code, reply = s.mail(user)
    if code != 530:
        fail(f"MAIL before AUTH: expected 530, got {code} {reply!r}")
    s.starttls(context=ctx)
    s.ehlo()
    auth = s.esmtp_features.get("auth", "")
    if "PLAIN" not in auth or "LOGIN" not in auth:
        fail(f"AUTH after STARTTLS offers {auth!r}")
    s.login(user, password)
    # smtplib sends bytes unchanged: a message flattened with LF line endings
    # carries bare LFs, which coimail refuses (SMTP smuggling defence).
    try:
        s.sendmail(user, [rcpt], message(98).as_bytes())
        fail("a message with bare LF line endings was accepted")
    except smtplib.SMTPDataError as e:
        if e.smtp_code != 554 or b"5.6.0" not in e.smtp_error:
            fail(f"bare LF: expected 554 5.6.0, got {e.smtp_code} {e.smtp_error!r}")
    refused = s.sendmail(user, [rcpt], message(1).as_bytes(policy=email.policy.SMTP))
    if refused:
        fail(f"recipients refused: {refused}")

# 2. STARTTLS + AUTH LOGIN explicitly; a forged From header is refused.
with smtplib.SMTP(host, sub_port, local_hostname="laptop.test", timeout=30) as s:
    s.starttls(context=ctx)
    s.ehlo()
    s.user, s.password = user, password
    code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    if code != 235:
        fail(f"AUTH LOGIN: {code}")
    s.send_message(message(2))
    forged = message(99)
    del forged["From"]
    forged["From"] = "someone.else@example.org"
    try:
        s.send_message(forged, from_addr=user)
        fail("a forged From header was accepted")
    except smtplib.SMTPDataError as e:
        if e.smtp_code != 553 or b"5.7.1" not in e.smtp_error:
            fail(f"forged From: expected 553 5.7.1, got {e.smtp_code} {e.smtp_error!r}")

# 3. Implicit TLS on 465.
with smtplib.SMTP_SSL(host, subs_port, local_hostname="laptop.test", context=ctx, timeout=30) as s:
    s.login(user, password)
    s.sendmail(user, [rcpt], message(3).as_bytes(policy=email.policy.SMTP))

print("smtplib submission ok")
