//! How an address is written in messages and attributes: `host:port`, with
//! an IPv6 address in brackets (`[::1]:8888`) so the port stays readable.
//! The one writer of it on the Rust side (client and server alike).

/// `host:port`, brackets around a host that contains `:` (IPv6).
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(host_port("127.0.0.1", 8888), "127.0.0.1:8888");
        assert_eq!(host_port("localhost", 0), "localhost:0");
        assert_eq!(host_port("::1", 8888), "[::1]:8888");
        assert_eq!(host_port("fe80::1%lo", 1), "[fe80::1%lo]:1");
    }
}
