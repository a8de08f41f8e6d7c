//! The embedded server over real loopback sockets: protocol rules, split and
//! pipelined input, limits, concurrency and the journal. What a Python user
//! sees of it (the `Server` class's life, bind and data-path errors, IPv6,
//! values as Python's `str(float)`) is tested once, in
//! `tests/test_server_conformance.py`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use metrics_client::protocol::{Expect, Reply, ReplyDecoder};
use metrics_client::server::{Config, FsyncPolicy, Limits, Server};

const TIMEOUT: Duration = Duration::from_secs(20);

fn start(config: Config) -> Server {
    Server::start(config).expect("server starts")
}

fn memory_server() -> Server {
    start(Config::default())
}

/// A client connection that splits the byte stream into whole replies.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The raw bytes of the next complete reply.
    fn reply(&mut self) -> Vec<u8> {
        loop {
            let mut decoder = ReplyDecoder::new(Expect::Points);
            if let Some(done) = decoder.feed(&self.buf).expect("well-formed reply") {
                return self.buf.drain(..done.used).collect();
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("read reply");
            assert!(
                n > 0,
                "server closed the connection; have {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn ask(&mut self, request: &str) -> String {
        self.send(request.as_bytes());
        String::from_utf8(self.reply()).unwrap()
    }

    /// Reads until the server closes; returns everything received.
    fn read_to_close(&mut self) -> Vec<u8> {
        let mut all = std::mem::take(&mut self.buf);
        self.stream.read_to_end(&mut all).expect("read to close");
        all
    }
}

fn decode(reply: &[u8]) -> Reply {
    ReplyDecoder::new(Expect::Points)
        .feed(reply)
        .unwrap()
        .unwrap()
        .reply
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "metrics-server-test-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The journal's records as plain put lines: the header line dropped and
/// each record's checksum checked and removed.
fn records(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line == "metrics-journal 2" {
            continue;
        }
        let (body, crc) = line.rsplit_once(' ').unwrap();
        assert_eq!(
            u32::from_str_radix(crc, 16).unwrap(),
            crc32c::crc32c(body.as_bytes()),
            "{line:?}"
        );
        out += body;
        out.push('\n');
    }
    out
}

fn durable(path: &Path, fsync: FsyncPolicy) -> Config {
    Config {
        data: Some(path.to_owned()),
        fsync,
        ..Config::default()
    }
}

#[test]
fn the_assignments_session_byte_for_byte() {
    let server = memory_server();
    let mut c = Conn::open(server.local_addr());
    assert_eq!(c.ask("put test_key 12.0 1503319740\n"), "ok\n\n");
    assert_eq!(c.ask("put test_key 13.0 1503319739\n"), "ok\n\n");
    assert_eq!(
        c.ask("get test_key\n"),
        "ok\ntest_key 13.0 1503319739\ntest_key 12.0 1503319740\n\n"
    );
    assert_eq!(c.ask("put another_key 10 1503319739\n"), "ok\n\n");
    assert_eq!(
        c.ask("get *\n"),
        "ok\ntest_key 13.0 1503319739\ntest_key 12.0 1503319740\nanother_key 10.0 1503319739\n\n"
    );
    assert_eq!(c.ask("get missing\n"), "ok\n\n");
    assert_eq!(c.ask("got test_key\n"), "error\nwrong command\n\n");
}

#[test]
fn wrong_commands_keep_the_connection_usable() {
    let server = memory_server();
    let mut c = Conn::open(server.local_addr());
    for bad in [
        "\n",
        "got k\n",
        "malformed command test\n",
        "put k 1\n",
        "put k 1 2 3\n",
        "put k x 2\n",
        "put k 1 2.5\n",
        "put k nan 2\n",
        "put * 1 2\n",
        "get\n",
        "get a b\n",
        "PUT k 1 2\n",
        "Get k\n",
        "get \u{00a0}\n",
        "   \n",
        "put\n",
        "put k\n",
        "put k 1 one\n",
        "put k 1 1e3\n",
        "put k 1,5 1\n",
        "put k inf 1\n",
        "put k 1e999 1\n",
        "put k 1 99999999999999999999\n",
        "put k\0 1 1\n",
        "put ke\u{00a0}y 1 1\n",
    ] {
        assert_eq!(c.ask(bad), "error\nwrong command\n\n", "{bad:?}");
        assert_eq!(c.ask("put k 1 1\n"), "ok\n\n", "after {bad:?}");
    }
    assert_eq!(c.ask("get k \n"), "ok\nk 1.0 1\n\n");
    c.send(b"get \xff\n");
    assert_eq!(c.reply(), b"error\nwrong command\n\n");
}

#[test]
fn overwrite_and_ordering() {
    let server = memory_server();
    let mut c = Conn::open(server.local_addr());
    for (ts, value) in [(5, 5.0), (1, 1.0), (3, 3.0), (1, 1.5), (-2, -2.0), (3, 3.5)] {
        assert_eq!(c.ask(&format!("put k {value} {ts}\n")), "ok\n\n");
    }
    assert_eq!(
        c.ask("get k\n"),
        "ok\nk -2.0 -2\nk 1.5 1\nk 3.5 3\nk 5.0 5\n\n"
    );
    // A second connection sees the same data.
    let mut d = Conn::open(server.local_addr());
    assert_eq!(
        d.ask("get *\n"),
        "ok\nk -2.0 -2\nk 1.5 1\nk 3.5 3\nk 5.0 5\n\n"
    );
}

fn session_requests() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..50 {
        s += &format!("put key{} {}.25 {}\n", i % 7, i, 1000 - i);
        if i % 5 == 0 {
            s += &format!("get key{}\n", i % 3);
        }
        if i % 11 == 0 {
            s += "bogus line\n";
        }
    }
    s += "get *\n";
    s.into_bytes()
}

fn replies_for(server: &Server, requests: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut c = Conn::open(server.local_addr());
    let mut bounds = cuts.to_vec();
    bounds.push(0);
    bounds.push(requests.len());
    bounds.sort_unstable();
    for pair in bounds.windows(2) {
        c.send(&requests[pair[0]..pair[1]]);
    }
    c.stream.shutdown(Shutdown::Write).unwrap();
    c.read_to_close()
}

#[test]
fn split_and_pipelined_input_gives_the_same_replies() {
    let requests = session_requests();
    // Reference: one request at a time, waiting for each reply.
    let reference = {
        let server = memory_server();
        let mut c = Conn::open(server.local_addr());
        let mut out = Vec::new();
        for line in requests.split_inclusive(|&b| b == b'\n') {
            c.send(line);
            out.extend(c.reply());
        }
        out
    };
    assert!(reference.ends_with(b"\n\n"));
    // All at once (pipelined), byte by byte, and in odd-sized pieces.
    let every_byte: Vec<usize> = (1..requests.len()).collect();
    let odd: Vec<usize> = (1..requests.len()).step_by(37).collect();
    for cuts in [&[][..], &every_byte, &odd] {
        let server = memory_server();
        assert_eq!(
            String::from_utf8(replies_for(&server, &requests, cuts)).unwrap(),
            String::from_utf8(reference.clone()).unwrap()
        );
    }
}

#[test]
fn many_pipelined_puts_are_all_acknowledged_in_order() {
    let server = memory_server();
    let mut c = Conn::open(server.local_addr());
    let n = 100_000;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend_from_slice(format!("put p{} {i} {i}\n", i % 10).as_bytes());
    }
    batch.extend_from_slice(b"get p3\n");
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        std::thread::spawn(move || stream.write_all(&batch).unwrap())
    };
    for _ in 0..n {
        assert_eq!(c.reply(), b"ok\n\n");
    }
    let Reply::Points(points) = decode(&c.reply()) else {
        panic!()
    };
    writer.join().unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].1.len(), n / 10);
    assert_eq!(points[0].1[0], (3, 3.0));
    assert_eq!(server.stats(), (n as u64, 10));
}

#[test]
fn a_large_get_is_streamed_complete_and_sorted() {
    let server = memory_server();
    let mut c = Conn::open(server.local_addr());
    let (keys, per_key) = (50, 4000);
    let mut batch = Vec::new();
    for t in (0..per_key).rev() {
        for k in 0..keys {
            batch.extend_from_slice(format!("put key.{k} {t}.5 {t}\n").as_bytes());
        }
    }
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        std::thread::spawn(move || stream.write_all(&batch).unwrap())
    };
    for _ in 0..keys * per_key {
        assert_eq!(c.reply(), b"ok\n\n");
    }
    writer.join().unwrap();
    c.send(b"get *\nget key.7\n");
    let all = c.reply();
    assert!(all.len() > (64 << 10) * 4, "{} bytes", all.len());
    let Reply::Points(points) = decode(&all) else {
        panic!()
    };
    assert_eq!(points.len(), keys);
    for (k, (key, series)) in points.iter().enumerate() {
        assert_eq!(key, &format!("key.{k}"));
        let want: Vec<(i64, f64)> = (0..per_key).map(|t| (t as i64, t as f64 + 0.5)).collect();
        assert_eq!(series, &want);
    }
    let Reply::Points(one) = decode(&c.reply()) else {
        panic!()
    };
    assert_eq!(one, vec![points[7].clone()]);
}

#[test]
fn over_long_lines_get_an_error_and_the_connection_closes() {
    let server = memory_server();
    // Exactly the limit is served: a 1 MiB line (a get of a 1 MiB - 4 key).
    let mut c = Conn::open(server.local_addr());
    let key = "k".repeat((1 << 20) - 4);
    assert_eq!(c.ask(&format!("get {key}\n")), "ok\n\n");
    assert_eq!(c.ask("put k 1 1\n"), "ok\n\n");
    // One byte more is refused, after the replies to earlier requests.
    let mut line = format!("put k 2 2\nget {key}x");
    c.send(line.as_bytes());
    c.stream.shutdown(Shutdown::Write).unwrap();
    let rest = c.read_to_close();
    assert_eq!(rest, b"ok\n\nerror\nline too long\n\n");
    // Also when the line never ends, and however it is split.
    let mut c = Conn::open(server.local_addr());
    line = "x".repeat(3 << 20);
    for piece in line.as_bytes().chunks(100_000) {
        c.send(piece);
    }
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.read_to_close(), b"error\nline too long\n\n");
    // Other connections are unaffected.
    let mut d = Conn::open(server.local_addr());
    assert_eq!(d.ask("get k\n"), "ok\nk 1.0 1\nk 2.0 2\n\n");
}

#[test]
fn a_small_line_limit_is_enforced() {
    let server = start(Config {
        limits: Limits {
            max_line_bytes: 16,
            read_buffer_bytes: 4,
            ..Limits::default()
        },
        ..Config::default()
    });
    let mut c = Conn::open(server.local_addr());
    assert_eq!(c.ask("put abcdef 1 123\n"), "ok\n\n"); // 16 bytes
    c.send(b"put abcdefg 1 123\n");
    assert_eq!(c.read_to_close(), b"error\nline too long\n\n");
}

#[test]
fn a_thousand_concurrent_connections() {
    let server = memory_server();
    let addr = server.local_addr();
    let mut conns: Vec<Conn> = (0..1000).map(|_| Conn::open(addr)).collect();
    // Every connection has a request in flight before any reply is read.
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(format!("put conn.{} {i} {i}\n", i % 100).as_bytes());
    }
    for c in &mut conns {
        assert_eq!(c.reply(), b"ok\n\n");
    }
    for (i, c) in conns.iter_mut().enumerate().step_by(97) {
        let Reply::Points(points) = decode(c.ask(&format!("get conn.{}\n", i % 100)).as_bytes())
        else {
            panic!()
        };
        assert_eq!(points[0].1.len(), 10);
    }
    assert_eq!(server.stats(), (1000, 100));
}

#[test]
fn slow_and_idle_clients_do_not_stall_others() {
    let server = memory_server();
    let addr = server.local_addr();
    // Enough data that a get * fills every socket buffer on the way.
    let mut loader = Conn::open(addr);
    let mut batch = Vec::new();
    for i in 0..300_000 {
        batch.extend_from_slice(format!("put slow.{} {i} {i}\n", i % 3).as_bytes());
    }
    let writer = {
        let mut stream = loader.stream.try_clone().unwrap();
        std::thread::spawn(move || stream.write_all(&batch).unwrap())
    };
    for _ in 0..300_000 {
        loader.reply();
    }
    writer.join().unwrap();
    // An idle client with half a line, and clients that ask for everything
    // and never read.
    let mut idle = Conn::open(addr);
    idle.send(b"put half");
    let mut stuck: Vec<Conn> = (0..4).map(|_| Conn::open(addr)).collect();
    for c in &mut stuck {
        c.send(b"get *\nget *\nget *\n");
    }
    // Others are served promptly meanwhile, writes included.
    let started = Instant::now();
    let mut c = Conn::open(addr);
    for i in 0..200 {
        assert_eq!(c.ask(&format!("put fast {i} {i}\n")), "ok\n\n");
    }
    let Reply::Points(points) = decode(c.ask("get fast\n").as_bytes()) else {
        panic!()
    };
    assert_eq!(points[0].1.len(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The idle client can finish its line.
    assert_eq!(idle.ask(" 1 1\n"), "ok\n\n");
}

// ---- durability ----------------------------------------------------------

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
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("metrics-journal 2\n"));
        assert_eq!(
            records(&path),
            "put test_key 12.0 1503319740\nput test_key 13.0 1503319739\nput test_key 99 1503319740\n"
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
        let text = std::fs::read_to_string(&path).unwrap();
        for i in 0..8 {
            assert!(
                text.contains(&format!("put c{i} {round} {round} ")),
                "round {round}"
            );
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
        server.close().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("put a 1 1\nput b 2.5 2\nmetrics-journal 2\nput c 4 4 "),
        "{text:?}"
    );
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
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines().count() < 10_000,
        "{} lines",
        text.lines().count()
    );
    assert!(text.contains("\nput after 1 1 "));
    assert!(text.starts_with("metrics-journal 2\n"));
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
