//! coimail-coi: Chat Over IMAP behaviour (spec digest: shared/docs/coi-server.md).
//! (Module docs are completed as the crate grows.)

pub mod webpush;
