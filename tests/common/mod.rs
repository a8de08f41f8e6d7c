//! What the server's integration tests share: a server started from a
//! `Config`, a client connection that splits replies, temporary
//! directories, and the journal's records read back. Each test binary
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

/// The line that starts a journal of format 3.
pub const HEADER: &[u8] = b"metrics-journal 3\n";

/// A put as the journal holds it.
pub type Record = (String, f64, i64);

/// Every record of the journal at `path`, in file order, decoded here
/// from the format the README documents (plain put lines, put lines with
/// a CRC-32C after `metrics-journal 2`, checksummed frames after
/// `metrics-journal 3`), independently of the server's decoder; panics on
/// anything else.
pub fn records(path: &Path) -> Vec<Record> {
    let data = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut keys = std::collections::HashMap::<u64, String>::new();
    let (mut at, mut version) = (0usize, 1);
    while at < data.len() {
        if version == 3 {
            at = frame(&data, at, &mut keys, &mut out);
            continue;
        }
        let end = at
            + data[at..]
                .iter()
                .position(|&b| b == b'\n')
                .expect("a whole line");
        let line = std::str::from_utf8(&data[at..end]).unwrap();
        at = end + 1;
        match line {
            "metrics-journal 2" => version = 2,
            "metrics-journal 3" => version = 3,
            _ => {
                let body = match version {
                    2 => {
                        let (body, crc) = line.rsplit_once(' ').unwrap();
                        let crc = u32::from_str_radix(crc, 16).unwrap();
                        assert_eq!(crc, crc32c::crc32c(body.as_bytes()), "{line:?}");
                        body
                    }
                    _ => line,
                };
                let words: Vec<&str> = body.split_whitespace().collect();
                assert!(matches!(words[..], ["put", _, _, _]), "{line:?}");
                out.push((
                    words[1].to_string(),
                    words[2].parse().unwrap(),
                    words[3].parse().unwrap(),
                ));
            }
        }
    }
    out
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = bytes[*at];
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return n;
        }
    }
    panic!("a varint too long at {at}")
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Decodes the frame at `at`; returns where it ends.
fn frame(
    data: &[u8],
    at: usize,
    keys: &mut std::collections::HashMap<u64, String>,
    out: &mut Vec<Record>,
) -> usize {
    let field = |i: usize| u32::from_le_bytes(data[at + i..at + i + 4].try_into().unwrap());
    assert_eq!(data[at], 0xB3, "a frame at {at}");
    let (len, count, crc) = (field(1) as usize, field(5), field(9));
    let payload = &data[at + 13..at + 13 + len];
    let computed = crc32c::crc32c_append(crc32c::crc32c(&data[at..at + 9]), payload);
    assert_eq!(computed, crc, "the checksum of the frame at {at}");
    let (mut p, mut id, mut ts) = (0usize, 0i64, 0i64);
    for _ in 0..count {
        let head = varint(payload, &mut p);
        id += unzigzag(head >> 1);
        if head & 1 == 1 {
            let n = varint(payload, &mut p) as usize;
            keys.insert(
                id as u64,
                String::from_utf8(payload[p..p + n].to_vec()).unwrap(),
            );
            p += n;
        }
        ts += unzigzag(varint(payload, &mut p));
        let value = f64::from_le_bytes(payload[p..p + 8].try_into().unwrap());
        p += 8;
        out.push((keys[&(id as u64)].clone(), value, ts));
    }
    assert_eq!(p, payload.len(), "bytes left over in the frame at {at}");
    at + 13 + len
}

pub fn durable(path: &Path, fsync: FsyncPolicy) -> Config {
    Config {
        data: Some(path.to_owned()),
        fsync,
        ..Config::default()
    }
}
