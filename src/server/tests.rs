use super::*;
use std::io::{Read, Write};
use std::time::Duration;

fn ask(stream: &mut std::net::TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0];
    while !reply.ends_with(b"\n\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed early");
        reply.push(byte[0]);
    }
    String::from_utf8(reply).unwrap()
}

/// Connections handed out round-robin to several workers are all served,
/// share one store, and are all closed by `close`.
#[test]
fn several_workers_share_the_store_and_close() {
    let mut server = Server::start(Config {
        workers: 3,
        ..Config::default()
    })
    .unwrap();
    let mut streams: Vec<_> = (0..7)
        .map(|_| std::net::TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    for _round in 0..2 {
        for (i, stream) in streams.iter_mut().enumerate() {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            assert_eq!(ask(stream, &format!("put k{i} {i}.5 {i}\n")), "ok\n\n");
        }
    }
    for (i, stream) in streams.iter_mut().enumerate() {
        let want = format!("ok\nk{i} {i}.5 {i}\n\n");
        assert_eq!(ask(stream, &format!("get k{i}\n")), want);
    }
    assert_eq!(server.stats(), (7, 7));
    server.close().unwrap();
    assert!(server.is_closed());
    for stream in &mut streams {
        let mut rest = Vec::new();
        // EOF, or a reset if the close raced the last ack.
        let closed = matches!(stream.read_to_end(&mut rest), Ok(0) | Err(_));
        assert!(closed);
    }
}
