//! The demo accounts' throwaway public keys, as `cvx-loadgen keys` prints them.

use cvx_protocol::PublicKey;

/// The public keys of `cvx-loadgen keys`' output, one hex line each, in order. Validating a
/// key decompresses its point (~5 us): at 10^6 accounts that is seconds, so the lines are
/// parsed on every core.
pub(crate) fn parse_keys(out: &str) -> Result<Vec<PublicKey>, String> {
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let per = lines.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = lines
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|l| PublicKey::from_hex(l))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut keys = Vec::with_capacity(lines.len());
        for p in parts {
            keys.extend(p.join().unwrap_or_else(|e| std::panic::resume_unwind(e))?);
        }
        Ok(keys)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsed on every core, the keys keep their order; a bad line fails the whole parse.
    #[test]
    fn parse_keys_keeps_the_order_and_refuses_a_bad_line() {
        // Three valid keys (`cvx-loadgen keys --seed 5 --count 3`) in an irregular pattern
        // over more lines than cores, so any reordering of the chunks shows.
        let three = [
            "7f6f7ed339ad43b1cae0ea4a77d96058c8b2228f9bca2cdb6accb1fa272a8a94",
            "e70a2028db8907cce09ea44f2bde7a26104a72081c1e6c8e360095abf232ca90",
            "7afc6093871b292d3482fb010e9b1daea55124744c7dd36ec6733ba99ac42c62",
        ];
        let keys: Vec<String> = (0..37usize)
            .map(|i| three[(i * i + i / 5) % 3].to_owned())
            .collect();
        let text = keys.join("\n") + "\n\n";
        let parsed = parse_keys(&text).unwrap();
        assert_eq!(
            parsed.iter().map(PublicKey::to_hex).collect::<Vec<_>>(),
            keys
        );
        assert!(parse_keys(&(text + "zz\n")).is_err());
        assert!(parse_keys("").unwrap().is_empty());
    }
}
