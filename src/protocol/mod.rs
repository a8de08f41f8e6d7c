//! The metrics protocol without any I/O, in the spirit of h11: requests are
//! encoded into bytes, replies are decoded incrementally from whatever bytes
//! arrive. Sockets live in `crate::client::transport`; this module never blocks.

mod argument;
mod command;
mod reply;
mod request;
mod value;

pub use argument::{validate_key, ArgumentError, ArgumentErrorKind, KeyUse};
pub use command::{
    encode_error, encode_ok, encode_point, encode_points_end, encode_points_start,
    encode_wrong_command, parse_command, push_i64, push_py_float, Command, CommandError,
    LineSplitter, LineTooLong, Selector, DEFAULT_MAX_LINE_BYTES, WRONG_COMMAND,
};
pub use reply::{DecodeError, Metrics, Point, Reply, ReplyDecoder, DEFAULT_MAX_REPLY_BYTES};
pub use request::{encode_get, encode_put, Expect};
pub use value::{MetricValue, PyFloat};
