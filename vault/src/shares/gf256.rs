//! Arithmetic in GF(256) with Rijndael's polynomial x^8 + x^4 + x^3 + x + 1 (as
//! SLIP-39 uses it), and Lagrange interpolation of byte-wise polynomials.

use zeroize::Zeroizing;

/// exp and log tables for the generator x + 1.
struct Tables {
    exp: [u8; 255],
    log: [u8; 256],
}

// The loop keeps poly below 0x100 and i below 255, so both narrowings are exact.
#[allow(clippy::cast_possible_truncation)]
const fn tables() -> Tables {
    let mut exp = [0u8; 255];
    let mut log = [0u8; 256];
    let mut poly: u16 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = poly as u8;
        log[poly as usize] = i as u8;
        poly = (poly << 1) ^ poly;
        if poly & 0x100 != 0 {
            poly ^= 0x11B;
        }
        i += 1;
    }
    Tables { exp, log }
}

static T: Tables = tables();

/// Why interpolation is impossible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpolateError {
    /// Two points share an x coordinate.
    DuplicateX,
    /// The points' values differ in length.
    Lengths,
    /// No points.
    Empty,
}

/// Write f(x) into `out`, where f is the polynomial (one per byte position) through
/// `points` (x, f(x)). `out` must be as long as the values.
///
/// # Errors
/// [`InterpolateError`].
pub fn interpolate(points: &[(u8, &[u8])], x: u8, out: &mut [u8]) -> Result<(), InterpolateError> {
    let Some(&(_, first)) = points.first() else {
        return Err(InterpolateError::Empty);
    };
    let len = first.len();
    if points.iter().any(|(_, v)| v.len() != len) || out.len() != len {
        return Err(InterpolateError::Lengths);
    }
    for (i, (xi, _)) in points.iter().enumerate() {
        if points[..i].iter().any(|(xj, _)| xj == xi) {
            return Err(InterpolateError::DuplicateX);
        }
    }
    if let Some((_, v)) = points.iter().find(|(xi, _)| *xi == x) {
        out.copy_from_slice(v);
        return Ok(());
    }
    let log = |v: u8| i32::from(T.log[usize::from(v)]);
    // log of the product of (x_i - x) over all points.
    let log_prod: i32 = points.iter().map(|(xi, _)| log(xi ^ x)).sum();
    out.fill(0);
    for (xi, yi) in points {
        let others: i32 = points.iter().map(|(xj, _)| log(xi ^ xj)).sum();
        // xi ^ xi = 0 has log 0 in the table, matching the reference's sum.
        let basis = (log_prod - log(xi ^ x) - others).rem_euclid(255);
        for (o, &y) in out.iter_mut().zip(yi.iter()) {
            if y != 0 {
                // rem_euclid(255) keeps the index in 0..255.
                let e = (log(y) + basis).rem_euclid(255) as usize;
                *o ^= T.exp[e];
            }
        }
    }
    Ok(())
}

/// f(x) as a new zeroizing buffer.
///
/// # Errors
/// [`InterpolateError`].
pub fn interpolate_new(
    points: &[(u8, &[u8])],
    x: u8,
) -> Result<Zeroizing<Vec<u8>>, InterpolateError> {
    let len = points.first().map_or(0, |(_, v)| v.len());
    let mut out = Zeroizing::new(vec![0u8; len]);
    interpolate(points, x, &mut out)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn mul(a: u8, b: u8) -> u8 {
        // Schoolbook multiplication modulo 0x11B, independent of the tables.
        let (mut a, mut b, mut p) = (u16::from(a), b, 0u16);
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            a <<= 1;
            if a & 0x100 != 0 {
                a ^= 0x11B;
            }
            b >>= 1;
        }
        p as u8
    }

    #[test]
    fn tables_agree_with_schoolbook_multiplication() {
        for a in 1..=255u8 {
            for b in 1..=255u8 {
                let e =
                    (usize::from(T.log[usize::from(a)]) + usize::from(T.log[usize::from(b)])) % 255;
                assert_eq!(T.exp[e], mul(a, b), "{a} * {b}");
            }
        }
    }

    #[test]
    fn interpolation_recovers_a_polynomial() {
        // f(x) = 7 + 3x + 200x^2 per byte (two bytes with different coefficients).
        let f = |x: u8, c: [u8; 3]| c[0] ^ mul(c[1], x) ^ mul(c[2], mul(x, x));
        let coeffs = [[7u8, 3, 200], [0, 255, 1]];
        let ys: Vec<[u8; 2]> = (0..5u8)
            .map(|x| [f(x, coeffs[0]), f(x, coeffs[1])])
            .collect();
        let pts: Vec<(u8, &[u8])> = [1usize, 3, 4]
            .iter()
            .map(|&i| (i as u8, &ys[i][..]))
            .collect();
        for x in [0u8, 2, 254, 255] {
            let got = interpolate_new(&pts, x).unwrap();
            assert_eq!(&got[..], &[f(x, coeffs[0]), f(x, coeffs[1])]);
        }
        let dup = [(1u8, &ys[1][..]), (1, &ys[2][..])];
        assert_eq!(
            interpolate_new(&dup, 0).unwrap_err(),
            InterpolateError::DuplicateX
        );
    }
}
