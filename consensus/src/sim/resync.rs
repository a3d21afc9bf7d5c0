//! Resync in the simulation, done the way the networked peer does it (docs/consensus.md
//! §7): on [`Action::Resync`] the host asks a reachable member for a certificate
//! ([`Peer::certificate`]), has its signer accept it (`Certify`), fetches that member's
//! finalized state at `S >= P`, has the signer commit to it (an own order with checkpoint
//! `S`, no blocks, and a bridge `P -> S`, as `cvx-peer`'s join does) and restores the
//! machine there. Byzantine members answer with forged certificates, which the signer
//! must refuse; the host then tries another member. Also here: the check that no honest
//! signer ever signs orders finalizing conflicting chains.

use cvx_protocol::certificate::{
    CertKind, Certificate, StakeEntry, StakeTable, Vote, supermajority,
};
use cvx_protocol::hash::chain_step;

use super::*;
use crate::ledger::State;

/// One step of a member's resync, queued at the simulated time its input arrives.
pub(crate) enum Step {
    /// Ask the next member for a certificate.
    Ask { node: usize, life: u64 },
    /// The certificate arrived: present it to the signer.
    Certify {
        node: usize,
        life: u64,
        source: usize,
        req: Box<CertRequest>,
        /// The kind of forgery, when a byzantine member made it.
        forged: Option<&'static str>,
    },
    /// The state arrived: commit the signer to it and restore the machine.
    Join {
        node: usize,
        life: u64,
        state: Box<Synced>,
    },
}

/// A finalized state fetched for a resync.
pub(crate) struct Synced {
    ledger: State,
    at: Checkpoint,
    bridge: Vec<Hash>,
}

/// Certificates kept for byzantine replays.
const KEEP_CERTS: usize = 8;

impl Sim {
    fn rtt(&mut self) -> u64 {
        let (lo, hi) = self.faults.delay_ms;
        self.rng.range(lo, hi) + self.rng.range(lo, hi)
    }

    fn resyncing(&mut self, node: usize, life: u64) -> Option<&mut Vec<usize>> {
        let alive = self.running(node);
        match &mut self.nodes[node] {
            Node::Honest(h) if alive && h.life == life => h.resync.as_mut(),
            _ => None,
        }
    }

    /// The machine asked for a resync: start one unless one is running.
    pub(super) fn start_resync(&mut self, node: usize) {
        let Node::Honest(h) = &mut self.nodes[node] else {
            return;
        };
        if h.resync.is_some() {
            return;
        }
        h.resync = Some(Vec::new());
        let life = h.life;
        let at = self.now + 1;
        self.push(at, Ev::Resync(Step::Ask { node, life }));
    }

    fn abort_resync(&mut self, node: usize) {
        if let Node::Honest(h) = &mut self.nodes[node] {
            h.resync = None;
        }
    }

    pub(super) fn resync_step(&mut self, step: Step) -> Result<(), Failure> {
        match step {
            Step::Ask { node, life } => {
                self.ask(node, life);
                Ok(())
            }
            Step::Certify {
                node,
                life,
                source,
                req,
                forged,
            } => self.certify(node, life, source, &req, forged),
            Step::Join { node, life, state } => self.join(node, life, *state),
        }
    }

    /// Ask a reachable member not tried yet (a byzantine one first 70% of the time when
    /// there are some): its answer arrives one round trip later.
    fn ask(&mut self, node: usize, life: u64) {
        let Some(tried) = self.resyncing(node, life).map(|t| t.clone()) else {
            return;
        };
        let reachable =
            |j: usize| j != node && self.groups[j] == self.groups[node] && !tried.contains(&j);
        let honest: Vec<usize> = (0..self.nodes.len())
            .filter(|j| reachable(*j) && self.running(*j))
            .collect();
        let byz: Vec<usize> = (0..self.nodes.len())
            .filter(|j| reachable(*j) && matches!(self.nodes[*j], Node::Byz(_)))
            .collect();
        let source = if !byz.is_empty() && (honest.is_empty() || self.rng.chance(700)) {
            byz[self.rng.index(byz.len())]
        } else if !honest.is_empty() {
            honest[self.rng.index(honest.len())]
        } else {
            // Nobody left to ask: the machine asks again after RESYNC_RETRY_MS.
            return self.abort_resync(node);
        };
        if let Some(t) = self.resyncing(node, life) {
            t.push(source);
        }
        let at = self.now + self.rtt();
        let (req, forged) = match &self.nodes[source] {
            Node::Byz(_) => match self.forge(source, node) {
                Some((req, kind)) => (req, Some(kind)),
                None => {
                    self.push(at, Ev::Resync(Step::Ask { node, life }));
                    return;
                }
            },
            Node::Honest(h) => match h.peer.as_ref().and_then(Peer::certificate) {
                Some(req) => {
                    if self.old_certs.len() >= KEEP_CERTS {
                        self.old_certs.remove(KEEP_CERTS / 2);
                    }
                    self.old_certs.push(req.clone());
                    (req, None)
                }
                None => {
                    self.push(at, Ev::Resync(Step::Ask { node, life }));
                    return;
                }
            },
        };
        let req = Box::new(req);
        self.push(
            at,
            Ev::Resync(Step::Certify {
                node,
                life,
                source,
                req,
                forged,
            }),
        );
    }

    fn certify(
        &mut self,
        node: usize,
        life: u64,
        source: usize,
        req: &CertRequest,
        forged: Option<&'static str>,
    ) -> Result<(), Failure> {
        if self.resyncing(node, life).is_none() {
            return Ok(());
        }
        let now = Timestamp(self.now);
        let Node::Honest(h) = &mut self.nodes[node] else {
            return Ok(());
        };
        // As the networked peer (cvx-peer's join, `certify`): a certificate at or below
        // the own lock on the same chain moves nothing, so it never goes to the signer and
        // the next source is asked. Without this a member took a certificate at position
        // 0 from another member that was as far behind, and "resynced" to its state
        // (all-long seed 144).
        let anchor = req.certificate.anchor;
        let lock = h.peer.as_ref().map(|p| {
            let c = p.points().1;
            (c, p.chain_value_at(c))
        });
        if let Some((c, chain)) = lock
            && (anchor.position < c || (anchor.position == c && chain == Some(anchor.chain)))
        {
            let seen = if forged.is_some() {
                &mut self.report.forged_refused
            } else {
                &mut self.report.honest_refused
            };
            *seen.entry("PEER_NOT_ABOVE_LOCK").or_default() += 1;
            self.push(self.now + 1, Ev::Resync(Step::Ask { node, life }));
            return Ok(());
        }
        let result = h.signer.certify(req, now);
        let next = self.now + 1;
        match (result, forged) {
            (Ok(()), Some(kind)) => {
                return Err(self.fail(&format!(
                    "the signer of member {node} accepted a forged certificate ({kind}) from member {source}"
                )));
            }
            (Err(r), Some(_)) => {
                *self.report.forged_refused.entry(r.code.name()).or_default() += 1;
                self.push(next, Ev::Resync(Step::Ask { node, life }));
            }
            (Err(r), None) => {
                *self.report.honest_refused.entry(r.code.name()).or_default() += 1;
                self.push(next, Ev::Resync(Step::Ask { node, life }));
            }
            (Ok(()), None) => {
                // The state: the source's finalized ledger now (at or past P), and the ids
                // from P to it, fetched in a couple of round trips.
                let p = req.certificate.anchor.position;
                let state = match &self.nodes[source] {
                    Node::Honest(s) if self.running(source) => s.peer.as_ref().and_then(|sp| {
                        let ledger = sp.ledger().clone();
                        let position = ledger.height();
                        let chain = sp.chain_value_at(position)?;
                        let bridge = sp.ids_between(p, position)?;
                        Some(Synced {
                            ledger,
                            at: Checkpoint { position, chain },
                            bridge,
                        })
                    }),
                    _ => None,
                };
                match state {
                    Some(state) => {
                        let at = self.now + 2 * self.rtt();
                        let state = Box::new(state);
                        self.push(at, Ev::Resync(Step::Join { node, life, state }));
                    }
                    None => self.push(next, Ev::Resync(Step::Ask { node, life })),
                }
            }
        }
        Ok(())
    }

    /// Commit the signer to the fetched state (an own order with checkpoint `S`, no
    /// blocks, bridged from the certificate's anchor) and restore the machine there.
    fn join(&mut self, node: usize, life: u64, state: Synced) -> Result<(), Failure> {
        if self.resyncing(node, life).is_none() {
            return Ok(());
        }
        self.abort_resync(node);
        let now = Timestamp(self.now);
        let network = self.network;
        let min_stake = self.genesis.params.min_stake;
        let mut cfg = Config::new(self.genesis.clone(), self.genesis.peers[node].key);
        (self.cfg_tweak)(&mut cfg);
        let Node::Honest(h) = &mut self.nodes[node] else {
            return Ok(());
        };
        let Some(old) = h.peer.as_ref() else {
            return Ok(());
        };
        let s = state.at.position;
        let order = Order {
            peer: cfg.key,
            timestamp: now.max(old.order().map_or(now, |o| o.order.timestamp.plus_ms(1))),
            checkpoint: state.at,
            blocks: BoundedVec::new(),
            proposal: s,
            consensus: s,
            finality: s,
            stake_root: crate::stake_table(&state.ledger, min_stake).root(),
        };
        let request = Request {
            network,
            body: SignRequest::Order {
                order: order.clone(),
                bridge: BoundedVec::try_from_vec(state.bridge)
                    .unwrap_or_else(|_| BoundedVec::new()),
            },
        };
        let signature = match h.signer.sign(&request, now) {
            Ok(sig) => sig,
            Err(r) => {
                // E.g. the machine caught up by itself meanwhile (FINALITY_REGRESSED).
                *self.report.honest_refused.entry(r.code.name()).or_default() += 1;
                return Ok(());
            }
        };
        let snap = Snapshot {
            order: Some(SignedOrder { order, signature }),
            blocks: Vec::new(),
            history: Vec::new(),
            ledger: state.ledger,
            last_block_ts: old.snapshot().last_block_ts,
            proposal_since: now,
        };
        let had = h.finality;
        h.peer = Some(Peer::restore(cfg, snap.clone()));
        h.persisted = Some(snap);
        h.life += 1;
        h.finality = s;
        self.report.resyncs += 1;
        if let Some(so) = self.own_order(node) {
            self.claim(node, &so)?;
        }
        if s < had {
            return Err(self.fail(&format!(
                "member {node} resynced to {s}, below the finality {had} it had"
            )));
        }
        self.feed(node, Event::Tick)
    }

    fn own_order(&self, node: usize) -> Option<Order> {
        match &self.nodes[node] {
            Node::Honest(h) => h.peer.as_ref()?.order().map(|so| so.order.clone()),
            Node::Byz(_) => None,
        }
    }

    /// A byzantine member's answer: a forged certificate of a random kind.
    fn forge(&mut self, byz: usize, node: usize) -> Option<(CertRequest, &'static str)> {
        let base = (0..self.nodes.len())
            .filter(|j| *j != node && self.running(*j))
            .find_map(|j| match &self.nodes[j] {
                Node::Honest(h) => h.peer.as_ref().and_then(Peer::certificate),
                Node::Byz(_) => None,
            });
        let finality = match &self.nodes[node] {
            Node::Honest(h) => h.finality,
            Node::Byz(_) => 0,
        };
        let replay = self
            .old_certs
            .iter()
            .find(|c| c.certificate.anchor.position < finality)
            .cloned();
        let kind = self.rng.range(0, 6);
        let (Some(mut req), true) = (base, kind < 5) else {
            if kind == 5
                && let Some(old) = replay
            {
                return Some((old, "replayed certificate below the lock"));
            }
            return self.own_table_forgery(byz, finality);
        };
        let mut votes = req.certificate.votes.clone().into_vec();
        let kind = match kind {
            0 => {
                let i = self.rng.index(votes.len());
                votes[i].signature.0[9] ^= 0x10;
                "bad signature"
            }
            1 => {
                let outsider = self.genesis.accounts.first()?.key;
                let p = req.certificate.anchor.position;
                votes.retain(|v| v.peer != outsider);
                votes.push(Vote {
                    peer: outsider,
                    timestamp: Timestamp(self.now),
                    body_hash: Hash(self.rng.bytes32()),
                    proposal: p,
                    consensus: p,
                    finality: p,
                    signature: Signature([7; 64]),
                });
                votes.sort_by_key(|v| v.peer);
                "key outside the table"
            }
            2 => {
                req.certificate.network = NetworkId(Hash(self.rng.bytes32()));
                "another network"
            }
            3 => {
                let table = crate::stake_table(
                    &State::from_genesis(&self.genesis),
                    self.genesis.params.min_stake,
                );
                let total = table.total();
                let stake = |vs: &[Vote]| -> u128 {
                    vs.iter()
                        .filter_map(|v| table.stake_of(&v.peer))
                        .map(u128::from)
                        .sum()
                };
                while supermajority(stake(&votes), total) {
                    votes.pop();
                }
                "weak quorum"
            }
            _ => return self.own_table_forgery(byz, finality),
        };
        req.certificate.votes =
            BoundedVec::try_from_vec(votes).unwrap_or_else(|_| BoundedVec::new());
        Some((req, kind))
    }

    /// A certificate for a made-up chain far ahead, signed by the byzantine member alone
    /// over a table where it holds all the stake (a stale or invented table: the trusted
    /// table's quorum never vouched for it), sent with or without that table.
    fn own_table_forgery(
        &mut self,
        byz: usize,
        finality: u64,
    ) -> Option<(CertRequest, &'static str)> {
        let Node::Byz(b) = &self.nodes[byz] else {
            return None;
        };
        let key = b.key.public();
        let table = StakeTable {
            entries: BoundedVec::try_from_vec(vec![StakeEntry {
                key,
                stake: u64::try_from(self.stakes[byz]).unwrap_or(1),
            }])
            .unwrap_or_else(|_| BoundedVec::new()),
        };
        let p = finality + 2 * cvx_protocol::policy::MAX_BRIDGE as u64;
        let anchor = Checkpoint {
            position: p,
            chain: Hash(self.rng.bytes32()),
        };
        let header = OrderHeader {
            peer: key,
            timestamp: Timestamp(self.now),
            body_hash: Hash(self.rng.bytes32()),
            proposal: p,
            consensus: p,
            finality: p,
            consensus_chain: anchor.chain,
            stake_root: table.root(),
        };
        let Node::Byz(b) = &self.nodes[byz] else {
            return None;
        };
        let signature = b.key.sign_header(&self.network, &header);
        let certificate = Certificate {
            network: self.network,
            kind: CertKind::Finality,
            anchor,
            stake_root: table.root(),
            ids: BoundedVec::new(),
            votes: BoundedVec::try_from_vec(vec![Certificate::vote_of(&header, signature)])
                .unwrap_or_else(|_| BoundedVec::new()),
        };
        if self.rng.chance(500) {
            let req = CertRequest {
                certificate,
                table: Some(table),
            };
            Some((req, "a table the trusted one never vouched for"))
        } else {
            let req = CertRequest {
                certificate,
                table: None,
            };
            Some((req, "another table, not sent"))
        }
    }

    /// An honest signer signed `order`: its finality claim must agree with everything
    /// finalized and with every other honest signer's claim.
    pub(super) fn claim(&mut self, node: usize, order: &Order) -> Result<(), Failure> {
        let f = order.finality;
        let Some(chain) = order.chain_at(f) else {
            return Ok(());
        };
        let known = usize::try_from(f)
            .ok()
            .and_then(|i| self.chains.get(i))
            .copied();
        let held = known.or_else(|| self.claims.get(&f).copied());
        match held {
            Some(c) if c != chain => Err(self.fail(&format!(
                "the signer of member {node} signed an order finalizing position {f} on a chain that conflicts \
                 with {} (two conflicting signatures)",
                if known.is_some() { "the finalized one" } else { "another honest signer's" }
            ))),
            Some(_) => Ok(()),
            None => {
                self.claims.insert(f, chain);
                Ok(())
            }
        }
    }

    /// The next finalized block: extend the finalized chain, check the claims there.
    pub(super) fn finalized_chain(&mut self, id: Hash) -> Result<(), Failure> {
        let last = self.chains.last().copied().unwrap_or(Hash::ZERO);
        let chain = chain_step(&last, &id);
        self.chains.push(chain);
        let pos = self.chains.len() as u64 - 1;
        match self.claims.remove(&pos) {
            Some(c) if c != chain => Err(self.fail(&format!(
                "an honest signer signed an order finalizing position {pos} on a chain the network did not finalize"
            ))),
            _ => Ok(()),
        }
    }

    /// The liveness failure, naming conflicting honest locks when there are some (the
    /// split that lock certificates do not resolve, docs/consensus.md §7.6).
    pub(super) fn not_recovered(&self, healed: u64) -> Failure {
        let locks: Vec<(usize, u64, Option<Hash>, &Peer)> = (0..self.nodes.len())
            .filter(|i| self.running(*i))
            .filter_map(|i| match &self.nodes[i] {
                Node::Honest(h) => h.peer.as_ref().map(|p| {
                    let c = p.points().1;
                    (i, c, p.chain_value_at(c), p)
                }),
                Node::Byz(_) => None,
            })
            .collect();
        let mut conflicts = Vec::new();
        for (a, ca, chain_a, _) in &locks {
            for (b, cb, _, pb) in &locks {
                if a == b || ca > cb {
                    continue;
                }
                if let (Some(x), Some(y)) = (chain_a, pb.chain_value_at(*ca))
                    && *x != y
                {
                    conflicts.push(format!("{a}@{ca} vs {b}@{cb}"));
                }
            }
        }
        let why = if conflicts.is_empty() {
            String::new()
        } else {
            format!(" [CONFLICTING LOCKS: {}]", conflicts.join(", "))
        };
        let bound = self.bound;
        self.fail(&format!(
            "finality did not advance within {bound} ms of the heal at t={}ms{why}",
            healed - self.t0
        ))
    }
}
