use super::*;

const SAMPLE: &str = include_str!("../../../../config/coimail.toml");

#[test]
fn empty_file_is_the_default_config() {
    assert_eq!(Config::parse("").unwrap(), Config::default());
    Config::default().validate().unwrap();
}

#[test]
fn imap_command_limits_are_checked() {
    let mut c = Config::default();
    assert_eq!(c.imap_command_burst(), 5000);
    for (rate, ok) in [(0, true), (5, false), (10, true), (1_000_000, true), (1_000_001, false)] {
        c.imap.max_commands_per_second = rate;
        let r = c.validate();
        assert_eq!(r.is_ok(), ok, "{rate}: {r:?}");
        if let Err(e) = r {
            assert!(e.to_string().contains("imap.max_commands_per_second"), "{e}");
        }
    }
    c.imap.max_commands_per_second = 0;
    assert_eq!(c.imap_command_burst(), 1);
    c.imap.max_bad_commands = 2;
    assert!(c.validate().unwrap_err().to_string().contains("imap.max_bad_commands"));
    c.imap.max_bad_commands = 0;
    c.validate().unwrap();
}

#[test]
fn sample_config_documents_the_defaults() {
    let sample = Config::parse(SAMPLE).unwrap();
    let mut expected = Config::default();
    // The sample is what `coimail init` writes; only these differ.
    expected.server.hostname = sample.server.hostname.clone();
    assert_eq!(sample, expected, "config/coimail.toml and config.rs disagree");
    // Every key of the schema appears (commented or not) in the sample.
    let defaults = toml::to_string(&Config::default()).unwrap();
    let mut section = String::new();
    for line in defaults.lines() {
        if let Some(s) = line.strip_prefix('[') {
            section = s.trim_end_matches(']').to_owned();
            assert!(SAMPLE.contains(&format!("[{section}]")), "sample lacks [{section}]");
        } else if let Some((key, _)) = line.split_once(" = ") {
            assert!(
                SAMPLE.lines().any(|l| l.trim_start().starts_with(&format!("{key} ="))),
                "sample lacks {section}.{key}"
            );
        }
    }
}

#[test]
fn deltachat_chatmail_is_the_chatmail_switch() {
    assert!(!Config::parse("").unwrap().chatmail.enabled);
    assert!(Config::parse("[deltachat]\nchatmail = true\n").unwrap().chatmail.enabled);
    assert!(Config::parse("[chatmail]\nenabled = true\n").unwrap().chatmail.enabled);
}

#[test]
fn smtp_pools_keep_their_old_names_and_deadlines_are_checked() {
    let c = Config::parse("[smtp]\nmax_connections = 5\nmax_connections_per_ip = 2\n").unwrap();
    assert_eq!((c.smtp.mx_max_connections, c.smtp.mx_max_connections_per_ip), (5, 2));
    assert_eq!(c.smtp.submission_max_connections, SmtpConfig::default().submission_max_connections);
    let mut c = Config::default();
    (c.smtp.session_timeout_secs, c.smtp.data_timeout_secs) = (60, 120);
    assert!(c.validate().unwrap_err().to_string().contains("smtp.session_timeout_secs"));
    c.smtp.session_timeout_secs = 0;
    c.validate().unwrap();
    c.smtp.first_command_timeout_secs = 0;
    assert!(c.validate().unwrap_err().to_string().contains("smtp.first_command_timeout_secs"));
}

#[test]
fn unknown_keys_are_named() {
    let err = Config::parse("[imap]\nidle_timout_secs = 5\n").unwrap_err();
    assert!(err.contains("idle_timout_secs"), "{err}");
    let err = Config::parse("[nonsense]\n").unwrap_err();
    assert!(err.contains("nonsense"), "{err}");
}

#[test]
fn bad_values_are_named() {
    let err = Config::parse("[smtp]\nmax_recipients = \"many\"\n").unwrap_err();
    assert!(err.contains("max_recipients"), "{err}");
    let err = Config::parse("[auth]\nplaintext = \"sometimes\"\n").unwrap_err();
    assert!(err.contains("plaintext"), "{err}");
    let err = Config::parse("[listen]\nimap = [\"not an address\"]\n").unwrap_err();
    assert!(err.contains("imap"), "{err}");
    let mut c = Config::default();
    c.imap.idle_timeout_secs = 5;
    assert!(c.validate().unwrap_err().to_string().contains("imap.idle_timeout_secs"));
    let mut c = Config::default();
    c.server.hostname = "bad host".into();
    assert!(c.validate().unwrap_err().to_string().contains("server.hostname"));
    let mut c = Config::default();
    c.queue.retry_max_secs = 1;
    assert!(c.validate().unwrap_err().to_string().contains("queue.retry_max_secs"));
    let err = Config::parse("[queue]\nresolvers = [\"8.8.8.8\"]\n").unwrap_err();
    assert!(err.contains("resolvers"), "a resolver needs its port: {err}");
    let c = Config::parse("[queue]\nresolvers = [\"127.0.0.1:5353\"]\noutbound_port = 2525\n").unwrap();
    assert_eq!(c.delivery().resolvers, vec!["127.0.0.1:5353".parse().unwrap()]);
    assert_eq!((c.delivery().port, c.delivery().retry.initial), (2525, 300));
    let mut c = Config::default();
    c.log.level = "info,=[".into();
    assert!(c.validate().unwrap_err().to_string().contains("log.level"));
}

#[test]
fn acme_settings_are_checked() {
    let mut c =
        Config::parse("[tls.acme]\nenabled = true\nchallenge = \"http-01\"\ndirectory_ca = \"ca.pem\"\n").unwrap();
    assert_eq!(c.tls.acme.challenge, AcmeChallenge::Http01);
    assert_eq!(c.tls.acme.directory, LETS_ENCRYPT);
    c.resolve_paths(Path::new("/etc/coimail"));
    assert_eq!(c.tls.acme.directory_ca, PathBuf::from("/etc/coimail/ca.pem"));
    // "localhost" cannot be ordered from a CA.
    assert!(c.validate().unwrap_err().to_string().contains("server.hostname"));
    c.server.hostname = "mail.example.org".into();
    c.validate().unwrap();
    c.tls.acme.directory = "http://ca.test/dir".into();
    assert!(c.validate().unwrap_err().to_string().contains("tls.acme.directory"));
    c.tls.acme.directory = LETS_ENCRYPT.into();
    c.tls.acme.names = vec!["mail.example.org".into(), "not a name".into()];
    assert!(c.validate().unwrap_err().to_string().contains("tls.acme.names"));
    c.tls.acme.names.clear();
    c.tls.acme.renew_before_days = 0;
    assert!(c.validate().unwrap_err().to_string().contains("tls.acme.renew_before_days"));
    let err = Config::parse("[tls.acme]\nchallenge = \"dns-01\"\n").unwrap_err();
    assert!(err.contains("challenge"), "{err}");
}

#[test]
fn auth_cache_settings_reach_the_directory() {
    let c = Config::parse("[auth]\ncache_ttl_secs = 60\ncache_max_entries = 5\nmax_failures = 3\n").unwrap();
    let o = c.auth_options();
    assert_eq!((o.cache.ttl, o.cache.max_entries), (Duration::from_secs(60), 5));
    assert_eq!(o.throttle.max_failures, 3);
    assert_eq!(o.max_concurrent_argon2, coimail_directory::cpu_count());
    assert_eq!(Config::default().auth_options().cache, coimail_directory::CacheOptions::default());
    let mut c = Config::default();
    c.auth.cache_ttl_secs = 0;
    c.validate().unwrap();
    c.auth.cache_ttl_secs = 86_401;
    assert!(c.validate().unwrap_err().to_string().contains("auth.cache_ttl_secs"));
}

#[test]
fn coi_push_settings_are_bounded() {
    let mut c = Config::default();
    c.coi.validation_window_secs = u64::MAX;
    assert!(c.validate().unwrap_err().to_string().contains("coi.validation_window_secs"));
    c.coi.validation_window_secs = 86_400;
    c.validate().unwrap();
    assert_eq!(c.coi().webpush.unwrap().validation_window, Duration::from_secs(86_400));
    c.coi.validation_attempts_per_hour = 0;
    assert!(c.validate().unwrap_err().to_string().contains("coi.validation_attempts_per_hour"));
    // One account's share of the push workers can be the whole pool, never more.
    let mut c = Config::default();
    c.coi.push_workers_per_account = c.coi.push_workers + 1;
    assert!(c.validate().unwrap_err().to_string().contains("coi.push_workers_per_account"));
    c.coi.push_workers_per_account = c.coi.push_workers;
    c.validate().unwrap();
    c.coi.push_queue_per_account = 0;
    assert!(c.validate().unwrap_err().to_string().contains("coi.push_workers_per_account"));
    let sender = Config::default().coi().webpush.unwrap().sender;
    assert_eq!((sender.queue_per_account, sender.workers_per_account), (64, 2));
    let c = Config::default();
    assert!(!c.coi().webpush.unwrap().allow_loopback_endpoints, "loopback push services are opt-in");
}

#[test]
fn relative_paths_follow_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coimail.toml");
    std::fs::write(&path, "[server]\ndata_dir = \"d\"\n[tls]\ncert = \"/abs/c.pem\"\n").unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.server.data_dir, dir.path().join("d"));
    assert_eq!(c.tls.cert, PathBuf::from("/abs/c.pem"));
    assert_eq!(c.tls.key, dir.path().join("tls/key.pem"));
}
