//! What rustls + ring cost for one put, in memory: no sockets, no threads,
//! client and server connections handing records to each other. A round
//! trip is one put line (client encrypts, server decrypts) and its `ok`
//! (server encrypts, client decrypts), the work TLS adds to a put over
//! plain TCP, so it is the floor under `benches/tls.py`'s "native extra".
//!
//!     mkdir -p /tmp/c && python -c 'from tests.support.certificates import Certificates; Certificates("/tmp/c")'
//!     cargo bench --bench tls_floor -- /tmp/c [--trips N] [--rounds R]
//!
//! Printed, each the median (and min-max) over R rounds of N round trips:
//! - buffered: `ClientConnection`/`ServerConnection` driven as the project
//!   drives them (records written into a kept Vec, read from a slice);
//! - unbuffered: rustls's `Unbuffered*Connection`, records encrypted into and
//!   decrypted in caller-owned buffers (no copies or allocations of rustls's);
//! - AEAD only: the negotiated suite's record encrypter/decrypter, four
//!   records per trip, the crypto with none of rustls's bookkeeping.
//!
//! The suite is the client's first choice (TLS 1.3 AES-128-GCM), as the
//! native client negotiates with the embedded server.
//!
//! `--churn KIB` writes one byte in every cache line of a KIB buffer between
//! round trips, as the Python interpreter and the kernel do between two puts
//! in `benches/tls.py`: the figures then show what the same work costs from
//! caches it no longer owns. The churn's own time (printed) is subtracted.

use std::hint::black_box;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use metrics_client::pem;
use rustls::client::UnbufferedClientConnection;
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, Iv, MessageDecrypter, MessageEncrypter, OutboundPlainMessage,
};
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, UnbufferedStatus};
use rustls::{
    ClientConfig, ClientConnection, ConnectionTrafficSecrets, ContentType, ProtocolVersion,
    RootCertStore, ServerConfig, ServerConnection, SupportedCipherSuite,
};

const LINE: &[u8] = b"put bench.tls 1234.0 1700001234\n";
const REPLY: &[u8] = b"ok\n";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

fn configs(dir: &Path) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let chain = pem::certificates(&dir.join("server.pem")).expect("server.pem");
    let key = pem::private_key(&dir.join("server.key")).expect("server.key");
    let mut roots = RootCertStore::empty();
    for ca in pem::certificates(&dir.join("ca.pem")).expect("ca.pem") {
        roots.add(ca).expect("a CA certificate");
    }
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    (Arc::new(client), Arc::new(server))
}

/// Memory written between round trips to push the TLS state out of the
/// caches (none: the hot floor).
struct Churn(Vec<u8>);

impl Churn {
    fn run(&mut self) {
        for line in self.0.chunks_mut(64) {
            line[0] = line[0].wrapping_add(1);
        }
        black_box(&mut self.0);
    }
}

/// Seconds per round of the churn alone, to subtract from the others.
fn churn_only(churn: &mut Churn, trips: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..trips {
        churn.run();
    }
    started.elapsed().as_secs_f64() / trips as f64
}

fn name() -> ServerName<'static> {
    ServerName::try_from("127.0.0.1").unwrap()
}

/// Moves every record `from` has pending into `to`.
fn pump(from: &mut rustls::Connection, to: &mut rustls::Connection, wire: &mut Vec<u8>) {
    wire.clear();
    while from.wants_write() {
        from.write_tls(wire).unwrap();
    }
    let mut records = &wire[..];
    while !records.is_empty() {
        to.read_tls(&mut records).unwrap();
    }
    to.process_new_packets().unwrap();
}

/// Seconds per round trip of the buffered connections; also the suite.
fn buffered(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    trips: usize,
    churn: &mut Churn,
) -> f64 {
    let mut c: rustls::Connection = ClientConnection::new(client.clone(), name())
        .unwrap()
        .into();
    let mut s: rustls::Connection = ServerConnection::new(server.clone()).unwrap().into();
    let mut wire = Vec::with_capacity(64 * 1024);
    for _ in 0..8 {
        pump(&mut c, &mut s, &mut wire);
        pump(&mut s, &mut c, &mut wire);
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    let mut line = [0u8; 256];
    let started = Instant::now();
    for _ in 0..trips {
        churn.run();
        c.writer().write_all(LINE).unwrap();
        pump(&mut c, &mut s, &mut wire);
        assert_eq!(s.reader().read(&mut line).unwrap(), LINE.len());
        s.writer().write_all(REPLY).unwrap();
        pump(&mut s, &mut c, &mut wire);
        let mut reader = c.reader();
        let got = reader.fill_buf().unwrap().len();
        assert_eq!(got, REPLY.len());
        reader.consume(got);
    }
    started.elapsed().as_secs_f64() / trips as f64
}

/// One side of an unbuffered connection and the records waiting for it.
struct Side<D> {
    conn: D,
    incoming: Vec<u8>,
    used: usize,
}

/// What one step of an unbuffered connection asks for.
enum Step {
    /// Records to send (written into the peer's `incoming`).
    Sent,
    /// Plaintext bytes received.
    Received(usize),
    /// Waiting for the peer.
    Idle,
    /// Ready for application data.
    Ready,
}

macro_rules! step {
    ($side:expr, $peer:expr, $plain:expr) => {{
        let UnbufferedStatus { discard, state } = $side
            .conn
            .process_tls_records(&mut $side.incoming[..$side.used]);
        let step = match state.unwrap() {
            ConnectionState::EncodeTlsData(mut e) => {
                let n = e.encode(&mut $peer.incoming[$peer.used..]).unwrap();
                $peer.used += n;
                Step::Sent
            }
            ConnectionState::TransmitTlsData(t) => {
                t.done();
                Step::Sent
            }
            ConnectionState::BlockedHandshake => Step::Idle,
            ConnectionState::WriteTraffic(_) => Step::Ready,
            ConnectionState::ReadTraffic(mut r) => {
                let mut got = 0;
                while let Some(record) = r.next_record() {
                    let record = record.unwrap();
                    $plain[got..got + record.payload.len()].copy_from_slice(record.payload);
                    got += record.payload.len();
                }
                Step::Received(got)
            }
            other => panic!("unexpected state {other:?}"),
        };
        $side.incoming.copy_within(discard..$side.used, 0);
        $side.used -= discard;
        step
    }};
}

macro_rules! send {
    ($side:expr, $peer:expr, $data:expr) => {{
        match $side.conn.process_tls_records(&mut []).state.unwrap() {
            ConnectionState::WriteTraffic(mut w) => {
                let n = w.encrypt($data, &mut $peer.incoming[$peer.used..]).unwrap();
                $peer.used += n;
            }
            other => panic!("not ready to write: {other:?}"),
        }
    }};
}

/// Reads until `want` plaintext bytes came, then past what follows them.
macro_rules! receive {
    ($side:expr, $peer:expr, $plain:expr, $want:expr) => {{
        let mut got = 0;
        for _ in 0..16 {
            match step!($side, $peer, $plain) {
                Step::Received(n) => got += n,
                Step::Ready if got == $want => break,
                _ => {}
            }
        }
        assert_eq!(got, $want);
    }};
}

fn unbuffered(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    trips: usize,
    churn: &mut Churn,
) -> f64 {
    let mut c = Side {
        conn: UnbufferedClientConnection::new(client.clone(), name()).unwrap(),
        incoming: vec![0; 64 * 1024],
        used: 0,
    };
    let mut s = Side {
        conn: UnbufferedServerConnection::new(server.clone()).unwrap(),
        incoming: vec![0; 64 * 1024],
        used: 0,
    };
    let mut plain = [0u8; 64 * 1024];
    let (mut client_ready, mut server_ready) = (false, false);
    for _ in 0..64 {
        if !client_ready {
            client_ready = matches!(step!(c, s, plain), Step::Ready);
        }
        if !server_ready {
            server_ready = matches!(step!(s, c, plain), Step::Ready);
        }
    }
    assert!(client_ready && server_ready, "handshake did not finish");
    // The server's session tickets, read past before timing.
    receive!(c, s, plain, 0);
    let started = Instant::now();
    for _ in 0..trips {
        churn.run();
        send!(c, s, LINE);
        receive!(s, c, plain, LINE.len());
        send!(s, c, REPLY);
        receive!(c, s, plain, REPLY.len());
    }
    started.elapsed().as_secs_f64() / trips as f64
}

/// The AEAD of a traffic secret, sealing or opening.
fn aead(suite: SupportedCipherSuite, secret: ConnectionTrafficSecrets) -> (AeadKey, Iv) {
    assert!(matches!(suite, SupportedCipherSuite::Tls13(_)), "TLS 1.2");
    match secret {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (key, iv),
        _ => panic!("not AES-128-GCM"),
    }
}

/// Seconds per round trip of the suite's AEAD alone: the client seals the
/// line, the server opens it, seals the reply, the client opens it, with
/// the keys a real handshake made.
fn aead_only(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    trips: usize,
    churn: &mut Churn,
) -> f64 {
    let (mut client, mut server) = ((**client).clone(), (**server).clone());
    client.enable_secret_extraction = true;
    server.enable_secret_extraction = true;
    let mut c: rustls::Connection = ClientConnection::new(Arc::new(client), name())
        .unwrap()
        .into();
    let mut s: rustls::Connection = ServerConnection::new(Arc::new(server)).unwrap().into();
    let mut wire = Vec::new();
    for _ in 0..8 {
        pump(&mut c, &mut s, &mut wire);
        pump(&mut s, &mut c, &mut wire);
    }
    let suite = c.negotiated_cipher_suite().unwrap();
    let SupportedCipherSuite::Tls13(tls13) = suite else {
        panic!("TLS 1.2 negotiated")
    };
    let (rustls::Connection::Client(c), rustls::Connection::Server(s)) = (c, s) else {
        unreachable!()
    };
    let (c, s) = (
        c.dangerous_extract_secrets().unwrap(),
        s.dangerous_extract_secrets().unwrap(),
    );
    let alg = tls13.aead_alg;
    let seal = |(key, iv)| alg.encrypter(key, iv);
    let open = |(key, iv)| alg.decrypter(key, iv);
    let mut client_seals = seal(aead(suite, c.tx.1));
    let mut client_opens = open(aead(suite, c.rx.1));
    let mut server_seals = seal(aead(suite, s.tx.1));
    let mut server_opens = open(aead(suite, s.rx.1));
    let one_way = |sealing: &mut dyn MessageEncrypter,
                   opening: &mut dyn MessageDecrypter,
                   data: &[u8],
                   seq: u64| {
        let plain = OutboundPlainMessage {
            typ: ContentType::ApplicationData,
            version: ProtocolVersion::TLSv1_2,
            payload: data.into(),
        };
        let mut bytes = sealing.encrypt(plain, seq).unwrap().encode();
        let record = InboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            &mut bytes[5..],
        );
        let opened = opening.decrypt(record, seq).unwrap();
        assert_eq!(opened.payload, data);
    };
    let started = Instant::now();
    for seq in 0..trips as u64 {
        churn.run();
        one_way(&mut *client_seals, &mut *server_opens, LINE, seq);
        one_way(&mut *server_seals, &mut *client_opens, REPLY, seq);
    }
    started.elapsed().as_secs_f64() / trips as f64
}

fn report(what: &str, each: Vec<f64>, churn: &[f64]) {
    // Each round's churn time is taken from that round's figure.
    let mut each: Vec<f64> = each.iter().zip(churn).map(|(t, c)| t - c).collect();
    each.sort_by(f64::total_cmp);
    let us = |s: f64| s * 1e6;
    println!(
        "{what:12} {:6.3} us/trip (min {:.3}, max {:.3})",
        us(each[each.len() / 2]),
        us(each[0]),
        us(each[each.len() - 1])
    );
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut dir: Option<PathBuf> = None;
    let (mut trips, mut rounds, mut churn_kib) = (200_000usize, 7usize, 0usize);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--trips" => trips = args.next().and_then(|n| n.parse().ok()).expect("--trips N"),
            "--churn" => {
                churn_kib = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--churn KIB")
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--rounds R")
            }
            _ => dir = Some(arg.into()),
        }
    }
    let Some(dir) = dir else {
        eprintln!(
            "usage: tls_floor CERT_DIR [--trips N] [--rounds R] [--churn KIB] (see the file's header)"
        );
        std::process::exit(2);
    };
    let (client, server) = configs(&dir);
    println!("in-memory rustls + ring, {trips} round trips (a put line and its ok) per round, {rounds} rounds");
    let mut churn = Churn(vec![0; churn_kib * 1024]);
    if churn_kib > 0 {
        println!("{churn_kib} KiB of memory written between round trips (its time subtracted)");
    }
    let (mut b, mut u, mut a, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        c.push(churn_only(&mut churn, trips));
        b.push(buffered(&client, &server, trips, &mut churn));
        u.push(unbuffered(&client, &server, trips, &mut churn));
        a.push(aead_only(&client, &server, trips, &mut churn));
    }
    let none = vec![0.0; rounds];
    report("buffered", b, &c);
    report("unbuffered", u, &c);
    report("AEAD only", a, &c);
    if churn_kib > 0 {
        report("churn alone", c, &none);
    }
}
