//! Administration requests (users, aliases, domains, DKIM keys, the outbound queue, COI status)
//! and the local admin socket they travel over.
//!
//! sled lets one process open the database, so while the daemon runs the
//! CLI cannot open it: `coimail user add` sends its request to the daemon
//! over a Unix socket in the data dir (mode 0600: whoever can use it could
//! read the data dir anyway). With no daemon running, the CLI opens the
//! store itself and calls [`execute`] directly — one code path either way.
//!
//! Wire format: one JSON request line, one JSON reply line, then close.

use crate::DaemonError;
use coimail_delivery::Queue;
use coimail_delivery::dkim::{Change, Dkim, DkimError, Role};
use coimail_directory::Directory;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A password that never shows up in logs or debug output.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    Ping,
    DomainAdd {
        domain: String,
    },
    DomainDel {
        domain: String,
    },
    DomainList,
    /// Sets (or with `None` clears) the user receiving mail for unknown addresses.
    DomainCatchAll {
        domain: String,
        target: Option<String>,
    },
    UserAdd {
        address: String,
        password: Secret,
        quota_bytes: Option<u64>,
    },
    UserDel {
        address: String,
    },
    UserPasswd {
        address: String,
        password: Secret,
    },
    UserList,
    AliasAdd {
        alias: String,
        target: String,
    },
    AliasDel {
        alias: String,
    },
    AliasList,
    /// Every queued message with its recipients' state.
    QueueList,
    /// Makes one queued message (or all) due now.
    QueueFlush {
        id: Option<u64>,
    },
    /// Drops a queued message without a bounce.
    QueueDelete {
        id: u64,
    },
    /// A user's COI configuration and push subscriptions.
    CoiStatus {
        address: String,
    },
    /// Makes a `next` DKIM key pair to publish (or a first current one).
    DkimRotate {
        domain: String,
    },
    /// Signs with the `next` pair from now on; the old one keeps being published.
    DkimActivate {
        domain: String,
    },
    /// Deletes the pairs `activate` replaced.
    DkimRetire {
        domain: String,
    },
    /// The DKIM selectors of one domain (or all) and what each is used for.
    DkimList {
        domain: Option<String>,
    },
    /// The certificates served and the next ACME renewal.
    TlsStatus,
    /// Reads the `[tls]` certificate files again (as SIGHUP does).
    TlsReload,
    /// Issues a new ACME certificate now.
    TlsRenew,
}

/// What admin requests act on.
#[derive(Clone)]
pub struct AdminContext {
    pub directory: Directory,
    pub queue: Queue,
    pub coi: coimail_coi::Coi,
    /// The daemon's signer, so key changes reach the queue at once.
    pub dkim: Dkim,
    /// The listeners' certificates.
    pub tls: crate::certs::TlsHandle,
}

/// The reply: `Ok` carries lines to print, `Err` a message for the user.
pub type AdminReply = Result<Vec<String>, String>;

/// Carries out one request.
pub async fn execute(ctx: &AdminContext, req: AdminRequest) -> AdminReply {
    match req {
        AdminRequest::QueueList | AdminRequest::QueueFlush { .. } | AdminRequest::QueueDelete { .. } => {
            execute_queue(&ctx.queue, req).await
        }
        AdminRequest::CoiStatus { address } => {
            let account =
                ctx.directory.user(&address).map_err(|e| e.to_string())?.ok_or_else(|| format!("no user {address}"))?;
            let status = ctx.coi.status(account.id).map_err(|e| e.to_string())?;
            Ok(serde_json::to_string_pretty(&status).map_err(|e| e.to_string())?.lines().map(str::to_owned).collect())
        }
        AdminRequest::DomainAdd { domain } => {
            ctx.directory.add_domain(&domain).await.map_err(|e| e.to_string())?;
            let mut lines = vec![format!("domain {domain} added")];
            let (dkim, d) = (ctx.dkim.clone(), domain.clone());
            lines.extend(dkim_change(&domain, keygen(move || dkim.ensure(&d)).await)?);
            Ok(lines)
        }
        AdminRequest::DkimRotate { .. }
        | AdminRequest::DkimActivate { .. }
        | AdminRequest::DkimRetire { .. }
        | AdminRequest::DkimList { .. } => execute_dkim(ctx, req).await,
        AdminRequest::TlsStatus => Ok(ctx.tls.status()),
        AdminRequest::TlsReload => ctx.tls.reload().map(|l| vec![l]),
        AdminRequest::TlsRenew => ctx.tls.renew().await.map(|l| vec![l]),
        other => execute_directory(&ctx.directory, other).await,
    }
}

/// Key generation (RSA-2048 takes a while) off the async threads.
async fn keygen(f: impl FnOnce() -> Result<Change, DkimError> + Send + 'static) -> Result<Change, DkimError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(DkimError::Sign(format!("key generation task: {e}"))))
}

async fn execute_dkim(ctx: &AdminContext, req: AdminRequest) -> AdminReply {
    let local = |domain: &str| match ctx.directory.is_local_domain(domain) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{domain} is not served here")),
        Err(e) => Err(e.to_string()),
    };
    match req {
        AdminRequest::DkimRotate { domain } => {
            local(&domain)?;
            let (dkim, d) = (ctx.dkim.clone(), domain.clone());
            dkim_change(&domain, keygen(move || dkim.rotate(&d)).await)
        }
        AdminRequest::DkimActivate { domain } => dkim_change(&domain, ctx.dkim.activate(&domain)),
        AdminRequest::DkimRetire { domain } => dkim_change(&domain, ctx.dkim.retire(&domain)),
        AdminRequest::DkimList { domain } => {
            let domains = match domain {
                Some(d) => vec![d],
                None => ctx.directory.list_domains().map_err(|e| e.to_string())?,
            };
            let mut lines = Vec::new();
            for d in domains {
                let keys = ctx.dkim.keys().public_keys(&d).map_err(|e| e.to_string())?;
                if keys.is_empty() {
                    lines.push(format!("{d}  no keys (`coimail dkim rotate {d}` makes them)"));
                }
                lines.extend(keys.iter().map(|k| format!("{d}  {}  {}", k.selector, k.role.as_str())));
            }
            Ok(lines)
        }
        _ => Err("not a DKIM request".into()),
    }
}

/// What a key change did, and what the operator does next.
fn dkim_change(domain: &str, change: Result<Change, DkimError>) -> AdminReply {
    let selectors = |g: &str| format!("ed-{g} and rsa-{g}");
    Ok(match change.map_err(|e| e.to_string())? {
        Change::Created { generation, role: Role::Current } => vec![format!(
            "DKIM keys {} of {domain} sign from now on; publish them: coimail dns {domain}",
            selectors(&generation)
        )],
        Change::Created { generation, .. } => vec![format!(
            "DKIM keys {} of {domain} made; publish them (coimail dns {domain}), wait for DNS to serve them \
             (coimail dns check {domain}), then: coimail dkim activate {domain}",
            selectors(&generation)
        )],
        Change::Activated { generation, retiring } => {
            let mut lines = vec![format!("{domain} signs with {} now", selectors(&generation))];
            if let Some(old) = retiring {
                lines.push(format!(
                    "keep {} published for a week (mail signed with them may still be on its way), \
                     then: coimail dkim retire {domain}",
                    selectors(&old)
                ));
            }
            lines
        }
        Change::Retired(gone) => {
            let names: Vec<String> = gone.iter().map(|g| selectors(g)).collect();
            vec![format!("deleted the DKIM keys {} of {domain}; remove their DNS records", names.join(", "))]
        }
        Change::Unchanged => vec![format!("DKIM keys of {domain} unchanged")],
    })
}

async fn execute_queue(queue: &Queue, req: AdminRequest) -> AdminReply {
    let e = |e: coimail_store::StoreError| e.to_string();
    match req {
        AdminRequest::QueueList => {
            let entries = queue.store().spool_list().map_err(e)?;
            if entries.is_empty() {
                return Ok(vec!["the queue is empty".into()]);
            }
            Ok(entries.iter().flat_map(coimail_delivery::describe).collect())
        }
        AdminRequest::QueueFlush { id } => {
            let n = queue.flush(id).await.map_err(e)?;
            Ok(vec![format!("{n} queued message(s) will be tried now")])
        }
        AdminRequest::QueueDelete { id } => match queue.store().spool_delete(id).await.map_err(e)? {
            true => Ok(vec![format!("queued message {id} deleted")]),
            false => Err(format!("no queued message {id}")),
        },
        _ => Err("not a queue request".into()),
    }
}

async fn execute_directory(dir: &Directory, req: AdminRequest) -> AdminReply {
    let e = |e: coimail_directory::DirectoryError| e.to_string();
    let done = |what: String| Ok(vec![what]);
    match req {
        AdminRequest::Ping => done("pong".into()),
        AdminRequest::DomainDel { domain } => {
            dir.del_domain(&domain).await.map_err(e)?;
            done(format!("domain {domain} deleted"))
        }
        AdminRequest::DomainList => dir.list_domains().map_err(e),
        AdminRequest::DomainCatchAll { domain, target } => {
            dir.set_catch_all(&domain, target.as_deref()).await.map_err(e)?;
            done(match target {
                Some(t) => format!("mail to unknown addresses of {domain} goes to {t}"),
                None => format!("catch-all of {domain} cleared"),
            })
        }
        AdminRequest::UserAdd { address, password, quota_bytes } => {
            let account = dir.add_user(&address, &password.0, quota_bytes).await.map_err(e)?;
            done(format!("user {} added", account.address))
        }
        AdminRequest::UserDel { address } => {
            dir.del_user(&address).await.map_err(e)?;
            done(format!("user {address} and all its mail deleted"))
        }
        AdminRequest::UserPasswd { address, password } => {
            dir.set_password(&address, &password.0).await.map_err(e)?;
            done(format!("password of {address} changed"))
        }
        AdminRequest::UserList => Ok(dir
            .list_users()
            .map_err(e)?
            .into_iter()
            .map(|a| match a.quota_bytes {
                Some(q) => format!("{} (quota {q} bytes)", a.address),
                None => a.address,
            })
            .collect()),
        AdminRequest::AliasAdd { alias, target } => {
            dir.add_alias(&alias, &target).await.map_err(e)?;
            done(format!("alias {alias} -> {target} added"))
        }
        AdminRequest::AliasDel { alias } => {
            dir.del_alias(&alias).await.map_err(e)?;
            done(format!("alias {alias} deleted"))
        }
        AdminRequest::AliasList => {
            Ok(dir.list_aliases().map_err(e)?.into_iter().map(|(a, t)| format!("{a} -> {t}")).collect())
        }
        AdminRequest::DomainAdd { .. }
        | AdminRequest::QueueList
        | AdminRequest::QueueFlush { .. }
        | AdminRequest::QueueDelete { .. }
        | AdminRequest::CoiStatus { .. }
        | AdminRequest::DkimRotate { .. }
        | AdminRequest::DkimActivate { .. }
        | AdminRequest::DkimRetire { .. }
        | AdminRequest::DkimList { .. }
        | AdminRequest::TlsStatus
        | AdminRequest::TlsReload
        | AdminRequest::TlsRenew => Err("not a directory request".into()),
    }
}

/// Largest request line; requests are small JSON objects.
const MAX_REQUEST: u64 = 64 * 1024;

/// Binds the admin socket, refusing if a live daemon already answers on it.
pub async fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(DaemonError::AlreadyRunning(path.to_owned()));
        }
        // Left by a daemon that did not stop cleanly.
        std::fs::remove_file(path).map_err(|e| DaemonError::io(path, e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| DaemonError::io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| DaemonError::io(path, e))?;
    Ok(listener)
}

/// Serves admin requests until `shutdown`.
pub async fn serve(listener: UnixListener, ctx: AdminContext, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!(error = %e, "admin socket accept failed");
                    continue;
                }
            },
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &ctx).await {
                warn!(error = %e, "admin request failed");
            }
        });
    }
}

async fn handle(stream: UnixStream, ctx: &AdminContext) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST)).read_line(&mut line).await?;
    let reply: AdminReply = match serde_json::from_str::<AdminRequest>(&line) {
        Ok(req) => {
            info!(request = ?req, "admin request");
            execute(ctx, req).await
        }
        Err(e) => Err(format!("bad admin request: {e}")),
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Sends one request to a running daemon. `Ok(None)` means no daemon
/// listens on `path` (the caller may then open the store itself).
pub async fn call(path: &Path, req: &AdminRequest) -> std::io::Result<Option<AdminReply>> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let (read, mut write) = stream.into_split();
    let mut out = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    serde_json::from_str(&line).map(Some).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_debug_output() {
        let req = AdminRequest::UserAdd {
            address: "a@example.org".into(),
            password: Secret("hunter2".into()),
            quota_bytes: None,
        };
        let shown = format!("{req:?}");
        assert!(!shown.contains("hunter2") && shown.contains("redacted"), "{shown}");
    }

    #[tokio::test]
    async fn requests_travel_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let store = coimail_store::Store::open_memory(&dir.path().join("d")).unwrap();
        let directory = Directory::open(&store, None).unwrap();
        let path = dir.path().join("admin.sock");
        let shutdown = CancellationToken::new();
        let listener = bind(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dkim = Dkim::new(coimail_delivery::dkim::KeyStore::new(dir.path().join("dkim")));
        let ctx = AdminContext {
            directory: directory.clone(),
            queue: Queue::new(store.clone()),
            coi: coimail_coi::Coi::new(store.clone()),
            dkim,
            tls: crate::certs::TlsHandle::offline(&crate::Config::default()),
        };
        tokio::spawn(serve(listener, ctx, shutdown.clone()));
        // A second daemon on the same data dir is refused.
        assert!(matches!(bind(&path).await, Err(DaemonError::AlreadyRunning(_))));

        let reply = call(&path, &AdminRequest::DomainAdd { domain: "Example.ORG".into() }).await.unwrap();
        let lines = reply.unwrap().unwrap();
        assert_eq!(lines[0], "domain Example.ORG added");
        assert!(lines[1].starts_with("DKIM keys ed-") && lines[1].ends_with("publish them: coimail dns Example.ORG"));
        let list = call(&path, &AdminRequest::DkimList { domain: None }).await.unwrap().unwrap().unwrap();
        assert_eq!(list.len(), 2, "{list:?}");
        assert!(list[0].starts_with("example.org  ed-") && list[0].ends_with("  current"), "{list:?}");
        let rotate = AdminRequest::DkimRotate { domain: "elsewhere.test".into() };
        assert!(call(&path, &rotate).await.unwrap().unwrap().unwrap_err().contains("not served here"));
        let add = AdminRequest::UserAdd {
            address: "bob@example.org".into(),
            password: Secret("pw-1234".into()),
            quota_bytes: None,
        };
        assert!(call(&path, &add).await.unwrap().unwrap().is_ok());
        let again = call(&path, &add).await.unwrap().unwrap();
        assert!(again.unwrap_err().contains("already exists"));
        let unknown = AdminRequest::UserAdd {
            address: "x@nowhere.test".into(),
            password: Secret("pw-1234".into()),
            quota_bytes: None,
        };
        assert!(call(&path, &unknown).await.unwrap().unwrap().unwrap_err().contains("not served here"));
        let list = call(&path, &AdminRequest::UserList).await.unwrap().unwrap().unwrap();
        assert_eq!(list, vec!["bob@example.org".to_string()]);
        assert!(directory.user("bob@example.org").unwrap().is_some());

        let reply = call(&path, &AdminRequest::QueueList).await.unwrap().unwrap();
        assert_eq!(reply, Ok(vec!["the queue is empty".to_string()]));
        let envelope = coimail_delivery::SpoolEnvelope {
            sender: "bob@example.org".into(),
            env_id: None,
            ret: None,
            recipients: vec![coimail_delivery::SpoolRecipient::new("x@remote.test", None, None)],
        };
        let e = store.spool_enqueue(envelope, b"x\r\n", 0).await.unwrap();
        let list = call(&path, &AdminRequest::QueueList).await.unwrap().unwrap().unwrap();
        assert!(list[0].starts_with(&format!("{}  from bob@example.org  queued ", e.id)), "{list:?}");
        assert_eq!(list[1], "    x@remote.test  pending");
        let flushed = call(&path, &AdminRequest::QueueFlush { id: None }).await.unwrap().unwrap().unwrap();
        assert_eq!(flushed, vec!["1 queued message(s) will be tried now".to_string()]);
        assert!(store.spool_get(e.id).unwrap().unwrap().next_attempt > 0);
        let deleted = call(&path, &AdminRequest::QueueDelete { id: e.id }).await.unwrap().unwrap();
        assert!(deleted.is_ok());
        let again = call(&path, &AdminRequest::QueueDelete { id: e.id }).await.unwrap().unwrap();
        assert!(again.unwrap_err().contains("no queued message"));
        shutdown.cancel();
    }

    #[tokio::test]
    async fn no_daemon_means_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(call(&dir.path().join("none.sock"), &AdminRequest::Ping).await.unwrap().is_none());
    }
}
