//! Fuzz targets: one function per kind of untrusted bytes a cvx process decodes.
//!
//! Each target must never panic on any input, except through the assertions below, which
//! state the format's contract: a value that decodes re-encodes to exactly the input (one
//! encoding per value), and a request the policy allows is allowed again, unchanged, as
//! an identical repeat. A panic here is a bug in the format or the policy.
//!
//! * `protocol/fuzz/` wires every target to libFuzzer (`cargo fuzz run <name>`, which needs
//!   a nightly toolchain); the crate itself builds on stable, and `.ci/run` builds it.
//! * The corpora in `protocol/fuzz/corpus/<name>/` replay as a test on every CI run
//!   (`protocol/tests/fuzz_corpus.rs`); `CVX_BLESS=1` regenerates their seeds from the
//!   property-test strategies.

use crate::encoding::Canonical;
use crate::policy::{Decision, Policy, PolicyParams, Request, SignRequest, Watermark};
use crate::primitives::Timestamp;

/// A named fuzz target.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The name: the libFuzzer binary and the corpus directory.
    pub name: &'static str,
    /// What it decodes and where those bytes come from.
    pub input: &'static str,
    /// The target.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "signer_request",
        input: "a frame payload a client sends to cvx-signer (ClientMessage)",
        run: signer_request,
    },
    Target {
        name: "signer_reply",
        input: "a frame payload cvx-signer sends back (SignerMessage)",
        run: signer_reply,
    },
    Target {
        name: "peer_message",
        input: "a frame payload on the peer wire (peer_wire::Message), from any remote peer or client",
        run: peer_message,
    },
    Target {
        name: "tx_file",
        input: "a signed-transaction file (`cvx-peer submit`, the vault's output)",
        run: tx_file,
    },
    Target {
        name: "genesis",
        input: "a genesis encoding (the network id is its hash)",
        run: genesis,
    },
    Target {
        name: "state_file",
        input: "cvx-signer's watermark state file (two slots)",
        run: state_file,
    },
    Target {
        name: "audit_log",
        input: "cvx-signer's audit log, first or continued",
        run: audit_log,
    },
    Target {
        name: "key_plaintext",
        input: "a decrypted key file's plaintext",
        run: key_plaintext,
    },
    Target {
        name: "policy",
        input: "a watermark, a sign request and a clock (u16 LE watermark length, watermark, request, 8-byte LE now)",
        run: policy,
    },
    Target {
        name: "certificate",
        input: "a trusted table, a watermark, a certificate request and a clock (u16 LE table length, table, u16 LE watermark length, watermark, request, 8-byte LE now)",
        run: certificate,
    },
];

/// Decode as `T`; whatever decodes must be the canonical encoding of itself.
fn canonical<T: Canonical>(data: &[u8]) -> Option<T> {
    let v = T::decode(data).ok()?;
    assert!(
        v.encode() == data,
        "{}: decoded a non-canonical input",
        T::NAME
    );
    Some(v)
}

/// [`crate::signer_wire::ClientMessage`].
pub fn signer_request(data: &[u8]) {
    canonical::<crate::signer_wire::ClientMessage>(data);
}

/// [`crate::signer_wire::SignerMessage`].
pub fn signer_reply(data: &[u8]) {
    canonical::<crate::signer_wire::SignerMessage>(data);
}

/// [`crate::peer_wire::Message`].
pub fn peer_message(data: &[u8]) {
    canonical::<crate::peer_wire::Message>(data);
}

/// [`crate::txfile::TxFile`].
pub fn tx_file(data: &[u8]) {
    canonical::<crate::txfile::TxFile>(data);
}

/// [`crate::ledger::Genesis`].
pub fn genesis(data: &[u8]) {
    if let Some(g) = canonical::<crate::ledger::Genesis>(data) {
        let _ = g.network_id();
    }
}

/// [`crate::signer_wire::current_slot`]: a slot that decodes re-encodes to its bytes.
pub fn state_file(data: &[u8]) {
    if let Ok((slot, i, _)) = crate::signer_wire::current_slot(data) {
        let at = i * crate::signer_wire::SLOT_LEN;
        assert!(
            crate::signer_wire::encode_slot(&slot) == data[at..at + crate::signer_wire::SLOT_LEN],
            "state slot: decoded a non-canonical slot"
        );
    }
}

/// [`crate::signer_wire::verify_audit`]: a verified log's records re-encode to its bytes.
pub fn audit_log(data: &[u8]) {
    if let Ok(s) = crate::signer_wire::verify_audit(data) {
        let header = if s.continues.is_some() {
            crate::signer_wire::AUDIT_CONTINUED_HEADER_LEN
        } else {
            crate::signer_wire::AUDIT_HEADER_LEN
        };
        let mut again = data[..header].to_vec();
        for r in &s.records {
            again.extend_from_slice(&crate::signer_wire::encode_audit_record(r).0);
        }
        assert!(
            u64::try_from(again.len()).ok() == Some(s.verified_len)
                && again[..] == data[..again.len()],
            "audit log: verified records do not re-encode to the file"
        );
        let _ = s.head_at(s.record_count());
    }
}

/// [`crate::keyfile::public_key`].
pub fn key_plaintext(data: &[u8]) {
    let _ = crate::keyfile::public_key(data);
}

/// [`Policy::decide`] on a decoded watermark and request, with the policy's key and
/// network taken from the request (so the checks past "wrong key" are reached). An
/// allowed request must be allowed again as an identical repeat, with the same
/// watermark.
pub fn policy(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let n = usize::from(u16::from_le_bytes(*len));
    let Some((wm, rest)) = rest.split_at_checked(n) else {
        return;
    };
    let Some((req, now)) = rest.split_last_chunk::<8>() else {
        return;
    };
    let (Some(wm), Some(req)) = (canonical::<Watermark>(wm), canonical::<Request>(req)) else {
        return;
    };
    let key = match &req.body {
        SignRequest::Block(h) => h.proposer,
        SignRequest::Order { order, .. } => order.peer,
        SignRequest::ChallengeResponse(r) => r.responder,
    };
    let policy = Policy {
        key,
        network: req.network,
        params: PolicyParams::default(),
    };
    let now = Timestamp(u64::from_le_bytes(*now));
    // Challenge responses leave the watermark alone and are not "repeats".
    let tracked = !matches!(req.body, SignRequest::ChallengeResponse(_));
    if let Decision::Allow { watermark, .. } = policy.decide(&wm, &req, now) {
        match policy.decide(&watermark, &req, now) {
            Decision::Allow {
                watermark: again,
                repeat,
                ..
            } => assert!(
                again == watermark && repeat == tracked,
                "policy: an identical repeat changed the watermark or was not a repeat"
            ),
            Decision::Refuse(r) => panic!("policy: an identical repeat was refused: {r:?}"),
        }
    }
}

/// `u16 LE length ‖ bytes ‖ rest` → `(bytes, rest)`.
fn length_prefixed(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    rest.split_at_checked(usize::from(u16::from_le_bytes(*len)))
}

/// [`crate::certificate::decide_certificate`] on a decoded trusted table, watermark and
/// certificate request, for the network the certificate names (so the checks past the
/// network are reached). An allowed certificate moves the lock to its anchor, never
/// lowers finality, leaves the block and order marks alone, and — when the table did not
/// change — is allowed again on the new state without moving anything.
pub fn certificate(data: &[u8]) {
    use crate::certificate::{CertDecision, CertRequest, DEFAULT_TRUST_PERIOD_MS, TrustedTable};
    let Some((tt, rest)) = length_prefixed(data) else {
        return;
    };
    let Some((wm, rest)) = length_prefixed(rest) else {
        return;
    };
    let Some((req, now)) = rest.split_last_chunk::<8>() else {
        return;
    };
    let (Some(tt), Some(wm), Some(req)) = (
        canonical::<TrustedTable>(tt),
        canonical::<Watermark>(wm),
        canonical::<CertRequest>(req),
    ) else {
        return;
    };
    let now = Timestamp(u64::from_le_bytes(*now));
    let network = req.certificate.network;
    let decide = |wm: &Watermark, tt: &TrustedTable| {
        crate::certificate::decide_certificate(&network, wm, tt, &req, now, DEFAULT_TRUST_PERIOD_MS)
    };
    if let CertDecision::Allow {
        watermark, trusted, ..
    } = decide(&wm, &tt)
    {
        assert!(
            watermark.consensus == Some(req.certificate.anchor)
                && watermark.finality >= wm.finality
                && watermark.block == wm.block
                && watermark.order == wm.order,
            "certificate: an allowed certificate did not move the lock to its anchor, or lowered finality"
        );
        if trusted.table == tt.table {
            match decide(&watermark, &trusted) {
                CertDecision::Allow {
                    watermark: again,
                    moved,
                    ..
                } => assert!(
                    again == watermark && !moved,
                    "certificate: presenting the same certificate again moved the lock"
                ),
                CertDecision::Refuse(r) => {
                    panic!("certificate: the same certificate was refused the second time: {r:?}")
                }
            }
        }
    }
}
