//! metrics-load: a load generator for the metrics server benchmarks.
//!
//! One thread, one epoll set, N non-blocking connections. Each connection
//! writes a batch of `--pipeline` requests in one `write`, waits until all of
//! their replies have arrived, then writes the next batch (`--pipeline 1` is
//! plain request/reply). It stops after `--requests` replies in all or after
//! `--seconds`, whichever comes first, and prints one JSON line:
//! replies, errors, seconds, replies per second and its own CPU time.
//!
//! Why one thread: the benchmark machine has 2 cores shared by the server
//! and the generator. A thread per connection would spend the cores on
//! context switches; one epoll loop costs about one `read` and one `write`
//! system call per batch and per connection, and its CPU time is reported so
//! the run shows that the server, not the generator, is the bottleneck.
//!
//! Protocols: `metrics` sends `put <key> <value> <timestamp>\n` and counts
//! replies ending in an empty line (`ok\n\n`; a reply starting with `e` is an
//! error); `redis` sends `SET <key> <value>` as RESP arrays and counts
//! `+OK\r\n` lines (a line starting with `-` is an error).
//!
//! Only loopback addresses are accepted.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    Metrics,
    Redis,
}

struct Options {
    addr: SocketAddr,
    connections: usize,
    pipeline: usize,
    requests: u64,
    seconds: f64,
    protocol: Protocol,
    keys: u64,
}

const USAGE: &str = "usage: metrics-load --addr HOST:PORT [--connections 50] [--pipeline 1] \
[--requests 200000] [--seconds 10] [--protocol metrics|redis] [--keys 10]";

fn parse_options() -> Result<Options, String> {
    let mut addr = None;
    let mut options = Options {
        addr: "127.0.0.1:0".parse().unwrap(),
        connections: 50,
        pipeline: 1,
        requests: 200_000,
        seconds: 10.0,
        protocol: Protocol::Metrics,
        keys: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| -> Result<f64, String> {
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or(format!("{flag}: not a positive number: {text}"))
        };
        match flag.as_str() {
            "--addr" => {
                let text = value()?;
                let resolved = text
                    .to_socket_addrs()
                    .map_err(|e| format!("--addr {text}: {e}"))?
                    .next()
                    .ok_or(format!("--addr {text}: no address"))?;
                if !resolved.ip().is_loopback() {
                    return Err(format!(
                        "--addr {text}: only loopback addresses are allowed"
                    ));
                }
                addr = Some(resolved);
            }
            "--connections" => options.connections = number(value()?)? as usize,
            "--pipeline" => options.pipeline = number(value()?)? as usize,
            "--requests" => options.requests = number(value()?)? as u64,
            "--seconds" => options.seconds = number(value()?)?,
            "--keys" => options.keys = number(value()?)? as u64,
            "--protocol" => {
                options.protocol = match value()?.as_str() {
                    "metrics" => Protocol::Metrics,
                    "redis" => Protocol::Redis,
                    other => return Err(format!("--protocol: unknown {other}")),
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    options.addr = addr.ok_or(USAGE)?;
    if options.connections == 0 || options.pipeline == 0 {
        return Err("--connections and --pipeline must be at least 1".into());
    }
    Ok(options)
}

/// Appends the decimal digits of `n`.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn decimal_len(n: u64) -> u64 {
    let mut len = 1;
    let mut n = n / 10;
    while n > 0 {
        len += 1;
        n /= 10;
    }
    len
}

struct Connection {
    stream: TcpStream,
    id: u64,
    /// Requests sent on this connection so far (numbers keys and timestamps).
    made: u64,
    out: Vec<u8>,
    written: usize,
    /// Replies still expected for the batch in flight.
    awaiting: usize,
    previous: u8,
    at_reply_start: bool,
    open: bool,
    want_write: bool,
}

impl Connection {
    /// Appends request number `self.made` to the output buffer.
    fn push_request(&mut self, protocol: Protocol, keys: u64) {
        let n = self.made;
        self.made += 1;
        let metric = n % keys;
        let out = &mut self.out;
        match protocol {
            Protocol::Metrics => {
                // put bench.c07.m3 512.25 1700000123
                out.extend_from_slice(b"put bench.c");
                push_u64(out, self.id);
                out.extend_from_slice(b".m");
                push_u64(out, metric);
                out.push(b' ');
                push_u64(out, n % 1000);
                out.extend_from_slice(b".25 ");
                push_u64(out, 1_700_000_000 + n / keys);
                out.push(b'\n');
            }
            Protocol::Redis => {
                // SET bench.c07.m3 512.25
                let key_len = 7 + decimal_len(self.id) + 2 + decimal_len(metric);
                let value_len = decimal_len(n % 1000) + 3;
                out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$");
                push_u64(out, key_len);
                out.extend_from_slice(b"\r\nbench.c");
                push_u64(out, self.id);
                out.extend_from_slice(b".m");
                push_u64(out, metric);
                out.extend_from_slice(b"\r\n$");
                push_u64(out, value_len);
                out.extend_from_slice(b"\r\n");
                push_u64(out, n % 1000);
                out.extend_from_slice(b".25\r\n");
            }
        }
    }

    /// Writes as much of the pending output as the socket takes.
    fn flush(&mut self) -> io::Result<()> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        Ok(())
    }

    /// Counts the replies in `data`; returns (replies, errors).
    fn scan(&mut self, protocol: Protocol, data: &[u8]) -> (usize, usize) {
        let (mut replies, mut errors) = (0, 0);
        for &byte in data {
            if self.at_reply_start {
                self.at_reply_start = false;
                if byte == b'e' || byte == b'-' {
                    errors += 1;
                }
            }
            let end = match protocol {
                Protocol::Metrics => byte == b'\n' && self.previous == b'\n',
                Protocol::Redis => byte == b'\n',
            };
            if end {
                replies += 1;
                self.at_reply_start = true;
                self.previous = 0;
            } else {
                self.previous = byte;
            }
        }
        (replies, errors)
    }
}

struct Totals {
    issued: u64,
    replies: u64,
    errors: u64,
    closed: u64,
}

fn epoll_ctl(epoll: i32, op: i32, fd: i32, events: u32, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: token };
    // SAFETY: `epoll` and `fd` are open descriptors owned by this process;
    // `event` is a valid epoll_event for the duration of the call.
    if unsafe { libc::epoll_ctl(epoll, op, fd, &mut event) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

fn start_batch(conn: &mut Connection, options: &Options, totals: &mut Totals) {
    let left = options.requests - totals.issued;
    let batch = (options.pipeline as u64).min(left) as usize;
    for _ in 0..batch {
        conn.push_request(options.protocol, options.keys);
    }
    conn.awaiting = batch;
    totals.issued += batch as u64;
}

fn run(options: &Options) -> io::Result<String> {
    let mut conns = Vec::with_capacity(options.connections);
    for id in 0..options.connections {
        let stream = TcpStream::connect_timeout(&options.addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        conns.push(Connection {
            stream,
            id: id as u64,
            made: 0,
            out: Vec::with_capacity(options.pipeline * 48),
            written: 0,
            awaiting: 0,
            previous: 0,
            at_reply_start: true,
            open: true,
            want_write: false,
        });
    }
    // SAFETY: plain system call; the descriptor is closed below.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = drive(options, &mut conns, epoll);
    // SAFETY: `epoll` is ours and not used after this.
    unsafe { libc::close(epoll) };
    result
}

fn drive(options: &Options, conns: &mut [Connection], epoll: i32) -> io::Result<String> {
    let mut totals = Totals {
        issued: 0,
        replies: 0,
        errors: 0,
        closed: 0,
    };
    for (token, conn) in conns.iter().enumerate() {
        epoll_ctl(
            epoll,
            libc::EPOLL_CTL_ADD,
            conn.stream.as_raw_fd(),
            libc::EPOLLIN as u32,
            token as u64,
        )?;
    }
    let (user0, sys0) = cpu_seconds();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(options.seconds);
    for conn in conns.iter_mut() {
        if totals.issued < options.requests {
            start_batch(conn, options, &mut totals);
            conn.flush()?;
        }
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.len().max(1)];
    let mut buffer = vec![0u8; 256 << 10];
    let mut timed_out = false;
    while totals.replies + totals.closed < totals.issued || totals.issued < options.requests {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        let wait_ms = (deadline - now).as_millis().clamp(1, 100) as i32;
        // SAFETY: `events` has room for `events.len()` entries.
        let ready =
            unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, wait_ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in &events[..ready as usize] {
            let conn = &mut conns[event.u64 as usize];
            if !conn.open {
                continue;
            }
            if event.events & libc::EPOLLOUT as u32 != 0 {
                conn.flush()?;
            }
            if event.events & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                loop {
                    match conn.stream.read(&mut buffer) {
                        Ok(0) => {
                            conn.open = false;
                            totals.closed += conn.awaiting as u64;
                            conn.awaiting = 0;
                            break;
                        }
                        Ok(n) => {
                            let (replies, errors) = conn.scan(options.protocol, &buffer[..n]);
                            conn.awaiting = conn.awaiting.saturating_sub(replies);
                            totals.replies += replies as u64;
                            totals.errors += errors as u64;
                            if n < buffer.len() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if conn.open && conn.awaiting == 0 && totals.issued < options.requests {
                    start_batch(conn, options, &mut totals);
                    conn.flush()?;
                }
            }
            let want_write = conn.open && !conn.out.is_empty();
            if want_write != conn.want_write {
                conn.want_write = want_write;
                let mut flags = libc::EPOLLIN as u32;
                if want_write {
                    flags |= libc::EPOLLOUT as u32;
                }
                epoll_ctl(
                    epoll,
                    libc::EPOLL_CTL_MOD,
                    conn.stream.as_raw_fd(),
                    flags,
                    event.u64,
                )?;
            }
        }
        if conns.iter().all(|c| !c.open) {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (user1, sys1) = cpu_seconds();
    Ok(format!(
        concat!(
            "{{\"replies\": {}, \"errors\": {}, \"closed\": {}, \"timed_out\": {}, ",
            "\"seconds\": {:.6}, \"rps\": {:.1}, \"cpu_user\": {:.3}, \"cpu_sys\": {:.3}, ",
            "\"connections\": {}, \"pipeline\": {}}}"
        ),
        totals.replies,
        totals.errors,
        totals.closed,
        timed_out,
        seconds,
        totals.replies as f64 / seconds,
        user1 - user0,
        sys1 - sys0,
        options.connections,
        options.pipeline,
    ))
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("metrics-load: {e}");
            ExitCode::FAILURE
        }
    }
}
