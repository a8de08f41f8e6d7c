//! The requests of a pipelined batch as the session sends them: all
//! encoded beforehand (`Encoded`), or encoded chunk by chunk while the
//! server answers the chunks before (`put_many`'s points, validated first,
//! so a batch with a bad point still sends nothing).

/// A batch of requests the session may ask to have encoded piece by piece.
pub trait Requests {
    /// How many requests the batch holds.
    fn total(&self) -> usize;
    /// The requests encoded so far, in one buffer, and the end offset of
    /// each; on return at least the bytes up to `upto` are encoded, or
    /// every request.
    fn encoded(&mut self, upto: usize) -> (&[u8], &[usize]);
}

/// Requests all encoded beforehand.
pub struct Encoded<'a> {
    pub requests: &'a [u8],
    pub ends: &'a [usize],
}

impl Requests for Encoded<'_> {
    fn total(&self) -> usize {
        self.ends.len()
    }

    fn encoded(&mut self, _upto: usize) -> (&[u8], &[usize]) {
        (self.requests, self.ends)
    }
}
