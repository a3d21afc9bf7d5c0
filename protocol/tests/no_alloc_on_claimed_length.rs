//! A declared length is checked before anything is allocated for it: with the global
//! allocator capped just above current use, decoding inputs that *claim* gigabytes must
//! fail cleanly (an allocation of the claimed size would abort this test process).
//! One test per binary, so no other test allocates concurrently.
#![allow(clippy::unwrap_used)]

use std::alloc::System;

use cap::Cap;
use cvx_protocol::consensus::{Belief, Block, Order};
use cvx_protocol::ledger::Genesis;
use cvx_protocol::{Canonical, DecodeError};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

fn claims(prefix: &[u8], len_varint: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.extend_from_slice(len_varint);
    v.extend_from_slice(&[0u8; 64]);
    v
}

#[test]
fn huge_declared_lengths_allocate_nothing_of_their_size() {
    // 2^62 elements, and 5 * 10^8 elements (16 GB of hashes).
    let huge: [&[u8]; 2] = [
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f],
        &[0x80, 0xca, 0xb5, 0xee, 0x01],
    ];
    // A Block: header (32 key + 1 ts + 1 count + 32 hash) + 64 sig, then the tx list.
    let block_prefix = {
        let mut v = vec![0u8; 32];
        // A valid key so decoding gets as far as the list: the basepoint encoding.
        v.copy_from_slice(
            &ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                .verifying_key()
                .to_bytes(),
        );
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&[0u8; 32]);
        v.extend_from_slice(&[0u8; 64]);
        v
    };
    let before = ALLOC.allocated();
    ALLOC.set_limit(before + (4 << 20)).unwrap();
    for len in huge {
        let b = Block::decode(&claims(&block_prefix, len));
        assert!(
            matches!(
                b,
                Err(DecodeError::OverCap { .. } | DecodeError::Malformed { .. })
            ),
            "{b:?}"
        );
        let o = Order::decode(&claims(&[0u8; 0], len));
        assert!(o.is_err());
        assert!(Belief::decode(&claims(&[], len)).is_err());
        let g = Genesis::decode(&claims(&[1, b'x', 0], len));
        assert!(g.is_err());
    }
    ALLOC.set_limit(usize::MAX).unwrap();
}
