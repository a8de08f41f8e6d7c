//! The storage engine: chunk codec, block files, ... (rooms added as they land).

pub mod chunk;
