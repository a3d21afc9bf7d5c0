use super::*;

#[test]
fn nibble_helpers() {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    assert_eq!(common_nibbles(&a, &b), 64);
    b[3] = 0x01;
    assert_eq!(common_nibbles(&a, &b), 7);
    b[3] = 0x10;
    assert_eq!(common_nibbles(&a, &b), 6);
    a[0] = 0xab;
    assert_eq!(nibble(&a, 0), 0xa);
    assert_eq!(nibble(&a, 1), 0xb);
    assert_eq!(prefix_of(&a, 1)[0], 0xa0);
    assert_eq!(prefix_of(&a, 0)[0], 0);
}

#[test]
fn decode_rejects_non_canonical() {
    let h = Hash::ZERO;
    let leaf = encode_leaf(&[1; 32], b"v");
    assert!(decode_node(&h, &leaf).is_ok());
    let mut long = leaf.clone();
    long.push(0);
    assert!(decode_node(&h, &long).is_err());
    let mut kids = [None; 16];
    kids[0] = Some(Hash::of(b"a"));
    assert!(
        decode_node(&h, &encode_branch(0, &[0; 32], &kids)).is_err(),
        "one child"
    );
    kids[5] = Some(Hash::of(b"b"));
    assert!(decode_node(&h, &encode_branch(0, &[0; 32], &kids)).is_ok());
    assert!(
        decode_node(&h, &encode_branch(2, &[0xff; 32], &kids)).is_err(),
        "dirty prefix"
    );
    assert!(
        decode_node(&h, &encode_branch(64, &[0; 32], &kids)).is_err(),
        "depth"
    );
    assert!(decode_node(&h, &[]).is_err());
    assert!(decode_node(&h, &[9]).is_err());
}
