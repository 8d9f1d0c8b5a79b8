//! COI black box, part 2: the per-user configuration entries (R11–R16),
//! folder naming (R17) and switching COI through folder operations
//! (R18–R21). Helpers are in `coi.rs`.

use crate::coi::{
    ALICE, BOB, CONFIG, ENABLED, FILTER, ROOT, append, assert_cannot, assert_ok, enabled, filter, get_entry,
    has_mailbox, list_all, listed, login, set, start, start_with,
};
use crate::util::ImapClient;

async fn lsub(c: &mut ImapClient) -> Vec<String> {
    let r = c.command("LSUB \"\" \"*\"").await;
    assert_ok(&r, "LSUB");
    listed(&r.text(), "LSUB").into_iter().map(|(n, _)| n).collect()
}

fn attrs_of<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
    list.iter().find(|(n, _)| n == name).map(|(_, a)| a.as_str())
}

// ---------------------------------------------------------------- R11

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_mailbox_root_always_present_and_read_only() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    assert_eq!(get_entry(&mut c, "\"\"", ROOT).await.as_deref(), Some(&b"COI"[..]), "R11: before enabling");
    for v in ["myroot", "\"COI\"", "NIL"] {
        let r = c.command(&format!("SETMETADATA \"\" ({ROOT} {v})")).await;
        assert_cannot(&r, &format!("R11: mailbox-root {v}"));
    }
    // A refused entry in a multi-pair command: nothing after it is applied either.
    let r = c.command(&format!("SETMETADATA \"\" ({ROOT} x {FILTER} seen)")).await;
    assert_cannot(&r, "R11 in a pair");
    assert_eq!(get_entry(&mut c, "\"\"", ROOT).await.as_deref(), Some(&b"COI"[..]));
    // Mixed case is the same read-only entry.
    let r = c.command("SETMETADATA \"\" (/private/vendor/vendor.dovecot/coi/config/Mailbox-Root x)").await;
    assert_cannot(&r, "R11 mixed case");
    set(&mut c, ENABLED, "yes").await;
    assert_eq!(get_entry(&mut c, "\"\"", ROOT).await.as_deref(), Some(&b"COI"[..]), "R11: after enabling");
}

// ---------------------------------------------------------------- R12

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_enabled_accepts_only_yes_or_nil_and_refusals_change_nothing() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    for bad in ["true", "YES", "Yes", "no", "\"\"", "\"yes \"", "1"] {
        let r = c.command(&format!("SETMETADATA \"\" ({ENABLED} {bad})")).await;
        assert_cannot(&r, &format!("R12: enabled {bad} while off"));
        assert_eq!(enabled(&mut c).await, None, "R12: still off after {bad}");
    }
    assert!(!has_mailbox(&mut c, "COI/Chats").await, "a refused enable creates nothing");
    set(&mut c, ENABLED, "yes").await;
    for bad in ["true", "YES", "no", "\"\""] {
        let r = c.command(&format!("SETMETADATA \"\" ({ENABLED} {bad})")).await;
        assert_cannot(&r, &format!("R12: enabled {bad} while on"));
        assert_eq!(enabled(&mut c).await.as_deref(), Some("yes"), "R12: still on after {bad}");
    }
    // NIL (any case) turns it off: the entry is gone, not "no".
    set(&mut c, ENABLED, "nil").await;
    assert_eq!(enabled(&mut c).await, None);
    // NIL while off is fine too.
    set(&mut c, ENABLED, "NIL").await;
    assert_eq!(enabled(&mut c).await, None);
}

/// R12/R14 say a refused value leaves the state unchanged; RFC 5464 §4.3
/// SETMETADATA sets every entry or none. So a refused COI entry anywhere in
/// a multi-pair command must undo nothing because nothing was applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_r12_r14_a_refused_pair_applies_no_other_pair() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    for cmd in [
        format!("SETMETADATA \"\" ({FILTER} seen {ROOT} x)"),
        format!("SETMETADATA \"\" ({FILTER} seen {ENABLED} true)"),
        format!("SETMETADATA \"\" ({ENABLED} yes {FILTER} Active)"),
        format!("SETMETADATA \"\" (/private/comment x {ENABLED} yes {CONFIG}/other 1)"),
    ] {
        let r = c.command(&cmd).await;
        assert_cannot(&r, &cmd);
        assert_eq!(enabled(&mut c).await, None, "{cmd}");
        assert_eq!(filter(&mut c).await, None, "{cmd}");
        assert_eq!(get_entry(&mut c, "\"\"", "/private/comment").await, None, "{cmd}");
        assert!(!has_mailbox(&mut c, "COI/Chats").await, "{cmd}: nothing created");
    }
}

// ---------------------------------------------------------------- R13

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_enabling_creates_chats_subscribed_and_contacts_before_the_ok() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    let before = list_all(&mut c).await;
    assert!(before.iter().all(|(n, _)| !n.starts_with("COI")), "nothing before: {before:?}");

    let r = c.command(&format!("SETMETADATA \"\" ({ENABLED} yes)")).await;
    assert_ok(&r, "enable");
    // Another connection, right after the OK: the folders are there.
    let mut other = login(&server, ALICE).await;
    let list = list_all(&mut other).await;
    let root = attrs_of(&list, "COI").unwrap_or_else(|| panic!("R13: COI parent listed: {list:?}"));
    assert!(root.contains("\\Noselect") && root.contains("\\HasChildren"), "RFC 3501/3348 parent: {root}");
    for child in ["COI/Chats", "COI/Contacts"] {
        let a = attrs_of(&list, child).unwrap_or_else(|| panic!("R13: {child} in {list:?}"));
        assert!(!a.contains("\\Noselect") && a.contains("\\HasNoChildren"), "{child}: {a}");
        let r = other.command(&format!("SELECT \"{child}\"")).await;
        assert_ok(&r, child);
    }
    let r = other.command("SELECT COI").await;
    assert!(r.status.contains(" NO "), "the root is no mailbox: {}", r.status);
    let subs = lsub(&mut other).await;
    assert!(subs.contains(&"COI/Chats".to_owned()), "R13: Chats subscribed: {subs:?}");
    assert!(!subs.contains(&"COI/Contacts".to_owned()), "R13: Contacts not subscribed: {subs:?}");

    // Idempotent: enabling again keeps folders and their messages.
    append(&mut c, "COI/Contacts", b"Subject: contact\r\n\r\nx\r\n").await;
    set(&mut c, ENABLED, "yes").await;
    let r = c.command("STATUS \"COI/Contacts\" (MESSAGES)").await;
    assert!(r.text().contains("MESSAGES 1"), "idempotent: {}", r.text());

    // Disabling removes nothing.
    set(&mut c, ENABLED, "NIL").await;
    assert_eq!(enabled(&mut c).await, None);
    let list = list_all(&mut c).await;
    assert!(attrs_of(&list, "COI/Chats").is_some() && attrs_of(&list, "COI/Contacts").is_some(), "{list:?}");
    assert!(lsub(&mut c).await.contains(&"COI/Chats".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_enabling_keeps_existing_folders() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    let r = c.command("CREATE \"COI/Contacts\"").await;
    assert_ok(&r, "CREATE Contacts");
    append(&mut c, "COI/Contacts", b"Subject: contact\r\n\r\nx\r\n").await;
    set(&mut c, ENABLED, "yes").await;
    let r = c.command("STATUS \"COI/Contacts\" (MESSAGES)").await;
    assert!(r.text().contains("MESSAGES 1"), "R13: existing folder kept: {}", r.text());
    assert!(has_mailbox(&mut c, "COI/Chats").await);
}

// ---------------------------------------------------------------- R14, R15

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_message_filter_values() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    assert_eq!(filter(&mut c).await, None, "absent means none");
    // May be set while disabled; creates nothing then (only takes effect once enabled).
    set(&mut c, FILTER, "seen").await;
    assert_eq!(filter(&mut c).await.as_deref(), Some("seen"));
    assert_eq!(enabled(&mut c).await, None);
    assert!(!has_mailbox(&mut c, "COI/Chats").await, "R14: a filter alone does not enable COI");
    for good in ["none", "active", "seen", "\"active\""] {
        set(&mut c, FILTER, good).await;
        assert_eq!(filter(&mut c).await.as_deref(), Some(good.trim_matches('"')));
    }
    for bad in ["Active", "inactive", "NONE", "\"\"", "\"seen \"", "read", "chat"] {
        let r = c.command(&format!("SETMETADATA \"\" ({FILTER} {bad})")).await;
        assert_cannot(&r, &format!("R14: {bad}"));
        assert_eq!(filter(&mut c).await.as_deref(), Some("active"), "R14: unchanged after {bad}");
    }
    // NIL is accepted (Dovecot crashes here) and resets to none: the entry is gone.
    set(&mut c, FILTER, "NIL").await;
    assert_eq!(filter(&mut c).await, None);
    set(&mut c, FILTER, "NIL").await;
    assert_eq!(filter(&mut c).await, None);
    // The server is still alive and answering.
    assert_ok(&c.command("NOOP").await, "NOOP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r15_filter_active_or_seen_while_enabled_has_chats() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    for f in ["active", "seen"] {
        set(&mut c, ENABLED, "yes").await;
        set(&mut c, FILTER, f).await;
        assert!(has_mailbox(&mut c, "COI/Chats").await, "R15: {f}");
        let r = c.command("DELETE \"COI/Chats\"").await;
        assert_ok(&r, "DELETE Chats");
        assert_eq!(enabled(&mut c).await, None, "R18");
        // The filter stays as it was, but COI is off now.
        assert_eq!(filter(&mut c).await.as_deref(), Some(f));
    }
}

// ---------------------------------------------------------------- R16

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_changes_are_seen_by_other_open_sessions_at_once() {
    let server = start(&[ALICE, BOB]).await;
    let mut a = login(&server, ALICE).await;
    let mut b = login(&server, ALICE).await;
    // b reads first, so a cache would be warm.
    assert_eq!(enabled(&mut b).await, None);
    assert_eq!(filter(&mut b).await, None);
    set(&mut a, ENABLED, "yes").await;
    set(&mut a, FILTER, "seen").await;
    assert_eq!(enabled(&mut b).await.as_deref(), Some("yes"), "R16");
    assert_eq!(filter(&mut b).await.as_deref(), Some("seen"), "R16");
    set(&mut b, FILTER, "NIL").await;
    assert_eq!(filter(&mut a).await, None, "R16 the other way");
    // Per user: bob sees none of alice's configuration.
    let mut bob = login(&server, BOB).await;
    assert_eq!(enabled(&mut bob).await, None);
    assert!(!has_mailbox(&mut bob, "COI/Chats").await);
}

// ---------------------------------------------------------------- R17

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_separator_slash_and_no_namespace_prefix() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    let r = c.command("NAMESPACE").await;
    assert_ok(&r, "NAMESPACE");
    assert!(r.text().starts_with("* NAMESPACE ((\"\" \"/\")) "), "R17: {}", r.text());
    set(&mut c, ENABLED, "yes").await;
    let r = c.command("LIST \"\" \"*\"").await;
    assert_ok(&r, "LIST");
    // `listed` asserts the "/" separator on every line.
    let names: Vec<String> = listed(&r.text(), "LIST").into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"COI/Chats".to_owned()), "R17: no prefix: {names:?}");
    assert!(names.iter().all(|n| !n.starts_with("INBOX/COI") && !n.starts_with("INBOX.")), "{names:?}");
    // LIST "" "" gives the separator (RFC 3501 §6.3.8).
    let r = c.command("LIST \"\" \"\"").await;
    assert!(r.text().starts_with("* LIST (\\Noselect) \"/\" \"\""), "{}", r.text());
    // The root's value plus "/Chats" is what the OX client selects (C5).
    let root = String::from_utf8(get_entry(&mut c, "\"\"", ROOT).await.unwrap()).unwrap();
    assert_ok(&c.command(&format!("SELECT \"{root}/Chats\"")).await, "SELECT root/Chats");
}

// ---------------------------------------------------------------- R18–R21

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_deleting_chats_disables_coi_deleting_contacts_does_not() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    set(&mut c, ENABLED, "yes").await;
    let r = c.command("DELETE \"COI/Contacts\"").await;
    assert_ok(&r, "DELETE Contacts");
    assert_eq!(enabled(&mut c).await.as_deref(), Some("yes"), "R18: Contacts has no effect");
    let mut other = login(&server, ALICE).await;
    let r = c.command("DELETE \"COI/Chats\"").await;
    assert_ok(&r, "DELETE Chats");
    assert_eq!(enabled(&mut other).await, None, "R18: enabled gone");
    assert!(!has_mailbox(&mut c, "COI/Chats").await);
    // Enabling again brings both back.
    set(&mut c, ENABLED, "yes").await;
    assert!(has_mailbox(&mut c, "COI/Chats").await && has_mailbox(&mut c, "COI/Contacts").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_r20_renaming_chats_only_to_trash_and_back_enables() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    set(&mut c, ENABLED, "yes").await;
    for (from, to) in [("COI/Chats", "COI/Chats2"), ("COI/Chats", "Archive/Chats"), ("COI", "COI2"), ("COI", "Old/COI")]
    {
        let r = c.command(&format!("RENAME \"{from}\" \"{to}\"")).await;
        assert_cannot(&r, &format!("R19: RENAME {from} {to}"));
        assert!(has_mailbox(&mut c, "COI/Chats").await, "R19: Chats stays after {from} -> {to}");
        assert_eq!(enabled(&mut c).await.as_deref(), Some("yes"));
    }
    // Under a parent named Trash (any case): allowed, disables COI.
    let r = c.command("RENAME \"COI/Chats\" \"Trash/Chats\"").await;
    assert_ok(&r, "R19: RENAME to Trash");
    assert_eq!(enabled(&mut c).await, None, "R19: disabled");
    assert!(has_mailbox(&mut c, "Trash/Chats").await && !has_mailbox(&mut c, "COI/Chats").await);
    // R20: renaming onto Chats enables COI again.
    let r = c.command("RENAME \"Trash/Chats\" \"COI/Chats\"").await;
    assert_ok(&r, "R20: RENAME back");
    assert_eq!(enabled(&mut c).await.as_deref(), Some("yes"), "R20: enabled");
    // A lower-case "trash" parent counts too.
    let r = c.command("RENAME \"COI/Chats\" \"trash/old/Chats\"").await;
    assert_ok(&r, "R19: trash, lower case");
    assert_eq!(enabled(&mut c).await, None);
    // Moving the whole root into the Trash takes Chats there too: disables.
    let r = c.command("RENAME \"trash/old/Chats\" \"COI/Chats\"").await;
    assert_ok(&r, "R20: back again");
    assert_eq!(enabled(&mut c).await.as_deref(), Some("yes"));
    let r = c.command("RENAME \"COI\" \"Trash/COI\"").await;
    assert_ok(&r, "R19: the root into the Trash");
    assert_eq!(enabled(&mut c).await, None, "R19: Chats went to the Trash with its parent");
    assert!(has_mailbox(&mut c, "Trash/COI/Chats").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_renaming_chats_below_a_special_use_trash_disables_coi() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    set(&mut c, ENABLED, "yes").await;
    let r = c.command("CREATE \"Bin\" (USE (\\Trash))").await;
    assert_ok(&r, "CREATE-SPECIAL-USE");
    let r = c.command("RENAME \"COI/Chats\" \"Bin/Chats\"").await;
    assert_ok(&r, "R19: below the \\Trash folder");
    assert_eq!(enabled(&mut c).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r20_creating_chats_enables_coi_and_creates_contacts() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    let r = c.command("CREATE \"COI/Chats\"").await;
    assert_ok(&r, "CREATE Chats");
    assert_eq!(enabled(&mut c).await.as_deref(), Some("yes"), "R20");
    assert!(has_mailbox(&mut c, "COI/Contacts").await, "R20: Contacts created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_folder_names_match_exactly() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    for name in ["coi/chats", "COI/chats", "COI/Chats/Sub", "COI/Contacts", "Chats"] {
        let r = c.command(&format!("CREATE \"{name}\"")).await;
        assert_ok(&r, name);
        assert_eq!(enabled(&mut c).await, None, "R21: CREATE {name}");
    }
    // COI/Chats/Sub made COI/Chats a \Noselect parent, not the Chats folder.
    assert!(!has_mailbox(&mut c, "COI/Chats").await);
    let r = c.command("DELETE \"coi/chats\"").await;
    assert_ok(&r, "DELETE coi/chats");
    set(&mut c, ENABLED, "yes").await;
    let r = c.command("DELETE \"coi/chats\"").await;
    assert!(r.status.contains(" NO "), "already gone: {}", r.status);
    let r = c.command("CREATE \"coi/chats\"").await;
    assert_ok(&r, "CREATE coi/chats again");
    let r = c.command("DELETE \"coi/chats\"").await;
    assert_ok(&r, "DELETE coi/chats");
    assert_eq!(enabled(&mut c).await.as_deref(), Some("yes"), "R21: only the exact name disables");
    let r = c.command("RENAME \"Chats\" \"coi/Chats2\"").await;
    assert_ok(&r, "unrelated RENAME");
    assert_eq!(enabled(&mut c).await.as_deref(), Some("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_r20_a_users_own_coi_folder_without_chats_renames_freely_and_a_parent_onto_the_root_enables() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    // "COI" is a common word: without a Chats folder, COI has no say (R19 is about Chats).
    assert_ok(&c.command("CREATE \"COI/Notes\"").await, "CREATE COI/Notes");
    assert_ok(&c.command("RENAME \"COI\" \"Work\"").await, "R19: no Chats, free rename");
    assert!(has_mailbox(&mut c, "Work/Notes").await);
    assert_eq!(enabled(&mut c).await, None);
    // R20: a parent renamed onto the root brings a Chats folder with it: COI on.
    assert_ok(&c.command("CREATE \"Old/Chats\"").await, "CREATE Old/Chats");
    assert_ok(&c.command("RENAME \"Old\" \"COI\"").await, "R20: RENAME Old COI");
    assert_eq!(enabled(&mut c).await.as_deref(), Some("yes"), "R20: Chats arrived under the root");
    assert!(has_mailbox(&mut c, "COI/Contacts").await, "R13: enabling made Contacts");
    let r = c.command("LSUB \"\" \"COI/*\"").await;
    assert!(r.text().contains("COI/Chats"), "R13: Chats subscribed once COI is on: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_r32_a_refused_subscription_applies_nothing_else_of_the_command() {
    let server = start_with(&[ALICE], true).await;
    let mut c = login(&server, ALICE).await;
    let sub = "/private/vendor/vendor.dovecot/webpush/subscriptions";
    // The subscription fails (bad JSON) only once applied; it goes first, so
    // the comment and `enabled` of the same command are not applied (RFC 5464 §4.3).
    let r = c
        .command(&format!("SETMETADATA \"\" (/private/comment \"x\" {ENABLED} yes {sub}/abcdefghijkl \"{{bad\")"))
        .await;
    assert_cannot(&r, "R32: malformed JSON");
    assert_eq!(get_entry(&mut c, "\"\"", "/private/comment").await, None, "nothing applied");
    assert_eq!(enabled(&mut c).await, None, "nothing applied");
    // Two subscription changes in one command cannot be all-or-nothing: refused.
    let r = c.command(&format!("SETMETADATA \"\" ({sub}/aaaaaaaaaaaa \"{{}}\" {sub}/bbbbbbbbbbbb \"{{}}\")")).await;
    assert_cannot(&r, "one push subscription change per command");
    // Deleting several at once is fine.
    let r = c.command(&format!("SETMETADATA \"\" ({sub}/aaaaaaaaaaaa NIL {sub}/bbbbbbbbbbbb NIL)")).await;
    assert_ok(&r, "R35: NIL deletes, several at once");
}
