//! RS1024: SLIP-39's Reed-Solomon checksum over GF(1024), three words long, keyed by a
//! customization string ("shamir", or "shamir_extendable" for shares with the
//! extendable flag).

/// Checksum length in words.
pub const CHECKSUM_WORDS: usize = 3;

/// The customization string for shares without the extendable flag.
pub const CUSTOM_ORIG: &[u8] = b"shamir";
/// The customization string for shares with the extendable flag.
pub const CUSTOM_EXTENDABLE: &[u8] = b"shamir_extendable";

const GEN: [u32; 10] = [
    0x00E0_E040,
    0x01C1_C080,
    0x0383_8100,
    0x0707_0200,
    0x0E0E_0009,
    0x1C0C_2412,
    0x3808_6C24,
    0x3090_FC48,
    0x21B1_F890,
    0x03F3_F120,
];

fn polymod(custom: &[u8], data: &[u16], tail_zeros: usize) -> u32 {
    let values = custom
        .iter()
        .map(|&b| u32::from(b))
        .chain(data.iter().map(|&v| u32::from(v)))
        .chain(core::iter::repeat_n(0, tail_zeros));
    let mut chk: u32 = 1;
    for v in values {
        let b = chk >> 20;
        chk = ((chk & 0x000F_FFFF) << 10) ^ v;
        for (i, g) in GEN.iter().enumerate() {
            if (b >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// The three checksum words for `data`.
pub fn create(custom: &[u8], data: &[u16]) -> [u16; CHECKSUM_WORDS] {
    let p = polymod(custom, data, CHECKSUM_WORDS) ^ 1;
    // Each word is masked to 10 bits, so the narrowing cannot lose anything.
    let w = |shift: u32| ((p >> shift) & 0x3ff) as u16;
    [w(20), w(10), w(0)]
}

/// Does `data` (checksum included) carry a valid checksum?
pub fn verify(custom: &[u8], data: &[u16]) -> bool {
    polymod(custom, data, 0) == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_verifies_and_any_single_change_is_caught() {
        let data: Vec<u16> = (0..17).map(|i| (i * 37 + 5) % 1024).collect();
        for custom in [CUSTOM_ORIG, CUSTOM_EXTENDABLE] {
            let mut all = data.clone();
            all.extend_from_slice(&create(custom, &data));
            assert!(verify(custom, &all));
            for i in 0..all.len() {
                for delta in [1u16, 512, 1023] {
                    let mut bad = all.clone();
                    bad[i] ^= delta;
                    assert!(!verify(custom, &bad), "change at {i} by {delta}");
                }
            }
        }
        // The customization string matters.
        let mut all = data.clone();
        all.extend_from_slice(&create(CUSTOM_ORIG, &data));
        assert!(!verify(CUSTOM_EXTENDABLE, &all));
    }
}
