//! What the loopback tests of the sequenced exchanges share: a feed against the simulated
//! exchange, and the waits and checks every test runs on its events. Each test crate uses part of
//! it.
#![allow(dead_code, reason = "shared by several test crates, each using part of it")]

use std::collections::HashSet;
use std::time::Duration;

use plumb_book::publish::Status;
use plumb_book::{Proof, Verdict};
use plumb_feed::{Event, Events, Feed, ResyncReason};
use plumb_sim::Exchange;

/// A simulated exchange, a feed of it, and the feed's events.
pub(crate) struct Rig {
    pub(crate) exchange: Exchange,
    pub(crate) feed: Feed,
    pub(crate) events: Events,
    /// The exchange may prove a book by a checksum too (OKX's legacy one).
    checksums: bool,
}

impl Rig {
    /// Takes the feed's events; `checksums` when a valid book may rest on a checksum.
    pub(crate) fn new(exchange: Exchange, mut feed: Feed, checksums: bool) -> Self {
        let events = feed.events().unwrap();
        Self { exchange, feed, events, checksums }
    }

    /// The events until `done` says so, checked; fails after `limit`.
    pub(crate) async fn until(&mut self, limit: Duration, mut done: impl FnMut(&[Event]) -> bool) -> Vec<Event> {
        let mut new = Vec::new();
        let checksums = self.checksums;
        let res = tokio::time::timeout(limit, async {
            loop {
                let e = self.events.recv().await.expect("feed stopped");
                check_event(checksums, &e);
                new.push(e);
                if done(&new) {
                    return;
                }
            }
        })
        .await;
        let odd: Vec<String> = new
            .iter()
            .filter(|e| !matches!(e, Event::Book(b) if b.status == Status::Valid))
            .map(|e| format!("{e:?}"))
            .take(40)
            .collect();
        assert!(res.is_ok(), "timed out; events: {odd:#?}");
        new
    }

    /// Waits until every symbol's book has been proved since this call.
    pub(crate) async fn all_valid(&mut self, symbols: &[&str]) -> Vec<Event> {
        let want: HashSet<&str> = symbols.iter().copied().collect();
        let events = self
            .until(Duration::from_secs(30), |ev| {
                let got: HashSet<&str> = ev
                    .iter()
                    .filter_map(|e| match e {
                        Event::Book(b) if b.status == Status::Valid => Some(&*b.symbol),
                        _ => None,
                    })
                    .collect();
                want.iter().all(|s| got.contains(s))
            })
            .await;
        for s in symbols {
            let top = self.feed.reader(s).unwrap().top();
            assert_eq!(top.header.status, Status::Valid, "{s}");
            let proof = top.header.proof;
            assert!(
                matches!(proof, Proof::Sequence(_)) || (self.checksums && matches!(proof, Proof::Checksum(_))),
                "{s}: {proof:?}"
            );
            assert!(top.bid.unwrap().price.to_decimal() < top.ask.unwrap().price.to_decimal(), "{s}");
        }
        events
    }

    /// The events of the next `d`, checked.
    pub(crate) async fn run_for(&mut self, d: Duration) -> Vec<Event> {
        let mut new = Vec::new();
        let checksums = self.checksums;
        let _ = tokio::time::timeout(d, async {
            while let Some(e) = self.events.recv().await {
                check_event(checksums, &e);
                new.push(e);
            }
        })
        .await;
        new
    }

    /// The requests of one method naming a symbol, as the exchange logged them.
    pub(crate) fn requests(&self, op: &str, symbol: &str) -> usize {
        self.exchange.requests().iter().filter(|r| r.method == op && r.symbols.iter().any(|s| s == symbol)).count()
    }
}

/// The invariant every test checks on every event: a book is valid only right after a message
/// applied in sequence (or a stale one that changed nothing since), or, where the exchange has one
/// (`checksums`), a matching checksum.
fn check_event(checksums: bool, e: &Event) {
    if let Event::Book(b) = e
        && b.status == Status::Valid
    {
        let proved = match b.outcome {
            Verdict::InSequence(id) | Verdict::Stale { last: id, .. } => Some(id) == b.sequence,
            Verdict::Verified(_) => checksums,
            _ => false,
        };
        assert!(proved, "valid without a proof: {b:?}");
    }
}

/// The resyncs started among `events`: symbol and reason.
pub(crate) fn resyncs(events: &[Event]) -> Vec<(String, ResyncReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ResyncStarted { symbol, reason } => Some((symbol.to_string(), *reason)),
            _ => None,
        })
        .collect()
}
