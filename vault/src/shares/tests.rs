//! Unit tests of splitting and combining: every threshold subset, groups, refused
//! plans and passphrases, mixed and repeated shares, locked memory.

use super::*;

fn secret(len: usize) -> MasterSecret {
    let v: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
    MasterSecret::copy_of(&v).unwrap()
}

#[test]
fn split_then_combine_every_threshold_subset() {
    let s = secret(32);
    let plan = Plan::single(3, 5);
    let groups = split(&s, b"pass", &plan).unwrap();
    let words: Vec<Zeroizing<String>> = groups[0].iter().map(Share::to_words).collect();
    for a in 0..5 {
        for b in a + 1..5 {
            for c in b + 1..5 {
                let set = [&words[a][..], &words[b][..], &words[c][..]];
                assert_eq!(combine(&set, b"pass").unwrap().bytes(), s.bytes());
            }
            let two = [&words[a][..], &words[b][..]];
            assert!(matches!(
                combine(&two, b"pass"),
                Err(VaultError::Shares(ShareError::TooFew(_)))
            ));
        }
    }
    // A wrong passphrase gives another secret, silently (SLIP-39 by design).
    let set = [&words[0][..], &words[1][..], &words[2][..]];
    assert_ne!(combine(&set, b"other").unwrap().bytes(), s.bytes());
}

#[test]
fn groups_split_and_combine() {
    let s = secret(16);
    let plan = Plan {
        group_threshold: 2,
        groups: vec![
            Group {
                threshold: 1,
                count: 1,
            },
            Group {
                threshold: 2,
                count: 3,
            },
            Group {
                threshold: 3,
                count: 5,
            },
        ],
        iteration_exponent: 0,
        extendable: false,
    };
    let g = split(&s, b"", &plan).unwrap();
    let w = |gi: usize, mi: usize| g[gi][mi].to_words();
    let (a, b, c, d, e) = (w(0, 0), w(1, 2), w(1, 0), w(2, 4), w(2, 1));
    assert_eq!(combine(&[&a, &b, &c], b"").unwrap().bytes(), s.bytes());
    let f = w(2, 2);
    assert_eq!(combine(&[&d, &a, &e, &f], b"").unwrap().bytes(), s.bytes());
    assert!(combine(&[&a, &b], b"").is_err());
    // Interactive: shares of a third group do not disturb a complete pair.
    let mut r = Recovery::new();
    for (i, m) in [&d, &b, &a, &c].iter().enumerate() {
        let p = r.add(Share::parse(m, i + 1).unwrap(), i + 1).unwrap();
        assert_eq!(p.complete, i == 3, "{}", p.text);
    }
    assert_eq!(r.recover(b"").unwrap().bytes(), s.bytes());
}

#[test]
fn bad_plans_and_passphrases_are_refused() {
    let s = secret(32);
    for plan in [
        Plan::single(1, 3),
        Plan::single(4, 3),
        Plan::single(2, 17),
        Plan {
            group_threshold: 3,
            ..Plan::single(2, 3)
        },
    ] {
        assert!(
            matches!(
                split(&s, b"", &plan),
                Err(VaultError::Shares(ShareError::Plan(_)))
            ),
            "{plan:?}"
        );
    }
    assert!(matches!(
        split(&s, "pässword".as_bytes(), &Plan::single(2, 3)),
        Err(VaultError::Shares(ShareError::Passphrase))
    ));
}

#[test]
fn mixed_and_repeated_shares_are_named() {
    let s = secret(32);
    let a = split(&s, b"", &Plan::single(2, 3)).unwrap();
    let b = split(&s, b"", &Plan::single(2, 3)).unwrap();
    let (a0, a1, b1) = (a[0][0].to_words(), a[0][1].to_words(), b[0][1].to_words());
    let e = combine(&[&a0, &b1], b"").unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::Shares(ShareError::Mismatch {
                share: 2,
                first: 1,
                ..
            })
        ),
        "{e:?}"
    );
    let e = combine(&[&a0, &a1, &a0], b"").unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::Shares(ShareError::Duplicate { share: 3, other: 1 })
        ),
        "{e:?}"
    );
}

#[test]
fn master_secrets_live_in_locked_memory() {
    let s = secret(32);
    crate::secret::tests::assert_locked("master secret", s.bytes().as_ptr() as usize);
    let g = split(&s, b"", &Plan::single(2, 2)).unwrap();
    let (a, b) = (g[0][0].to_words(), g[0][1].to_words());
    let back = combine(&[&a, &b], b"").unwrap();
    crate::secret::tests::assert_locked("recovered secret", back.bytes().as_ptr() as usize);
}
