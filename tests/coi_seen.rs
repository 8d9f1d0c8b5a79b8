//! COI black box, part 4: the `seen` filter (R28) — chat messages wait in
//! INBOX until a client marks them `\Seen`, then move to Chats; every
//! session learns of it at its next sync point — and R25 (`$Chat` only at
//! delivery). Helpers in `coi.rs`.

use crate::coi::{
    ALICE, FILTER, Msg, append, append_flags, assert_ok, chat, contents, deliver, enable, fetched, find, idle,
    idle_done, login, mail, set, start, wait_for,
};
use crate::util::{ImapClient, TestServer};

/// alice with COI on and `seen`, `n` chats delivered to INBOX; returns their ids.
async fn setup(n: usize, tag: &str) -> (TestServer, ImapClient, Vec<String>) {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    enable(&mut c, "seen").await;
    let mut ids = Vec::new();
    for i in 1..=n {
        let (id, msg) = chat(&format!("{tag}{i}"));
        deliver(&server, &[ALICE], &msg).await;
        ids.push(id);
    }
    (server, c, ids)
}

fn expunged(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXPUNGE")?.parse().ok()).collect()
}

async fn inbox_and_chats(server: &TestServer) -> (Vec<Msg>, Vec<Msg>) {
    let mut c = login(server, ALICE).await;
    (contents(&mut c, "INBOX").await.unwrap(), contents(&mut c, "COI/Chats").await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_seen_delivers_to_inbox_with_chat_keyword() {
    let (server, _c, ids) = setup(1, "deliv").await;
    deliver(&server, &[ALICE], &mail("seen-plain@remote.test", "")).await;
    let (inbox, chats) = inbox_and_chats(&server).await;
    assert!(find(&inbox, &ids[0]).is_some_and(|m| m.flags == ["$Chat"]), "R28: {inbox:?}");
    assert!(find(&inbox, "seen-plain@remote.test").is_some_and(|m| m.flags.is_empty()));
    assert!(chats.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_store_seen_moves_at_the_next_sync_point_for_every_session() {
    let (server, mut c, ids) = setup(2, "store").await;
    assert_ok(&c.command("SELECT INBOX").await, "SELECT");
    let mut other = login(&server, ALICE).await;
    assert_ok(&other.command("SELECT INBOX").await, "SELECT (other)");
    let mut watcher = login(&server, ALICE).await;
    assert_ok(&watcher.command("SELECT \"COI/Chats\"").await, "SELECT Chats");
    let tag = idle(&mut watcher).await;

    let r = c.command("STORE 1 +FLAGS (\\Seen)").await;
    assert_ok(&r, "STORE");
    let fetch = r.text();
    let line = fetch.lines().find(|l| l.starts_with("* 1 FETCH (")).unwrap_or_else(|| panic!("{fetch}"));
    assert!(line.contains("\\Seen") && line.contains("$Chat"), "R28: the STORE's FETCH: {line}");
    assert!(expunged(&fetch).is_empty(), "RFC 3501 §7.4.1: no EXPUNGE during STORE: {fetch}");

    let woke = wait_for(&mut watcher, "EXISTS").await;
    assert!(woke.contains("* 1 EXISTS"), "R28: Chats watcher woken: {woke}");
    idle_done(&mut watcher, &tag).await;

    let r = c.command("NOOP").await;
    assert_eq!(expunged(&r.text()), vec![1], "R28: EXPUNGE on NOOP: {}", r.text());
    let r = other.command("NOOP").await;
    assert_eq!(expunged(&r.text()), vec![1], "R28: the other session too: {}", r.text());

    let (inbox, chats) = inbox_and_chats(&server).await;
    assert!(find(&inbox, &ids[0]).is_none(), "R28: gone from INBOX: {inbox:?}");
    let moved = find(&chats, &ids[0]).unwrap_or_else(|| panic!("R28: in Chats: {chats:?}"));
    assert!(moved.has("\\Seen") && moved.has("$Chat"), "R28: flags kept: {:?}", moved.flags);
    assert!(find(&inbox, &ids[1]).is_some_and(|m| !m.has("\\Seen")), "the unread one stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_uid_store_moves_and_keeps_other_flags() {
    let (server, mut c, ids) = setup(2, "uid").await;
    assert_ok(&c.command("SELECT INBOX").await, "SELECT");
    assert_ok(&c.command("UID STORE 2 +FLAGS ($Important \\Flagged)").await, "flag first");
    let r = c.command("UID STORE 2 +FLAGS (\\Seen)").await;
    assert_ok(&r, "UID STORE");
    assert!(r.text().contains("UID 2"), "{}", r.text());
    // UID STORE may carry the EXPUNGE itself; otherwise the next command does.
    let mut seen = r.text();
    seen.push_str(&c.command("NOOP").await.text());
    assert_eq!(expunged(&seen), vec![2], "R28: {seen}");
    let (inbox, chats) = inbox_and_chats(&server).await;
    assert!(find(&inbox, &ids[1]).is_none());
    let moved = find(&chats, &ids[1]).unwrap_or_else(|| panic!("{chats:?}"));
    for f in ["\\Seen", "$Chat", "\\Flagged", "$Important"] {
        assert!(moved.has(f), "R28: {f} kept: {:?}", moved.flags);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_store_flags_replacing_with_seen_and_chat_moves() {
    let (server, mut c, ids) = setup(1, "repl").await;
    assert_ok(&c.command("SELECT INBOX").await, "SELECT");
    assert_ok(&c.command("STORE 1 FLAGS (\\Seen $Chat)").await, "STORE FLAGS");
    let r = c.command("NOOP").await;
    assert_eq!(expunged(&r.text()), vec![1], "R28: {}", r.text());
    let (_, chats) = inbox_and_chats(&server).await;
    assert!(find(&chats, &ids[0]).is_some_and(|m| m.has("\\Seen") && m.chat()), "{chats:?}");
}

/// Dovecot decides on the flags the message had *before* the STORE
/// (imap-coi-storage.c `imap_coi_update_flags` looks at the old keywords),
/// so `STORE FLAGS (\Seen)` — which also drops `$Chat` — still moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_store_flags_seen_alone_moves_like_dovecot() {
    let (server, mut c, ids) = setup(1, "replonly").await;
    assert_ok(&c.command("SELECT INBOX").await, "SELECT");
    assert_ok(&c.command("STORE 1 FLAGS (\\Seen)").await, "STORE FLAGS");
    let r = c.command("NOOP").await;
    assert_eq!(expunged(&r.text()), vec![1], "R28: STORE FLAGS (\\Seen) on a $Chat message: {}", r.text());
    let (_, chats) = inbox_and_chats(&server).await;
    assert!(find(&chats, &ids[0]).is_some_and(|m| m.has("\\Seen")), "{chats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_fetch_body_without_peek_moves_after_the_fetch() {
    let (server, mut c, ids) = setup(2, "fetch").await;
    assert_ok(&c.command("SELECT INBOX").await, "SELECT");
    let r = c.command("FETCH 2 BODY[]").await;
    assert_ok(&r, "FETCH");
    let text = r.text();
    assert!(text.contains(&format!("Message-ID: <{}>", ids[1])), "the body is still served: {text}");
    assert!(text.contains("\\Seen") && text.contains("$Chat"), "R28: implicit \\Seen reported: {text}");
    assert!(expunged(&text).is_empty(), "RFC 3501 §7.4.1: no EXPUNGE during FETCH: {text}");
    let r = c.command("NOOP").await;
    assert_eq!(expunged(&r.text()), vec![2], "R28: {}", r.text());
    // BODY.PEEK does not set \Seen and moves nothing.
    let r = c.command("FETCH 1 BODY.PEEK[]").await;
    assert_ok(&r, "FETCH PEEK");
    let r = c.command("NOOP").await;
    assert!(expunged(&r.text()).is_empty(), "{}", r.text());
    // UID FETCH of BODY[] (RFC822 too) moves as well.
    let r = c.command("UID FETCH 1 RFC822").await;
    assert_ok(&r, "UID FETCH RFC822");
    let mut seen = r.text();
    seen.push_str(&c.command("NOOP").await.text());
    assert_eq!(expunged(&seen), vec![1], "R28: {seen}");
    let (inbox, chats) = inbox_and_chats(&server).await;
    assert!(inbox.is_empty(), "{inbox:?}");
    assert_eq!(chats.len(), 2);
    assert!(chats.iter().all(|m| m.has("\\Seen") && m.chat()), "{chats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_only_the_unseen_to_seen_transition_counts() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    // Read while the filter was `none`: stays.
    enable(&mut c, "none").await;
    let (id, msg) = chat("trans");
    deliver(&server, &[ALICE], &msg).await;
    assert_ok(&c.command("SELECT INBOX").await, "SELECT");
    assert_ok(&c.command("STORE 1 +FLAGS (\\Seen)").await, "STORE while none");
    assert!(expunged(&c.command("NOOP").await.text()).is_empty(), "R26: none does not move");
    // Now `seen`: storing \Seen again is no transition.
    set(&mut c, FILTER, "seen").await;
    for cmd in ["STORE 1 +FLAGS (\\Seen)", "STORE 1 FLAGS (\\Seen $Chat)", "FETCH 1 BODY[]"] {
        assert_ok(&c.command(cmd).await, cmd);
        let r = c.command("NOOP").await;
        assert!(expunged(&r.text()).is_empty(), "R28: {cmd} on a seen message: {}", r.text());
    }
    // Unseen, then seen again: that is a transition.
    assert_ok(&c.command("STORE 1 -FLAGS (\\Seen)").await, "unseen");
    assert!(expunged(&c.command("NOOP").await.text()).is_empty(), "removing \\Seen moves nothing");
    assert_ok(&c.command("STORE 1 +FLAGS (\\Seen)").await, "seen");
    assert_eq!(expunged(&c.command("NOOP").await.text()), vec![1]);
    let (_, chats) = inbox_and_chats(&server).await;
    assert!(find(&chats, &id).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_only_chats_in_inbox_move() {
    let (server, mut c, ids) = setup(1, "where").await;
    deliver(&server, &[ALICE], &mail("where-plain@remote.test", "")).await;
    // A chat in another folder: copied there with its $Chat.
    assert_ok(&c.command("CREATE Other").await, "CREATE");
    assert_ok(&c.command("SELECT INBOX").await, "SELECT");
    assert_ok(&c.command("COPY 1 Other").await, "COPY");
    assert_ok(&c.command("SELECT Other").await, "SELECT Other");
    let r = c.command("FETCH 1 FLAGS").await;
    assert!(r.text().contains("$Chat"), "COPY keeps the keyword: {}", r.text());
    assert_ok(&c.command("STORE 1 +FLAGS (\\Seen)").await, "STORE in Other");
    assert!(expunged(&c.command("NOOP").await.text()).is_empty(), "R28: only INBOX is watched");
    // A non-chat in INBOX.
    assert_ok(&c.command("SELECT INBOX").await, "SELECT");
    assert_ok(&c.command("STORE 2 +FLAGS (\\Seen)").await, "STORE plain");
    assert!(expunged(&c.command("NOOP").await.text()).is_empty(), "R28: a non-chat stays");
    // A $chat keyword in other case still counts (R28: case-insensitive).
    assert_ok(&c.command("STORE 2 +FLAGS ($chat)").await, "lower-case keyword");
    let (inbox, chats) = inbox_and_chats(&server).await;
    assert!(find(&inbox, &ids[0]).is_some() && find(&inbox, "where-plain@remote.test").is_some());
    assert!(chats.is_empty(), "{chats:?}");
    let r = c.command("STORE 2 -FLAGS (\\Seen)").await;
    assert_ok(&r, "unseen");
    assert_ok(&c.command("STORE 2 +FLAGS (\\Seen)").await, "seen with $chat");
    let r = c.command("NOOP").await;
    assert_eq!(expunged(&r.text()), vec![2], "R28: keyword compared case-insensitively: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_r29_no_move_once_disabled_or_filter_changed() {
    let (server, mut c, ids) = setup(2, "off").await;
    assert_ok(&c.command("SELECT INBOX").await, "SELECT");
    set(&mut c, FILTER, "active").await;
    assert_ok(&c.command("STORE 1 +FLAGS (\\Seen)").await, "STORE under active");
    assert!(expunged(&c.command("NOOP").await.text()).is_empty(), "R28: only `seen` moves");
    set(&mut c, FILTER, "seen").await;
    let mut other = login(&server, ALICE).await;
    set(&mut other, crate::coi::ENABLED, "NIL").await;
    assert_ok(&c.command("STORE 2 +FLAGS (\\Seen)").await, "STORE while disabled");
    assert!(expunged(&c.command("NOOP").await.text()).is_empty(), "R29 + R16: disabled in another session");
    let (inbox, _) = inbox_and_chats(&server).await;
    assert!(ids.iter().all(|id| find(&inbox, id).is_some()), "{inbox:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_append_gets_no_chat_keyword_and_is_not_moved() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    enable(&mut c, "seen").await;
    let (id, msg) = chat("appended");
    append(&mut c, "INBOX", &msg).await;
    let (id2, msg2) = chat("appended-seen");
    append_flags(&mut c, "INBOX", "\\Seen", &msg2).await;
    let inbox = contents(&mut c, "INBOX").await.unwrap();
    assert!(find(&inbox, &id).is_some_and(|m| m.flags.is_empty()), "R25: {inbox:?}");
    assert!(find(&inbox, &id2).is_some_and(|m| m.flags == ["\\Seen"]), "R25: {inbox:?}");
    assert_ok(&c.command("SELECT INBOX").await, "SELECT");
    assert_ok(&c.command("STORE 1 +FLAGS (\\Seen)").await, "STORE");
    assert!(expunged(&c.command("NOOP").await.text()).is_empty(), "R25: an APPENDed chat is no $Chat message");
    // Under `active`, APPEND to INBOX is not filed either.
    set(&mut c, FILTER, "active").await;
    let (id3, msg3) = chat("appended-active");
    append(&mut c, "INBOX", &msg3).await;
    let r = c.command("UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])").await;
    let inbox = fetched(&r.text());
    assert!(find(&inbox, &id3).is_some_and(|m| !m.chat()), "R25: {inbox:?}");
    let chats = contents(&mut c, "COI/Chats").await.unwrap();
    assert!(chats.is_empty(), "{chats:?}");
}
