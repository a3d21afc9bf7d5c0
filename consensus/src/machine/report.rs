//! Diagnostics for an operator: the stall report.
use super::*;

impl Peer {
    /// One line per accepted order of another peer, for an operator looking at a stall:
    /// its points, its stake, and where its blocks first differ from the own order
    /// ("agrees", "differs at N", or "cannot line up").
    #[must_use]
    pub fn stall_report(&self) -> String {
        use core::fmt::Write as _;
        let own = OwnView {
            checkpoint: self.checkpoint,
            ids: &self.ids,
            chains: &self.chains,
            proposal: self.proposal,
            protect: 0,
            consensus: self.consensus,
            finality: self.finality,
            catch_up: self.catch_up.as_ref(),
        };
        let mut s = format!(
            "own: checkpoint {} len {} points {}/{}/{}",
            self.checkpoint.position,
            own.len(),
            self.proposal,
            self.consensus,
            self.finality
        );
        if let Some(c) = &self.catch_up {
            let missing = c
                .ids
                .iter()
                .filter(|id| !self.blocks.contains_key(*id))
                .count();
            let _ = write!(
                s,
                "; catch-up run from {} of {} ids, {missing} blocks not held",
                c.start.position,
                c.ids.len()
            );
        }
        for so in self.others.values() {
            let o = &so.order;
            let k = o.peer.as_bytes();
            let _ = write!(
                s,
                "; {:02x}{:02x}{:02x}{:02x} stake {} checkpoint {} len {} points {}/{}/{} ts {} ",
                k[0],
                k[1],
                k[2],
                k[3],
                self.raw_stake(&o.peer),
                o.checkpoint.position,
                o.checkpoint.position + o.blocks.len() as u64,
                o.proposal,
                o.consensus,
                o.finality,
                o.timestamp.0
            );
            let _ = match crate::merge::divergence(&own, o) {
                crate::merge::Divergence::Agrees => write!(s, "agrees"),
                crate::merge::Divergence::DiffersAt(p) => write!(s, "differs at {p}"),
                crate::merge::Divergence::Unlinkable => write!(s, "cannot line up"),
            };
        }
        s
    }
}
