//! The storage engine: the chunk codec (`chunk`), sealed blocks of points,
//! one time partition each (`block`), and the keys file that numbers the
//! series (`keys`). Modelled on Prometheus' TSDB blocks and VictoriaMetrics'
//! parts: data is written once, in files found by name, checked by CRC-32C
//! wherever read.

pub mod block;
pub mod chunk;
pub mod keys;
