//! What the server's integration tests share: a server started from a
//! `Config`, a client connection that splits replies, temporary
//! directories, and the journal read back as put lines. Each test binary
//! uses part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics_client::protocol::{Expect, Reply, ReplyDecoder};
use metrics_client::server::{Config, FsyncPolicy, Server};

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn start(config: Config) -> Server {
    Server::start(config).expect("server starts")
}

pub fn memory_server() -> Server {
    start(Config::default())
}

/// A client connection that splits the byte stream into whole replies.
pub struct Conn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The raw bytes of the next complete reply.
    pub fn reply(&mut self) -> Vec<u8> {
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

    pub fn ask(&mut self, request: &str) -> String {
        self.send(request.as_bytes());
        String::from_utf8(self.reply()).unwrap()
    }

    /// Reads until the server closes; returns everything received.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut all = std::mem::take(&mut self.buf);
        self.stream.read_to_end(&mut all).expect("read to close");
        all
    }
}

pub fn decode(reply: &[u8]) -> Reply {
    ReplyDecoder::new(Expect::Points)
        .feed(reply)
        .unwrap()
        .unwrap()
        .reply
}

pub static DIRS: AtomicUsize = AtomicUsize::new(0);

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "metrics-server-test-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
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
pub fn records(path: &Path) -> String {
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

pub fn durable(path: &Path, fsync: FsyncPolicy) -> Config {
    Config {
        data: Some(path.to_owned()),
        fsync,
        ..Config::default()
    }
}
