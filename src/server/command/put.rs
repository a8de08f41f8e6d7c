//! `put <key> <value> <timestamp>`: what storing one point means. The
//! protocol's parser has validated the fields; here a put is refused when
//! the journal cannot take it (the file cannot be written) or when memory is
//! full and the point would need more; otherwise its record is appended to
//! the journal (when there is one) and the point stored, or, under
//! `fsync=always`, held back until its record is fsynced. Before any of
//! that, a key the head does not hold is looked up among the keys the
//! blocks number, so that it keeps its series id.

use std::borrow::Cow;

use crate::protocol::Put;
use crate::server::engine::MAX_KEY_BYTES;
use crate::server::shared::State;
use crate::server::store::Store;
use crate::server::OUT_OF_MEMORY;

/// What became of a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::server) enum Outcome<'s> {
    /// Stored (and journaled, if there is a journal): answer `ok`.
    Stored,
    /// Journaled and held back until its record is fsynced: answer `ok`
    /// once the journal is settled past `settled_at`, or the error it was
    /// rejected with.
    Deferred { settled_at: u64 },
    /// Not taken; the text of the error reply.
    Refused(Cow<'s, str>),
}

/// Applies `put` to the state under the store's lock. `defer` is true under
/// `fsync=always`. Sets `wake` when the journal's writer thread must be woken
/// (call `Shared::wake_journal` after releasing the lock).
pub(in crate::server) fn apply<'s>(
    state: &'s mut State,
    put: &Put<&str>,
    max_memory: Option<usize>,
    defer: bool,
    wake: &mut bool,
) -> Outcome<'s> {
    if refusal(state, put.key, put.timestamp, max_memory).is_some() {
        // Asked again so the reason borrows the state for the caller (the
        // borrow checker cannot return the first borrow from this branch).
        let reason = refusal(state, put.key, put.timestamp, max_memory);
        return Outcome::Refused(reason.unwrap_or(Cow::Borrowed(OUT_OF_MEMORY)));
    }
    let State {
        store,
        journal,
        sealed,
    } = state;
    if let Some(sealed) = sealed.as_ref() {
        if let Err(e) = sealed.admit(store, put.key) {
            return Outcome::Refused(Cow::Owned(format!(
                "cannot find the key among the stored ones: {e}"
            )));
        }
    }
    let Some(journal) = journal.as_mut() else {
        store_point(store, put.key, put.timestamp, put.value);
        return Outcome::Stored;
    };
    // The record names the key by its series id: the key is held (with no
    // points yet, when new) before the point is.
    let slot = store.slot_for(put.key);
    let id = store.id(slot).unwrap_or_default();
    *wake |= journal.append_put(id, put.key, put.value, put.timestamp);
    if defer {
        journal.defer(put.key, put.timestamp, put.value);
        Outcome::Deferred {
            settled_at: journal.appended(),
        }
    } else {
        store.put_at(slot, put.timestamp, put.value);
        Outcome::Stored
    }
}

/// Why a put of `key` at `timestamp` must be refused now, or `None` when it
/// can be taken: the one place every refusal of a put is decided. While the
/// journal cannot be written every put is refused with the OS's reason;
/// past `max_memory`, only a put that replaces a value (and so needs no
/// memory) is taken. A key longer than the data file keeps is refused
/// while there is one (only possible with the line limit raised above its
/// default).
pub(in crate::server) fn refusal<'s>(
    state: &'s State,
    key: &str,
    timestamp: i64,
    max_memory: Option<usize>,
) -> Option<Cow<'s, str>> {
    if state.journal.is_some() && key.len() > MAX_KEY_BYTES {
        return Some(Cow::Owned(format!(
            "a key of {} bytes is longer than the {MAX_KEY_BYTES} bytes the data file keeps",
            key.len()
        )));
    }
    let full = max_memory.is_some_and(|limit| {
        state.store.memory() >= limit && !state.store.contains(key, timestamp)
    });
    if full {
        return Some(Cow::Borrowed(OUT_OF_MEMORY));
    }
    state
        .journal
        .as_ref()
        .and_then(|journal| journal.refusal())
        .map(Cow::Borrowed)
}

/// Stores a put's point by its key: the last step of a put without a
/// journal, of one the journal releases after its fsync, and of a text
/// record replayed from the data file (a journaled put, and a frame's
/// record, store through the slot their key was given: `Store::put_at`).
/// A point at a timestamp the series already has replaces the value there.
#[inline]
pub(in crate::server) fn store_point(store: &mut Store, key: &str, timestamp: i64, value: f64) {
    store.put(key, timestamp, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::journal::Journal;

    fn put(key: &str, value: f64, timestamp: i64) -> Put<&str> {
        Put {
            key,
            value,
            value_text: "1",
            timestamp,
        }
    }

    #[test]
    fn without_a_journal_a_put_is_stored() {
        let mut state = State {
            store: Store::new(),
            journal: None,
            sealed: None,
        };
        let mut wake = false;
        let outcome = apply(&mut state, &put("k", 1.0, 5), None, false, &mut wake);
        assert_eq!(outcome, Outcome::Stored);
        assert!(!wake);
        assert_eq!((state.store.points(), state.store.keys()), (1, 1));
    }

    #[test]
    fn with_a_journal_a_put_is_journaled_then_stored_or_deferred() {
        let mut state = State {
            store: Store::new(),
            journal: Some(Journal::new(0)),
            sealed: None,
        };
        let mut wake = false;
        let outcome = apply(&mut state, &put("k", 1.0, 5), None, false, &mut wake);
        assert_eq!(outcome, Outcome::Stored);
        assert_eq!(state.store.points(), 1);
        let logged = state.journal.as_ref().unwrap().appended();
        assert!(logged > 0);

        let outcome = apply(&mut state, &put("k", 1.0, 6), None, true, &mut wake);
        let Outcome::Deferred { settled_at } = outcome else {
            panic!("{outcome:?}")
        };
        let journal = state.journal.as_ref().unwrap();
        assert!(journal.appended() > logged);
        assert_eq!(settled_at, journal.appended());
        assert_eq!(state.store.points(), 1, "held back until fsynced");
    }

    #[test]
    fn with_a_journal_a_key_longer_than_the_data_file_keeps_is_refused() {
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let mut state = State {
            store: Store::new(),
            journal: Some(Journal::new(0)),
            sealed: None,
        };
        let mut wake = false;
        let outcome = apply(&mut state, &put(&long, 1.0, 5), None, false, &mut wake);
        let Outcome::Refused(reason) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(reason.contains("longer than"), "{reason}");
        assert_eq!(state.journal.as_ref().unwrap().appended(), 0);
        assert_eq!(state.store.keys(), 0, "nothing journaled, nothing stored");
        let longest = &long[..MAX_KEY_BYTES];
        let outcome = apply(&mut state, &put(longest, 1.0, 5), None, false, &mut wake);
        assert_eq!(outcome, Outcome::Stored);

        state.journal = None;
        let outcome = apply(&mut state, &put(&long, 1.0, 5), None, false, &mut wake);
        assert_eq!(
            outcome,
            Outcome::Stored,
            "memory only: any key the parser takes"
        );
    }

    #[test]
    fn past_max_memory_only_replacing_puts_are_taken() {
        let mut state = State {
            store: Store::new(),
            journal: None,
            sealed: None,
        };
        let mut wake = false;
        apply(&mut state, &put("k", 1.0, 5), None, false, &mut wake);
        let limit = Some(state.store.memory());
        let outcome = apply(&mut state, &put("k", 2.0, 6), limit, false, &mut wake);
        assert_eq!(outcome, Outcome::Refused(OUT_OF_MEMORY.into()));
        let outcome = apply(&mut state, &put("k", 2.0, 5), limit, false, &mut wake);
        assert_eq!(outcome, Outcome::Stored);
        assert_eq!(state.store.points(), 1);
    }
}
