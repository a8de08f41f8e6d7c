//! The metrics protocol without any I/O, in the spirit of h11: requests are
//! encoded into bytes and parsed from them, replies are encoded and decoded
//! incrementally from whatever bytes arrive. Sockets live in
//! `crate::client::transport` and `crate::server`; this module never blocks.
//!
//! One concept per file:
//! - `framing`: request lines and their length limit;
//! - `request`: encoding and parsing `put` and `get`;
//! - `query`: the query form of `get` (ranges, globs, rollups);
//! - `reply`: the reply shapes and their encoders;
//! - `columns`: the binary columns frame of `format=columns` and its writer;
//! - `decoder`: incremental reply decoding; `columns_decoder`: the
//!   columns frame's; `grouping`: points by key;
//! - `point`: the one writer of `<key> <value> <timestamp>` text;
//! - `number`: float and integer text, written as Python does, read exactly;
//!   `decimal_text`: the same text of a float known as a short decimal;
//! - `value`: user values (int or float); `argument`: key validation;
//! - `excerpt`: bounded quotes of received bytes for error messages;
//! - `address`: the one `host:port` writer (IPv6 in brackets).

mod address;
mod argument;
mod columns;
mod columns_decoder;
mod decimal_text;
mod decoder;
mod excerpt;
mod framing;
mod grouping;
mod number;
mod point;
mod query;
mod reply;
mod request;
#[cfg(test)]
mod strategies;
mod value;

pub use address::host_port;
pub use argument::{validate_key, ArgumentError, ArgumentErrorKind, KeyUse};
pub use columns::{
    encode_columns_end, encode_columns_start, push_columns, Columns, Series, COLUMNS_MAGIC,
    MAX_BLOCK_POINTS, MAX_COLUMNS_KEY_BYTES,
};
pub use decimal_text::DecimalText;
pub use decoder::{DecodeError, Decoded, ReplyDecoder, DEFAULT_MAX_REPLY_BYTES};
pub use excerpt::excerpt;
pub use framing::{LineSplitter, LineTooLong, DEFAULT_MAX_LINE_BYTES};
pub use grouping::{Metrics, Point};
pub use number::{parse_float, parse_int, push_i64, push_py_float, PyFloat};
pub use point::{push_point, push_put_line, PointValue};
pub use query::{encode_query, Match, Query, QueryError};
pub use reply::{
    encode_error, encode_get_reply_end, encode_get_reply_start, encode_ok, encode_points_end,
    encode_points_start, encode_wrong_command, push_series, Reply, ReplyFormat, WRONG_COMMAND,
};
pub use request::{
    encode_get, encode_put, parse_command, validate_put, Command, CommandError, Expect, Put,
    Selector,
};
pub use value::MetricValue;
