//! The embedded server's journal over real loopback sockets: replay after a
//! restart, fsync=always acknowledging only what is in the file, damage
//! quarantined and never dropped, compaction, replay progress and
//! cancellation.

mod common;

use std::time::{Duration, Instant};

use common::*;
use metrics_client::protocol::Reply;
use metrics_client::server::{Config, FsyncPolicy, Server};

#[test]
fn puts_are_replayed_after_a_restart() {
    for fsync in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
        let dir = TempDir::new("replay");
        let path = dir.file("metrics.log");
        {
            let mut server = start(durable(&path, fsync));
            let mut c = Conn::open(server.local_addr());
            assert_eq!(c.ask("put test_key 12.0 1503319740\n"), "ok\n\n");
            assert_eq!(c.ask("put test_key 13.0 1503319739\n"), "ok\n\n");
            assert_eq!(c.ask("put test_key 99  1503319740\r\n"), "ok\n\n");
            assert_eq!(c.ask("put x\n"), "error\nwrong command\n\n");
            server.close().unwrap();
        }
        assert!(std::fs::read(&path).unwrap().starts_with(HEADER));
        let key = || "test_key".to_string();
        assert_eq!(
            records(&path),
            [
                (key(), 12.0, 1503319740),
                (key(), 13.0, 1503319739),
                (key(), 99.0, 1503319740)
            ]
        );
        let server = start(durable(&path, fsync));
        let recovery = server.recovery().unwrap();
        assert_eq!((recovery.replayed, recovery.torn), (3, None));
        assert!(recovery.warnings().is_empty());
        let mut c = Conn::open(server.local_addr());
        assert_eq!(
            c.ask("get *\n"),
            "ok\ntest_key 13.0 1503319739\ntest_key 99.0 1503319740\n\n"
        );
    }
}

#[test]
fn with_fsync_always_an_acknowledged_put_is_already_in_the_file() {
    let dir = TempDir::new("always");
    let path = dir.file("metrics.log");
    let server = start(durable(&path, FsyncPolicy::Always));
    let mut conns: Vec<Conn> = (0..8).map(|_| Conn::open(server.local_addr())).collect();
    for round in 0..20 {
        for (i, c) in conns.iter_mut().enumerate() {
            c.send(format!("put c{i} {round} {round}\n").as_bytes());
        }
        for c in &mut conns {
            assert_eq!(c.reply(), b"ok\n\n");
        }
        // Every acknowledged put is in the file before the server closes.
        let held = records(&path);
        for i in 0..8 {
            let record = (format!("c{i}"), f64::from(round), i64::from(round));
            assert!(held.contains(&record), "round {round}");
        }
    }
    drop(server);
}

/// Under `fsync=always` a point reaches the store only once it is durable;
/// a get still sees the same connection's earlier puts, pipelined or not.
#[test]
fn with_fsync_always_a_connection_reads_its_own_pipelined_puts() {
    let dir = TempDir::new("always-own");
    let path = dir.file("metrics.log");
    let server = start(durable(&path, FsyncPolicy::Always));
    let mut c = Conn::open(server.local_addr());
    c.send(b"put a 1 1\nget a\nput a 2 1\nput b 3 3\nbad\nget *\n");
    assert_eq!(c.reply(), b"ok\n\n");
    assert_eq!(c.reply(), b"ok\na 1.0 1\n\n");
    assert_eq!(c.reply(), b"ok\n\n");
    assert_eq!(c.reply(), b"ok\n\n");
    assert_eq!(c.reply(), b"error\nwrong command\n\n");
    assert_eq!(c.reply(), b"ok\na 2.0 1\nb 3.0 3\n\n");

    let requests: String = (0..300)
        .map(|ts| format!("put k {ts} {ts}\nget k\n"))
        .collect();
    c.send(requests.as_bytes());
    let mut want = String::from("ok\n");
    for ts in 0..300 {
        assert_eq!(c.reply(), b"ok\n\n");
        want.push_str(&format!("k {ts}.0 {ts}\n"));
        let got = String::from_utf8(c.reply()).unwrap();
        assert_eq!(got, format!("{want}\n"), "after put {ts}");
    }
}

#[test]
fn a_torn_last_line_of_a_plain_journal_is_quarantined_and_cut_off() {
    let dir = TempDir::new("torn");
    let path = dir.file("metrics.log");
    std::fs::write(&path, "put a 1 1\nput b 2.5 2\nput c 3 3").unwrap();
    {
        let mut server = start(durable(&path, FsyncPolicy::Always));
        let recovery = server.recovery().unwrap().clone();
        assert_eq!(recovery.replayed, 2);
        assert_eq!(recovery.torn, Some((22, 9)));
        let warnings = recovery.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("torn"), "{warnings:?}");
        let mut c = Conn::open(server.local_addr());
        assert_eq!(c.ask("get *\n"), "ok\na 1.0 1\nb 2.5 2\n\n");
        assert_eq!(c.ask("put c 4 4\n"), "ok\n\n");
        // A journal of format 1 is rewritten in format 3 in the background.
        eventually("the migration", || {
            std::fs::read(&path).unwrap().starts_with(HEADER)
        });
        server.close().unwrap();
    }
    let want = [("a", 1.0, 1), ("b", 2.5, 2), ("c", 4.0, 4)];
    let want: Vec<Record> = want
        .iter()
        .map(|&(k, v, t)| (k.to_string(), v, t))
        .collect();
    assert_eq!(records(&path), want);
    let quarantine = std::fs::read_to_string(dir.file("metrics.log.quarantine")).unwrap();
    assert!(quarantine.ends_with("\nput c 3 3\n"), "{quarantine:?}");
    let server = start(durable(&path, FsyncPolicy::Always));
    assert!(server.recovery().unwrap().warnings().is_empty());
    assert_eq!(server.stats(), (3, 3));
}

#[test]
fn unreadable_lines_and_zero_filled_tails_are_quarantined_never_dropped() {
    let dir = TempDir::new("corrupt");
    let path = dir.file("metrics.log");
    let mut content = b"put a 1 1\ngarbage\nput b 2 2\n\xff\xfe\nput a 9 1\n".to_vec();
    content.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&path, &content).unwrap();
    let server = start(durable(&path, FsyncPolicy::EverySec));
    let recovery = server.recovery().unwrap();
    assert_eq!(recovery.replayed, 3);
    assert_eq!(recovery.quarantined, 3);
    assert_eq!(recovery.quarantined_bytes, 7 + 2 + 4096);
    assert_eq!(recovery.torn, None);
    assert_eq!(recovery.warnings().len(), 1);
    let mut c = Conn::open(server.local_addr());
    assert_eq!(c.ask("get *\n"), "ok\na 9.0 1\nb 2.0 2\n\n");
    // Nothing was removed from the log: it only grew.
    let now = std::fs::read(&path).unwrap();
    assert_eq!(&now[..content.len()], &content[..]);
    let quarantine = std::fs::read(dir.file("metrics.log.quarantine")).unwrap();
    for piece in [&b"\ngarbage\n"[..], b"\n\xff\xfe\n", &[0u8; 4096]] {
        assert!(
            quarantine.windows(piece.len()).any(|w| w == piece),
            "{piece:?}"
        );
    }
}

/// Waits for a condition the server reaches on its own, with a deadline.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn compaction_bounds_the_journal_and_keeps_every_point() {
    let dir = TempDir::new("compact");
    let path = dir.file("metrics.log");
    let stale = dir.file("metrics.log.compact");
    std::fs::write(&stale, "put stale 1 1\n").unwrap();
    let config = Config {
        compact_min_bytes: 64 << 10,
        ..durable(&path, FsyncPolicy::Always)
    };
    {
        let mut server = start(config.clone());
        assert!(server.recovery().unwrap().removed_compaction);
        assert!(!stale.exists());
        let mut c = Conn::open(server.local_addr());
        // 20 points overwritten 500 times: 10000 lines, 20 live.
        for round in 0..500 {
            let mut batch = String::new();
            for p in 0..20 {
                batch += &format!("put point.{} {round} {p}\n", p % 4);
            }
            c.send(batch.as_bytes());
            for _ in 0..20 {
                assert_eq!(c.reply(), b"ok\n\n");
            }
        }
        eventually("compaction", || {
            std::fs::metadata(&path).unwrap().len() < 64 << 10
        });
        assert_eq!(c.ask("put after 1 1\n"), "ok\n\n");
        server.close().unwrap();
    }
    assert!(std::fs::read(&path).unwrap().starts_with(HEADER));
    let held = records(&path);
    assert!(held.len() < 10_000, "{} records", held.len());
    assert!(held.contains(&("after".to_string(), 1.0, 1)));
    let server = start(config);
    assert!(server.recovery().unwrap().warnings().is_empty());
    assert_eq!(server.stats(), (21, 5));
    let mut c = Conn::open(server.local_addr());
    let Reply::Points(points) = decode(c.ask("get point.1\n").as_bytes()) else {
        panic!()
    };
    assert_eq!(
        points[0].1,
        vec![(1, 499.0), (5, 499.0), (9, 499.0), (13, 499.0), (17, 499.0)]
    );
}

#[test]
fn a_long_replay_reports_its_start_progress_and_summary() {
    let dir = TempDir::new("progress");
    let path = dir.file("metrics.log");
    let mut content = String::new();
    for i in 0..400_000 {
        content += &format!("put key.{} {}.5 {i}\n", i % 1000, i % 77);
    }
    std::fs::write(&path, &content).unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = std::sync::Arc::clone(&lines);
    let server = start(Config {
        progress_interval: Duration::ZERO,
        log: Some(std::sync::Arc::new(move |_level, message: &str| {
            sink.lock().unwrap().push(message.to_string());
        })),
        ..durable(&path, FsyncPolicy::EverySec)
    });
    drop(server);
    let lines = lines.lock().unwrap().clone();
    let len = content.len();
    let name = path.display().to_string();
    assert!(
        lines[0].starts_with(&format!("{name}: replaying {len} bytes")),
        "{lines:?}"
    );
    let progress: Vec<u64> = lines
        .iter()
        .filter(|l| l.contains("replaying: "))
        .map(|l| {
            assert!(l.contains(&format!(" of {len} bytes")), "{l}");
            assert!(l.contains(" points so far"), "{l}");
            let done = l.split("replaying: ").nth(1).unwrap();
            done.split(' ').next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(progress.len() >= 2, "{lines:?}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    let summary = lines
        .iter()
        .find(|l| l.contains("replayed "))
        .expect("a summary");
    for part in [
        "replayed 400000 records",
        &format!("({len} bytes, format 1"),
        "MB/s",
        "400000 points, 1000 keys",
    ] {
        assert!(summary.contains(part), "{summary}");
    }
}

#[test]
fn a_cancelled_replay_leaves_the_journal_as_it_was_and_unlocked() {
    let dir = TempDir::new("cancel");
    let path = dir.file("metrics.log");
    let content = "put a 1 1\nput b 2 2\nput c 3";
    std::fs::write(&path, content).unwrap();
    let loading = Server::prepare(durable(&path, FsyncPolicy::Always)).unwrap();
    loading
        .canceller()
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let err = loading.finish().unwrap_err();
    assert!(
        matches!(err, metrics_client::server::ServerError::Cancelled),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
    let server = start(durable(&path, FsyncPolicy::Always));
    assert_eq!(server.stats(), (2, 2));
}
