//! Attempts on a made-up clock with a scripted transport: retries, expiry,
//! bounces, NOTIFY=NEVER, a lost message file, relayed and delayed reports.

use super::*;
use crate::retry::RetryPolicy;
use coimail_directory::Account;
use coimail_store::spool::{DsnNotify, SpoolEnvelope};
use std::collections::HashMap;
use std::sync::Mutex;

/// Answers each domain with its scripted outcomes in turn, then defers.
#[derive(Default)]
struct Scripted {
    replies: Mutex<HashMap<String, Vec<(AttemptOutcome, &'static str)>>>,
    calls: Mutex<Vec<String>>,
    /// Domains whose servers offer DSN.
    dsn: Vec<&'static str>,
}

impl Scripted {
    fn with(script: &[(&str, &[(AttemptOutcome, &'static str)])]) -> Scripted {
        let s = Scripted::default();
        for (domain, replies) in script {
            let mut r = replies.to_vec();
            r.reverse();
            s.replies.lock().unwrap().insert((*domain).to_owned(), r);
        }
        s
    }
}

impl Transport for Scripted {
    async fn deliver(&self, domain: &str, _: &SpoolEntry, rcpts: &[SpoolRecipient], _: &[u8]) -> Vec<SpoolResult> {
        self.calls.lock().unwrap().push(domain.to_owned());
        let next = self.replies.lock().unwrap().get_mut(domain).and_then(Vec::pop);
        let (outcome, reply) = next.unwrap_or((AttemptOutcome::Deferred, "421 4.4.1 down"));
        rcpts
            .iter()
            .map(|r| SpoolResult {
                address: r.address.clone(),
                host: Some(format!("mx.{domain}")),
                outcome,
                reply: reply.to_owned(),
                dsn_passed: self.dsn.contains(&domain),
            })
            .collect()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    ctx: Context<Scripted>,
    alice: Account,
}

async fn setup(transport: Scripted, retry: RetryPolicy) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_memory(dir.path()).unwrap();
    let directory = Directory::open(&store, None).unwrap();
    directory.add_domain("a.test").await.unwrap();
    let alice = directory.add_user("alice@a.test", "pw-alice", None).await.unwrap();
    let ctx = Context {
        store,
        directory,
        transport,
        retry,
        hostname: "mail.a.test".into(),
        delay_warning: 0,
        destination_concurrency: 4,
        reports: crate::ReportLimit::new(0, 0),
        on_report_delivered: None,
    };
    Setup { _dir: dir, ctx, alice }
}

impl Setup {
    async fn enqueue(&self, rcpts: Vec<SpoolRecipient>, now: i64) -> u64 {
        let envelope = SpoolEnvelope { sender: "alice@a.test".into(), env_id: None, ret: None, recipients: rcpts };
        self.ctx.store.spool_enqueue(envelope, b"Subject: hi\r\n\r\nbody\r\n", now).await.unwrap().id
    }

    /// Leases what is due at `now` and runs it, like the runner does.
    async fn tick(&self, now: i64) -> usize {
        let due = self.ctx.store.spool_lease(now, 3600, 10).unwrap();
        let n = due.len();
        for e in due {
            run(&self.ctx, e, now).await.unwrap();
        }
        n
    }

    async fn inbox(&self) -> Vec<String> {
        let store = &self.ctx.store;
        let inbox = store.mailbox(self.alice.id, "INBOX").unwrap();
        let mut out = Vec::new();
        for m in store.messages(self.alice.id, inbox.id).unwrap() {
            out.push(String::from_utf8(store.read_message(&m).await.unwrap()).unwrap());
        }
        out
    }
}

fn rcpt(address: &str) -> SpoolRecipient {
    SpoolRecipient::new(address, None, None)
}

#[tokio::test]
async fn deferred_then_delivered_on_the_retry_schedule() {
    let t = Scripted::with(&[(
        "b.test",
        &[(AttemptOutcome::Deferred, "421 4.4.1 busy"), (AttemptOutcome::Delivered, "250 ok")],
    )]);
    let s = setup(t, RetryPolicy::default()).await;
    let id = s.enqueue(vec![rcpt("bob@b.test")], 1000).await;
    assert_eq!(s.tick(1000).await, 1);
    let e = s.ctx.store.spool_get(id).unwrap().unwrap();
    assert_eq!((e.attempts, e.next_attempt, e.lease_until), (1, 1300, 0));
    assert_eq!(e.recipients[0].last_reply.as_deref(), Some("421 4.4.1 busy"));
    assert_eq!(s.tick(1299).await, 0, "not before the first retry (5 minutes)");
    assert_eq!(s.tick(1300).await, 1);
    assert!(s.ctx.store.spool_get(id).unwrap().is_none(), "delivered entries are deleted");
    assert!(s.inbox().await.is_empty(), "no bounce");
    assert!(s.ctx.store.spool_list().unwrap().is_empty());
}

#[tokio::test]
async fn a_permanent_failure_bounces_once_and_the_rest_is_delivered() {
    let t = Scripted::with(&[
        ("b.test", &[(AttemptOutcome::Delivered, "250 2.0.0 ok")]),
        ("c.test", &[(AttemptOutcome::Failed, "550 5.1.1 no such user here")]),
    ]);
    let mut s = setup(t, RetryPolicy::default()).await;
    // What the daemon wires to Delta Chat's push: told once, of the INBOX copy.
    let told: std::sync::Arc<Mutex<Vec<(String, String, String)>>> = Default::default();
    let record = told.clone();
    s.ctx.on_report_delivered = Some(std::sync::Arc::new(move |copies, raw| {
        for (_, placement) in copies {
            let raw = String::from_utf8_lossy(raw).into_owned();
            record.lock().unwrap().push((placement.address.clone(), placement.mailbox.clone(), raw));
        }
    }));
    let id = s.enqueue(vec![rcpt("bob@b.test"), rcpt("nobody@C.test")], 0).await;
    s.tick(0).await;
    assert!(s.ctx.store.spool_get(id).unwrap().is_none());
    let inbox = s.inbox().await;
    assert_eq!(inbox.len(), 1, "one bounce");
    let told = told.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "the hook hears of the bounce once");
    assert_eq!((told[0].0.as_str(), told[0].1.as_str()), ("alice@a.test", "INBOX"));
    assert!(inbox[0].ends_with(&told[0].2), "the hook gets the report as filed");
    assert!(inbox[0].contains("Final-Recipient: rfc822;nobody@C.test\r\n"), "{}", inbox[0]);
    assert!(inbox[0].contains("Status: 5.1.1\r\n") && inbox[0].contains("Remote-MTA: dns; mx.c.test"));
    assert!(!inbox[0].contains("rfc822;bob@b.test"), "the delivered recipient is not reported");
    assert_eq!(*s.ctx.transport.calls.lock().unwrap(), ["b.test", "c.test"], "one transaction per domain");
}

#[tokio::test]
async fn deferrals_expire_into_a_bounce_on_a_fake_clock() {
    let retry = RetryPolicy { initial: 10, max: 40, expire: 100 };
    let s = setup(Scripted::default(), retry).await;
    let id = s.enqueue(vec![rcpt("bob@b.test")], 0).await;
    let mut clock = 0;
    let mut attempts_at = Vec::new();
    while let Some(e) = s.ctx.store.spool_get(id).unwrap() {
        clock = e.next_attempt;
        assert_eq!(s.tick(clock).await, 1);
        attempts_at.push(clock);
        assert!(attempts_at.len() < 20, "never expired");
    }
    assert_eq!(attempts_at, [0, 10, 30, 70, 100]);
    let inbox = s.inbox().await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains("Status: 4.4.7\r\n"), "{}", inbox[0]);
    assert!(inbox[0].contains("delivery time expired after 5 attempts; last error: 421 4.4.1 down"), "{}", inbox[0]);
    assert_eq!(clock, 100);
}

#[tokio::test]
async fn notify_never_means_no_bounce() {
    let t = Scripted::with(&[("b.test", &[(AttemptOutcome::Failed, "550 5.1.1 no")])]);
    let s = setup(t, RetryPolicy::default()).await;
    let never = SpoolRecipient::new("x@b.test", None, Some(DsnNotify::default()));
    let id = s.enqueue(vec![never], 0).await;
    s.tick(0).await;
    assert!(s.ctx.store.spool_get(id).unwrap().is_none());
    assert!(s.inbox().await.is_empty());
}

#[tokio::test]
async fn a_lost_message_file_fails_and_bounces_without_the_original() {
    let s = setup(Scripted::default(), RetryPolicy::default()).await;
    let id = s.enqueue(vec![rcpt("bob@b.test")], 0).await;
    std::fs::remove_file(s._dir.path().join("spool").join(format!("{id:020}"))).unwrap();
    s.tick(0).await;
    assert!(s.ctx.transport.calls.lock().unwrap().is_empty(), "nothing to send");
    let inbox = s.inbox().await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains("Status: 5.3.0"), "{}", inbox[0]);
    assert!(!inbox[0].contains("message/rfc822"), "{}", inbox[0]);
}

fn notify(success: bool, failure: bool, delay: bool) -> Option<DsnNotify> {
    Some(DsnNotify { success, failure, delay })
}

#[tokio::test]
async fn notify_success_gets_relayed_only_from_servers_without_dsn() {
    let ok = [(AttemptOutcome::Delivered, "250 2.0.0 taken")];
    let mut t = Scripted::with(&[("plain.test", &ok), ("dsn.test", &ok), ("quiet.test", &ok)]);
    t.dsn = vec!["dsn.test"];
    let s = setup(t, RetryPolicy::default()).await;
    let success = notify(true, true, false);
    s.enqueue(
        vec![
            SpoolRecipient::new("x@plain.test", Some("X@plain.test".into()), success),
            SpoolRecipient::new("y@dsn.test", None, success),
            SpoolRecipient::new("z@quiet.test", None, None),
        ],
        0,
    )
    .await;
    s.tick(0).await;
    assert!(s.ctx.store.spool_list().unwrap().is_empty());
    let inbox = s.inbox().await;
    assert_eq!(inbox.len(), 1, "one report: {inbox:?}");
    let r = &inbox[0];
    assert!(r.contains("Subject: Successful Mail Delivery Report"), "{r}");
    assert!(r.contains("Original-Recipient: rfc822;X@plain.test\r\nFinal-Recipient: rfc822;x@plain.test\r\nAction: relayed\r\nStatus: 2.0.0\r\n"), "{r}");
    assert!(!r.contains("y@dsn.test"), "the DSN-capable server reports itself: {r}");
    assert!(!r.contains("z@quiet.test"), "no NOTIFY=SUCCESS, no report: {r}");
}

#[tokio::test]
async fn one_delay_report_per_recipient_then_delivery_or_expiry() {
    let retry = RetryPolicy { initial: 100, max: 100, expire: 1_000 };
    let mut s = setup(Scripted::default(), retry).await;
    s.ctx.delay_warning = 250;
    s.enqueue(
        vec![
            rcpt("default@b.test"),
            SpoolRecipient::new("delay@b.test", None, notify(false, false, true)),
            SpoolRecipient::new("failure-only@b.test", None, notify(false, true, false)),
            SpoolRecipient::new("never@b.test", None, Some(DsnNotify::default())),
        ],
        0,
    )
    .await;
    // Attempts at 0, 100, 200, then one at 250 for the report (earlier than the retry at 300).
    let mut at = Vec::new();
    while let Some(e) = s.ctx.store.spool_list().unwrap().pop() {
        at.push(e.next_attempt);
        s.tick(e.next_attempt).await;
        if at.len() == 4 {
            break;
        }
    }
    assert_eq!(at, [0, 100, 200, 250]);
    let inbox = s.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let r = &inbox[0];
    assert!(r.contains("Subject: Delayed Mail (still being retried)"), "{r}");
    assert!(r.contains("Final-Recipient: rfc822;default@b.test\r\nAction: delayed\r\nStatus: 4.4.1\r\n"), "{r}");
    assert!(r.contains("Final-Recipient: rfc822;delay@b.test\r\nAction: delayed\r\n"), "{r}");
    assert!(r.contains("Will-Retry-Until: Thu, 1 Jan 1970 00:16:40 +0000\r\n"), "{r}");
    assert!(!r.contains("failure-only@") && !r.contains("never@"), "{r}");
    let e = s.ctx.store.spool_list().unwrap().remove(0);
    assert_eq!(e.recipients.iter().filter(|r| r.delay_notified).count(), 2, "recorded in the entry");
    assert_eq!(e.next_attempt, 350, "back on the retry schedule");
    // Later attempts send no second delay report; expiry bounces the ones that want it.
    while let Some(e) = s.ctx.store.spool_list().unwrap().pop() {
        s.tick(e.next_attempt).await;
    }
    let inbox = s.inbox().await;
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    let bounce = &inbox[1];
    assert!(bounce.contains("Subject: Undelivered Mail"), "{bounce}");
    for (rcpt, reported) in [("default", true), ("delay", false), ("failure-only", true), ("never", false)] {
        assert_eq!(bounce.contains(&format!("rfc822;{rcpt}@b.test")), reported, "{rcpt}: {bounce}");
    }
}

#[tokio::test]
async fn no_delay_report_when_disabled_or_delivered_in_time() {
    for (warning, deliver_at_second_try) in [(0, false), (500, true)] {
        let retry = RetryPolicy { initial: 100, max: 100, expire: 300 };
        let replies: &[(AttemptOutcome, &str)] = if deliver_at_second_try {
            &[(AttemptOutcome::Deferred, "421 4.4.1 down"), (AttemptOutcome::Delivered, "250 ok")]
        } else {
            &[]
        };
        let mut s = setup(Scripted::with(&[("b.test", replies)]), retry).await;
        s.ctx.delay_warning = warning;
        s.enqueue(vec![rcpt("bob@b.test")], 0).await;
        while let Some(e) = s.ctx.store.spool_list().unwrap().pop() {
            s.tick(e.next_attempt).await;
        }
        let inbox = s.inbox().await;
        assert!(inbox.iter().all(|m| !m.contains("Action: delayed")), "warning {warning}: {inbox:?}");
    }
}
