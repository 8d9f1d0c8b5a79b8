use super::*;
use crate::types::{Flags, Uid};

fn flags(f: &[&str]) -> Flags {
    f.iter().copied().collect()
}

#[test]
fn names_round_trip_and_sort_snapshot_before_segment() {
    let s = Name { epoch: 2, seq: 10, kind: Kind::Snapshot };
    let l = Name { epoch: 2, seq: 10, kind: Kind::Segment };
    assert_eq!(Name::parse(&s.file()), Some(s));
    assert_eq!(Name::parse(&l.file()), Some(l));
    assert!(s < l);
    for bad in ["x.log", "0-1.log", "0000000000000002-000000000000000a.snap.tmp", "a.txt"] {
        assert_eq!(Name::parse(bad), None, "{bad}");
    }
}

#[test]
fn projection_follows_records() {
    let mut p = Projection::default();
    let entry = |name: &str| MailboxEntry {
        account: 1,
        name: name.into(),
        uid_validity: 9,
        special_use: None,
        subscribed: None,
    };
    for r in [
        Record::Account { id: 1, address: "a@x".into() },
        Record::Mailbox { id: 5, mailbox: entry("INBOX") },
        Record::Mailbox { id: 6, mailbox: entry("Old") },
        Record::Message { mailbox: 5, uid: Uid(1), blob: "b1".into(), flags: flags(&[]) },
        Record::Message { mailbox: 5, uid: Uid(2), blob: "b2".into(), flags: flags(&[]) },
        Record::Message { mailbox: 6, uid: Uid(1), blob: "b1".into(), flags: flags(&["\\Seen"]) },
        Record::Message { mailbox: 5, uid: Uid(1), blob: "b1".into(), flags: flags(&["$Chat"]) },
        Record::MessageGone { mailbox: 5, uid: Uid(2) },
        Record::BlobGone { blob: "b2".into() },
        Record::Mailbox { id: 7, mailbox: entry("Gone") },
        Record::Message { mailbox: 7, uid: Uid(1), blob: "b3".into(), flags: flags(&[]) },
        Record::MailboxGone { id: 7 },
    ] {
        p.apply(r);
    }
    let by_blob = p.by_blob();
    assert_eq!(by_blob["b1"], vec![(5, Uid(1), &flags(&["$Chat"])), (6, Uid(1), &flags(&["\\Seen"]))]);
    assert!(!by_blob.contains_key("b2") && !by_blob.contains_key("b3"));
    assert_eq!(p.gone(), vec!["b2", "b3"]);
    assert_eq!(p.mailboxes.len(), 2);
    // A projection's records re-create it (tombstones aside).
    let mut again = Projection::default();
    p.records().for_each(|r| again.apply(r));
    assert_eq!((again.accounts, again.mailboxes, again.messages), (p.accounts, p.mailboxes, p.messages));
}

#[test]
fn subscriptions_in_legacy_mailbox_records_follow_the_mailbox_and_later_ones_do_not() {
    let entry = |name: &str, subscribed: Option<bool>| MailboxEntry {
        account: 1,
        name: name.into(),
        uid_validity: 9,
        special_use: None,
        subscribed,
    };
    let subs = |p: &Projection| p.subscriptions.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>();
    let mut p = Projection::default();
    // Written by an earlier version: the flag moves and goes with the record.
    for r in [
        Record::Mailbox { id: 5, mailbox: entry("INBOX", Some(true)) },
        Record::Mailbox { id: 6, mailbox: entry("Old", Some(true)) },
        Record::Mailbox { id: 7, mailbox: entry("Junk", Some(false)) },
        Record::Mailbox { id: 6, mailbox: entry("New", Some(true)) },
        Record::Mailbox { id: 8, mailbox: entry("Gone", Some(true)) },
        Record::MailboxGone { id: 8 },
    ] {
        p.apply(r);
    }
    assert_eq!(subs(&p), ["INBOX", "New"]);
    // The upgrade, in either order within its batch, then today's records.
    for r in [
        Record::Subscribed { account: 1, name: "New".into() },
        Record::Mailbox { id: 6, mailbox: entry("New", None) },
        Record::Mailbox { id: 5, mailbox: entry("INBOX", None) },
        Record::Subscribed { account: 1, name: "INBOX".into() },
        Record::Mailbox { id: 7, mailbox: entry("Junk", None) },
        Record::MailboxGone { id: 6 },
        Record::Subscribed { account: 1, name: "Nowhere".into() },
        Record::Unsubscribed { account: 1, name: "INBOX".into() },
    ] {
        p.apply(r);
    }
    assert_eq!(subs(&p), ["New", "Nowhere"]);
    let mut again = Projection::default();
    p.records().for_each(|r| again.apply(r));
    assert_eq!(again.subscriptions, p.subscriptions);
    // The records a batch implies.
    let mut b = Batch::default();
    b.insert(keys::subscription(crate::types::AccountId(1), "a/b"), Vec::new());
    b.remove(keys::subscription(crate::types::AccountId(1), "c"));
    assert_eq!(
        records_of(&b).unwrap(),
        [Record::Subscribed { account: 1, name: "a/b".into() }, Record::Unsubscribed { account: 1, name: "c".into() }]
    );
}

#[test]
fn a_batch_the_index_refuses_leaves_no_frame() {
    let dir = tempfile::tempdir().unwrap();
    let tree = crate::kv::Kv::memory().tree("mail").unwrap();
    let opened = Journal::open(&dir.path().join("journal"), &tree, &dir.path().join("blobs")).unwrap();
    let jt = JournaledTree::new(tree.clone(), opened.journal);
    let gone = |uid| {
        let mut b = Batch::default();
        b.remove(keys::message(crate::types::MailboxId(5), uid));
        b
    };
    jt.apply(gone(Uid(1))).unwrap();
    let (bytes, written, path) = {
        let seg = jt.journal.segment();
        let name = Name { epoch: jt.journal.epoch, seq: seg.seq, kind: Kind::Segment };
        (seg.bytes, jt.journal.shared.written.load(Ordering::Acquire), jt.journal.dir.join(name.file()))
    };
    assert!(bytes > 0 && written == 1);
    tree.poison_for_test();
    assert!(jt.apply(gone(Uid(2))).is_err());
    let seg = jt.journal.segment();
    assert_eq!((seg.bytes, seg.broken), (bytes, false));
    assert_eq!(jt.journal.shared.written.load(Ordering::Acquire), written);
    assert_eq!(fs::metadata(&path).unwrap().len(), bytes);
    let mut got = Vec::new();
    assert!(read_file(&path, &mut |r| got.push(r)).unwrap());
    assert_eq!(got, vec![Record::MessageGone { mailbox: 5, uid: Uid(1) }]);
}

#[test]
fn torn_and_corrupt_frames_end_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let one = vec![Record::AccountGone { id: 1 }];
    let two = vec![Record::AccountGone { id: 2 }];
    let mut bytes = frame(&one).unwrap();
    bytes.extend(frame(&two).unwrap());
    let whole = bytes.len();
    fs::write(&path, &bytes).unwrap();
    let read = |path: &Path| {
        let mut got = Vec::new();
        let ok = read_file(path, &mut |r| got.push(r)).unwrap();
        (ok, got)
    };
    assert_eq!(read(&path), (true, vec![one[0].clone(), two[0].clone()]));
    // The zeros a live segment keeps ahead of its frames end it cleanly...
    let mut zeroed = bytes.clone();
    zeroed.resize(whole + 4096, 0);
    fs::write(&path, &zeroed).unwrap();
    assert_eq!(read(&path), (true, vec![one[0].clone(), two[0].clone()]));
    // ...and a frame torn inside them is still torn.
    let mut torn = zeroed.clone();
    torn[whole - 3..whole].fill(0);
    fs::write(&path, &torn).unwrap();
    assert_eq!(read(&path), (false, one.clone()));
    // Torn tail: the last frame is cut short.
    fs::write(&path, &bytes[..whole - 3]).unwrap();
    assert_eq!(read(&path), (false, one.clone()));
    // A flipped byte in the second frame's payload.
    let mut bad = bytes.clone();
    bad[whole - 2] ^= 0x20;
    fs::write(&path, &bad).unwrap();
    assert_eq!(read(&path), (false, one.clone()));
    // A length pointing past the end allocates nothing.
    let mut huge = frame(&one).unwrap();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    huge.extend_from_slice(&[0; 4]);
    fs::write(&path, &huge).unwrap();
    assert_eq!(read(&path), (false, one));
}

#[test]
fn frames_are_written_into_zeros_laid_down_ahead_and_closing_cuts_them_off() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("journal");
    let tree = crate::kv::Kv::memory().tree("mail").unwrap();
    let opened = Journal::open(&jdir, &tree, &dir.path().join("blobs")).unwrap();
    let jt = JournaledTree::new(tree.clone(), opened.journal);
    let gone = |uid| {
        let mut b = Batch::default();
        b.remove(keys::message(crate::types::MailboxId(5), Uid(uid)));
        b
    };
    let path = |j: &Journal, seq| j.dir.join(Name { epoch: j.epoch, seq, kind: Kind::Segment }.file());
    for uid in 1..=3 {
        jt.apply(gone(uid)).unwrap();
    }
    let (seq, bytes) = {
        let seg = jt.journal.segment();
        (seg.seq, seg.bytes)
    };
    let first = path(&jt.journal, seq);
    // The file is longer than its frames: its size does not change per commit.
    assert!(fs::metadata(&first).unwrap().len() >= ZEROED_AHEAD && bytes < ZEROED_AHEAD);
    let mut got = Vec::new();
    assert!(read_file(&first, &mut |r| got.push(r)).unwrap());
    assert_eq!(got.len(), 3);
    // A segment being closed keeps its frames only.
    jt.journal.rotate(&mut jt.journal.segment()).unwrap();
    assert_eq!(fs::metadata(&first).unwrap().len(), bytes);
    // A crash leaves the new segment as zeros only: the next open finds it
    // empty and removes it instead of keeping an empty segment forever.
    jt.apply(gone(4)).unwrap();
    let second = path(&jt.journal, seq + 1);
    {
        let seg = jt.journal.segment();
        seg.file.write_all_at(&[0; 64], 0).unwrap();
    }
    drop(jt);
    let reopened = Journal::open(&jdir, &tree, &dir.path().join("blobs")).unwrap();
    // (The reopened journal's new segment takes the freed number.)
    assert_eq!(reopened.journal.segment().seq, seq + 1);
    assert_eq!(fs::metadata(&second).unwrap().len(), 0, "a segment of zeros only was kept");
    assert!(first.exists());
}
