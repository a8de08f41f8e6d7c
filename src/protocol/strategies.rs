//! proptest strategies shared by the protocol's tests: keys a put may
//! carry, and finite floats.

use proptest::prelude::*;

use super::{validate_key, KeyUse};

/// Keys of plain ASCII and of any printable Unicode that `put` accepts.
pub(crate) fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._:-]{1,12}",
        "\\PC{1,6}".prop_filter("valid key", |k| validate_key(k, KeyUse::Put).is_ok()),
    ]
}

/// Any finite `f64`.
pub(crate) fn finite() -> impl Strategy<Value = f64> {
    proptest::num::f64::ANY.prop_filter("finite", |x| x.is_finite())
}
