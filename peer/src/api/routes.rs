//! Strict routing: every route of the client API, and the one canonical spelling of each
//! path parameter. Anything else is `ROUTE` (404), or `METHOD` (405) when the path exists
//! under another method.

use cvx_protocol::{Hash, PublicKey};

/// Every route: `(method, path template)`, exactly as docs/api.yaml lists them (a test
/// checks that the two sets are equal).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/status"),
    ("GET", "/v1/account/{n}"),
    ("GET", "/v1/peer/{key}"),
    ("GET", "/v1/tx/{id}"),
    ("POST", "/v1/tx"),
    ("GET", "/v1/events"),
    ("GET", "/metrics"),
    // The pre-v1 paths, kept so that existing scripts keep working (deprecated).
    ("GET", "/status"),
    ("GET", "/account/{n}"),
    ("GET", "/peer/{key}"),
];

/// A parsed request target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/status` (`legacy`: `GET /status`).
    Status {
        /// The pre-v1 path.
        legacy: bool,
    },
    /// `GET /v1/account/{n}`.
    Account {
        /// Account number.
        n: u64,
        /// The pre-v1 path (answers `null` for an unknown account).
        legacy: bool,
    },
    /// `GET /v1/peer/{key}`.
    Peer {
        /// Peer key.
        key: PublicKey,
        /// The pre-v1 path (answers `null` for an unknown peer).
        legacy: bool,
    },
    /// `GET /v1/tx/{id}`.
    Tx(Hash),
    /// `POST /v1/tx[?wait=SECS]`.
    Submit {
        /// Seconds to wait for the finalized result (0: answer the id at once).
        wait: u64,
    },
    /// `GET /v1/events`.
    Events,
    /// `GET /metrics`.
    Metrics,
}

/// Why a request target has no route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// No such path.
    Path,
    /// The path exists, under these methods only.
    Method(&'static str),
    /// The path exists but a parameter or the query is not in its one canonical form.
    Bad(String),
}

/// The most seconds `POST /v1/tx?wait=` may ask for.
pub const MAX_WAIT_SECS: u64 = 60;

/// A number in its one canonical form: decimal digits, no sign, no leading zero (but
/// "0"), within u64.
#[must_use]
pub fn canonical_u64(s: &str) -> Option<u64> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// 32 bytes as exactly 64 lower-case hex digits (the form every cvx tool prints).
fn canonical_hex32(s: &str) -> Option<Hash> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Hash::from_hex(s).ok()
}

/// Parses a matched path's parameters.
type Parse<'a> = Box<dyn Fn() -> Result<Route, String> + 'a>;

/// Route `method` and the request target (`path`, `query`).
///
/// # Errors
/// [`NoRoute`] saying why.
pub fn route(method: &str, path: &str, query: Option<&str>) -> Result<Route, NoRoute> {
    let segs: Vec<&str> = match path.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None => return Err(NoRoute::Path),
    };
    let (allowed, parse): (&'static str, Parse<'_>) = match segs[..] {
        ["v1", "status"] => ("GET", Box::new(|| Ok(Route::Status { legacy: false }))),
        ["status"] => ("GET", Box::new(|| Ok(Route::Status { legacy: true }))),
        ["metrics"] => ("GET", Box::new(|| Ok(Route::Metrics))),
        ["v1", "events"] => ("GET", Box::new(|| Ok(Route::Events))),
        ["v1", "account", n] | ["account", n] => {
            let legacy = segs.len() == 2;
            (
                "GET",
                Box::new(move || {
                    canonical_u64(n)
                        .map(|n| Route::Account { n, legacy })
                        .ok_or_else(|| {
                            format!(
                                "{n:?} is not an account number (decimal, no sign, no leading zero)"
                            )
                        })
                }),
            )
        }
        ["v1", "peer", k] | ["peer", k] => {
            let legacy = segs.len() == 2;
            (
                "GET",
                Box::new(move || {
                    canonical_hex32(k)
                        .and_then(|h| PublicKey::from_bytes(&h.0).ok())
                        .map(|key| Route::Peer { key, legacy })
                        .ok_or_else(|| {
                            format!(
                                "{k:?} is not a peer key (64 lower-case hex digits of a valid key)"
                            )
                        })
                }),
            )
        }
        ["v1", "tx", id] => (
            "GET",
            Box::new(move || {
                canonical_hex32(id).map(Route::Tx).ok_or_else(|| {
                    format!("{id:?} is not a transaction id (64 lower-case hex digits)")
                })
            }),
        ),
        ["v1", "tx"] => (
            "POST",
            Box::new(move || {
                let wait = match query {
                    None => 0,
                    Some(q) => match q.strip_prefix("wait=").and_then(canonical_u64) {
                        Some(w) if w <= MAX_WAIT_SECS => w,
                        _ => {
                            return Err(format!(
                                "the only query is wait=SECS (0..={MAX_WAIT_SECS}, canonical decimal)"
                            ));
                        }
                    },
                };
                Ok(Route::Submit { wait })
            }),
        ),
        _ => return Err(NoRoute::Path),
    };
    if method != allowed {
        return Err(NoRoute::Method(allowed));
    }
    if query.is_some() && allowed == "GET" {
        return Err(NoRoute::Bad("this route takes no query".into()));
    }
    parse().map_err(NoRoute::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn every_route_in_the_table_routes() {
        for (m, p) in ROUTES {
            let path = p
                .replace("{n}", "7")
                .replace("{key}", KEY)
                .replace("{id}", &"ab".repeat(32));
            assert!(route(m, &path, None).is_ok(), "{m} {path}");
        }
    }

    #[test]
    fn numbers_have_one_canonical_form() {
        assert_eq!(
            route("GET", "/v1/account/7", None),
            Ok(Route::Account {
                n: 7,
                legacy: false
            })
        );
        assert!(route("GET", "/v1/account/0", None).is_ok());
        assert!(route("GET", "/v1/account/18446744073709551615", None).is_ok());
        for bad in [
            "+1",
            "01",
            "00",
            "-1",
            " 1",
            "1 ",
            "",
            "0x1",
            "1e3",
            "18446744073709551616",
            "%31",
        ] {
            assert!(
                matches!(
                    route("GET", &format!("/v1/account/{bad}"), None),
                    Err(NoRoute::Bad(_) | NoRoute::Path)
                ),
                "{bad:?} accepted"
            );
            assert!(route("GET", &format!("/account/{bad}"), None).is_err());
        }
    }

    #[test]
    fn keys_and_ids_are_lower_case_hex_of_the_exact_length() {
        assert!(route("GET", &format!("/v1/peer/{KEY}"), None).is_ok());
        assert!(route("GET", &format!("/v1/peer/{}", KEY.to_uppercase()), None).is_err());
        assert!(route("GET", &format!("/v1/peer/{}", &KEY[..62]), None).is_err());
        assert!(route("GET", &format!("/v1/peer/{KEY}00"), None).is_err());
        assert!(route("GET", &format!("/v1/tx/{}", "AB".repeat(32)), None).is_err());
        assert!(route("GET", &format!("/v1/tx/{}", "ab".repeat(32)), None).is_ok());
    }

    #[test]
    fn paths_are_exact() {
        for bad in [
            "//status",
            "/status/",
            "/v1/status/",
            "/v1//status",
            "/v1/status/x",
            "/V1/status",
            "/outgoing",
            "/v1/outgoing",
            "/v1/account",
            "/v1/account/",
            "/v1/account/1/2",
            "status",
            "",
            "/",
            "/v2/status",
        ] {
            assert!(route("GET", bad, None).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            route("POST", "/v1/status", None),
            Err(NoRoute::Method("GET"))
        );
        assert_eq!(route("GET", "/v1/tx", None), Err(NoRoute::Method("POST")));
        assert!(matches!(
            route("GET", "/v1/status", Some("x=1")),
            Err(NoRoute::Bad(_))
        ));
    }

    #[test]
    fn wait_is_a_canonical_number_of_seconds_within_the_cap() {
        assert_eq!(
            route("POST", "/v1/tx", Some("wait=10")),
            Ok(Route::Submit { wait: 10 })
        );
        assert_eq!(route("POST", "/v1/tx", None), Ok(Route::Submit { wait: 0 }));
        for bad in [
            "wait=010",
            "wait=61",
            "wait=",
            "wait=1&x=2",
            "x=1",
            "",
            "wait=-1",
        ] {
            assert!(route("POST", "/v1/tx", Some(bad)).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod document {
    use std::collections::BTreeSet;

    use super::ROUTES;
    use crate::api::ApiCode;

    fn api_yaml() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.yaml");
        std::fs::read_to_string(path).expect("docs/api.yaml")
    }

    /// `(METHOD, path)` of every operation under `paths:` (two-space path keys, four-space
    /// method keys: the layout docs/api.yaml keeps).
    fn documented_routes(doc: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let mut in_paths = false;
        let mut path = None;
        for line in doc.lines() {
            if !line.starts_with(' ') && !line.is_empty() {
                in_paths = line == "paths:";
                continue;
            }
            if !in_paths {
                continue;
            }
            if let Some(p) = line.strip_prefix("  /") {
                path = Some(format!("/{}", p.trim_end_matches(':')));
            } else if let Some(m) = line.strip_prefix("    ")
                && !m.starts_with(' ')
                && let Some(m) = m.strip_suffix(':')
                && ["get", "post", "put", "delete", "patch", "head", "options"].contains(&m)
            {
                out.insert((
                    m.to_uppercase(),
                    path.clone().expect("a path before its method"),
                ));
            }
        }
        out
    }

    #[test]
    fn the_document_and_the_code_have_the_same_routes() {
        let doc = documented_routes(&api_yaml());
        let code: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(doc, code, "docs/api.yaml and routes::ROUTES differ");
    }

    #[test]
    fn the_document_gives_every_code_its_status() {
        let doc = api_yaml();
        let enum_line = doc
            .lines()
            .find(|l| l.trim_start().starts_with("enum: [SEQUENCE"))
            .expect("the Error schema's code enum");
        let listed: BTreeSet<&str> = enum_line
            .trim()
            .trim_start_matches("enum: [")
            .trim_end_matches(']')
            .split(", ")
            .collect();
        let codes = cvx_protocol::ErrorCode::ALL
            .into_iter()
            .map(ApiCode::Tx)
            .chain(ApiCode::HTTP);
        for c in codes {
            let row = format!("| `{}` | {} |", c.name(), c.status().as_u16());
            assert!(doc.contains(&row), "docs/api.yaml lacks the row {row}");
            assert!(
                listed.contains(c.name()),
                "the Error schema's enum lacks {}",
                c.name()
            );
        }
    }
}
