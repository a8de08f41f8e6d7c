//! The embedded server over real loopback sockets: protocol rules, split and
//! pipelined input, limits and concurrency (the journal is
//! `server_durability.rs`). What a Python user sees of it (the `Server`
//! class's life, bind and data-path errors, IPv6, values as Python's
//! `str(float)`) is tested once, in `tests/test_server_conformance.py`.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::*;
use metrics_client::protocol::Reply;
use metrics_client::server::{Config, Limits, Server};

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
