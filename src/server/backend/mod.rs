//! The storage backends behind the commands: `embedded` (the storage
//! engine in this process) and `redis` (the gateway to Redis). A
//! connection (`connection`) reads and splits requests and writes replies;
//! which backend answers a batch of parsed requests, and how, is here. What
//! each command means is written once: `command` (put, get, query) and
//! `crate::query` (ranges, globs, rollups), which both backends use.

pub(super) mod embedded;
pub(super) mod redis;
