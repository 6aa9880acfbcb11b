//! The command line's JSON writers: strings, levels, states and proofs, and the replay summary.
//! Hand-written (the shapes are small and fixed), so that the binary needs no serialiser.

use std::fmt::Write as _;

use plumb::book::publish::Status;
use plumb::book::{Proof, Quote, Side, State};
use plumb::feed::exchange::Exchange as Venue;
use plumb::replay::{Counts, Replay};

/// A book's state as the JSON contract names it. On sequenced exchanges a book is `valid` or
/// `invalid` (a capture that starts mid-stream has invented nothing: no snapshot is invalid).
pub(crate) fn state_name<E: Venue>(s: State) -> &'static str {
    match s {
        State::Valid => "valid",
        State::Invalid(_) => "invalid",
        _ if !<E::Rule as plumb::book::Rule>::CHECKSUMMED => "invalid",
        State::Unverified => "unverified",
        State::AwaitingSnapshot => "awaiting_snapshot",
    }
}

/// A JSON string literal of `s`.
pub(crate) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Levels as `[["PRICE","QTY"],...]`, in the checksum's text form.
pub(crate) fn json_levels(out: &mut String, levels: impl IntoIterator<Item = Quote>) {
    out.push('[');
    for (i, q) in levels.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "[\"{}\",\"{}\"]", q.price, q.qty);
    }
    out.push(']');
}

pub(crate) fn summary_json<E: Venue>(r: &Replay<E>, c: &Counts) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"exchange\":\"{}\",\"frames\":{},\"book_messages\":{},\"checksums_verified\":{},\"checksum_mismatches\":{},\
         \"sequence_verified\":{},\"sequence_gaps\":{},\"unverified_updates\":{},\"ignored\":{},\"errors\":{},\"books\":[",
        E::NAME,
        c.frames,
        c.book_messages,
        c.checksums_verified,
        c.checksum_mismatches,
        c.sequence_verified,
        c.sequence_gaps,
        c.unverified_updates,
        c.ignored,
        c.errors
    );
    for (i, slot) in r.slots().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"exchange\":\"{}\",\"symbol\":", E::NAME);
        json_str(&mut out, &slot.symbol);
        let b = &slot.book;
        let _ = write!(out, ",\"state\":\"{}\",\"checksum\":", state_name::<E>(b.state()));
        match b.proof() {
            // An exchange that verifies some messages by checksum (OKX's legacy sessions): the
            // last one verified, as its unsigned 32 bits.
            Proof::Checksum(c) => {
                let _ = write!(out, "{c}");
            }
            _ if b.is_checksummed() => {
                let _ = write!(out, "{}", b.checksum());
            }
            _ => out.push_str("null"),
        }
        match b.sequence() {
            Some(s) => {
                let _ = write!(out, ",\"sequence\":{s}");
            }
            None => out.push_str(",\"sequence\":null"),
        }
        out.push_str(",\"bids\":");
        json_levels(&mut out, slot.book.quotes(Side::Bid).take(10));
        out.push_str(",\"asks\":");
        json_levels(&mut out, slot.book.quotes(Side::Ask).take(10));
        out.push('}');
    }
    out.push_str("]}\n");
    out
}

/// A published status as the JSON lines name it.
pub(crate) fn status_name(s: Status) -> &'static str {
    s.as_str()
}

/// `"checksum":N` (or null where the exchange has none) and `"sequence":N` (or null), as the
/// header's proof says.
pub(crate) fn proof_json(out: &mut String, checksum: u32, proof: Proof) {
    match proof {
        Proof::Sequence(id) => {
            let _ = write!(out, ",\"checksum\":null,\"sequence\":{id}");
        }
        Proof::Snapshot => out.push_str(",\"checksum\":null,\"sequence\":null"),
        Proof::Checksum(_) | Proof::None if checksum != 0 || matches!(proof, Proof::Checksum(_)) => {
            let _ = write!(out, ",\"checksum\":{checksum},\"sequence\":null");
        }
        _ => out.push_str(",\"checksum\":null,\"sequence\":null"),
    }
}
