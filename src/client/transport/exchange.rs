//! Sending requests and reading their replies over any `Transport`.

use std::time::Instant;

use crate::client::error::ClientError;
use crate::protocol::{Reply, ReplyDecoder};

/// A connected byte stream.
pub trait Transport {
    /// Writes all of `data` (as one `sendall` where the transport has one).
    fn send_all(&mut self, data: &[u8]) -> Result<(), ClientError>;

    /// Waits for more bytes and hands them to `sink` (in one or more
    /// pieces); returns how many bytes were received, 0 meaning the peer
    /// closed the stream.
    fn receive(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<usize, ClientError>;

    /// Sets the instant by which the current call must finish; `None` waits
    /// forever. Transports that keep their own timeout ignore it.
    fn set_deadline(&mut self, _deadline: Option<Instant>) {}

    /// False when the idle connection is known to be unusable (the peer
    /// closed it, or sent bytes nobody asked for), so sending on it would
    /// fail or desynchronise. Checked before every reuse; must not block.
    fn is_reusable(&mut self) -> bool {
        true
    }

    /// Releases the connection now, as the client's `close()` does. Dropping
    /// a transport that owns its descriptor closes it too; this is for
    /// transports whose connection outlives them otherwise (a host object).
    fn close(&mut self) {}
}

/// Sends one request and reads exactly one reply.
pub fn exchange<T: Transport + ?Sized>(
    transport: &mut T,
    request: &[u8],
    decoder: &mut ReplyDecoder,
) -> Result<Reply, ClientError> {
    transport.send_all(request)?;
    read_reply(transport, decoder)
}

/// Reads one reply. Reading stops as soon as it is complete: a socket-like
/// object may have nothing more to give, and a real server nothing more to say.
pub fn read_reply<T: Transport + ?Sized>(
    transport: &mut T,
    decoder: &mut ReplyDecoder,
) -> Result<Reply, ClientError> {
    let mut replies = Vec::with_capacity(1);
    read_replies(transport, decoder, &mut replies, 1, 1)?;
    replies
        .pop()
        .ok_or(ClientError::Closed { mid_reply: false })
}

/// Reads until `replies` holds `count` replies, decoding every complete reply
/// in each chunk (with pipelining a chunk may end one reply and start the
/// next). Bytes beyond the `total` replies that were requested mean the
/// stream is out of step with our requests: an error, never kept for later.
pub fn read_replies<T: Transport + ?Sized>(
    transport: &mut T,
    decoder: &mut ReplyDecoder,
    replies: &mut Vec<Reply>,
    count: usize,
    total: usize,
) -> Result<(), ClientError> {
    while replies.len() < count {
        let mut outcome: Result<(), ClientError> = Ok(());
        let received = transport.receive(&mut |chunk| {
            // A transport may hand over a read in several pieces: after an
            // error the rest is not decoded.
            if outcome.is_err() {
                return;
            }
            let mut rest = chunk;
            while !rest.is_empty() {
                if replies.len() == total {
                    outcome = Err(ClientError::TrailingBytes { extra: rest.len() });
                    return;
                }
                match decoder.feed(rest) {
                    Ok(Some(done)) => {
                        replies.push(done.reply);
                        rest = &rest[done.used..];
                    }
                    Ok(None) => return,
                    Err(e) => {
                        outcome = Err(e.into());
                        return;
                    }
                }
            }
        })?;
        outcome?;
        if received == 0 && replies.len() < count {
            return Err(ClientError::Closed {
                mid_reply: !decoder.is_idle() || !replies.is_empty(),
            });
        }
    }
    Ok(())
}
