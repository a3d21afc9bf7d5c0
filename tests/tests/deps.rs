//! Crate boundaries are privilege boundaries: checked over `cargo metadata`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use cvx_systest::deps::{Graph, RULES, Rule, Verdict};
use cvx_systest::rooms;
use cvx_systest::workspace_root;
use serde_json::json;

#[test]
fn no_forbidden_crate_enters_a_shipped_closure() {
    let workspace = Graph::of_workspace(&workspace_root()).expect("cargo metadata");
    let mut failures = Vec::new();
    for rule in RULES {
        let verdict = if workspace.contains(rule.krate) {
            Graph::of_package(&workspace_root(), rule.krate)
                .expect("cargo tree")
                .check(rule)
        } else {
            Verdict::NotPresentYet
        };
        match verdict {
            Verdict::NotPresentYet => println!("{:<14} not present yet", rule.krate),
            Verdict::Clean { closure } => {
                println!(
                    "{:<14} clean ({closure} crates in its shipped closure)",
                    rule.krate
                );
            }
            Verdict::Violations(v) => {
                for (name, path) in v {
                    failures.push(format!(
                        "{}: {name} via {} — {}",
                        rule.krate,
                        path.join(" -> "),
                        rule.why
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "forbidden dependencies:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_key_holders_are_in_the_workspace() {
    let graph = Graph::of_workspace(&workspace_root()).expect("cargo metadata");
    for krate in [
        "cvx-protocol",
        "cvx-signer",
        "cvx-vault",
        "cvx-sandbox",
        "cvx-consensus",
        "cvx-peer",
        "cvx-devnet",
        "cvx-loadgen",
    ] {
        assert!(
            graph.contains(krate),
            "{krate} missing: the rule table would pass vacuously"
        );
    }
}

/// The peer never names a signing-key type in the code it ships.
#[test]
fn peer_source_names_no_signing_key_type() {
    let src = workspace_root().join("peer/src");
    let mut offenders = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, line) in text.lines().enumerate() {
                    for word in ["SigningKey", "SecretKey", "ExpandedSecretKey", "keyfile::"] {
                        if line.contains(word) {
                            offenders.push(format!("{}:{}: {word}", p.display(), i + 1));
                        }
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "cvx-peer names key material:\n{}",
        offenders.join("\n")
    );
}

fn synthetic(edges: &[(&str, &str, &str)]) -> Graph {
    let mut names: Vec<&str> = edges.iter().flat_map(|(a, b, _)| [*a, *b]).collect();
    names.sort_unstable();
    names.dedup();
    let packages: Vec<_> = names
        .iter()
        .map(|n| json!({"id": format!("id-{n}"), "name": n}))
        .collect();
    let nodes: Vec<_> = names
        .iter()
        .map(|n| {
            let deps: Vec<_> = edges
                .iter()
                .filter(|(a, _, _)| a == n)
                .map(|(_, b, kind)| {
                    let kind = if kind.is_empty() {
                        serde_json::Value::Null
                    } else {
                        json!(kind)
                    };
                    json!({"pkg": format!("id-{b}"), "dep_kinds": [{"kind": kind}]})
                })
                .collect();
            json!({"id": format!("id-{n}"), "deps": deps})
        })
        .collect();
    Graph::from_metadata(&json!({"packages": packages, "resolve": {"nodes": nodes}})).unwrap()
}

const SIGNER_RULE: Rule = Rule {
    krate: "cvx-signer",
    forbidden: &[&["tokio"]],
    why: "test",
};

#[test]
fn checker_fails_on_a_transitive_normal_dependency() {
    let g = synthetic(&[
        ("cvx-signer", "helper", ""),
        ("helper", "tokio", ""),
        ("tokio", "mio", ""),
    ]);
    assert_eq!(
        g.check(&SIGNER_RULE),
        Verdict::Violations(vec![(
            "tokio".into(),
            vec!["cvx-signer".into(), "helper".into(), "tokio".into()]
        )])
    );
}

#[test]
fn cargo_tree_output_is_read_as_a_graph() {
    let text = "0cvx-signer v0.1.0 (/x/signer)\n1helper v1.0.0\n2tokio v1.0.0\n3mio v1.0.0\n1serde v1.0.0\n2serde_derive v1.0.0 (proc-macro)\n";
    let g = Graph::from_cargo_tree(text);
    assert_eq!(
        g.check(&SIGNER_RULE),
        Verdict::Violations(vec![(
            "tokio".into(),
            vec!["cvx-signer".into(), "helper".into(), "tokio".into()]
        )])
    );
    assert_eq!(g.closure("cvx-signer").len(), 5);
}

#[test]
fn checker_fails_on_a_build_dependency() {
    let g = synthetic(&[("cvx-signer", "tokio", "build")]);
    assert!(matches!(g.check(&SIGNER_RULE), Verdict::Violations(_)));
}

#[test]
fn checker_ignores_dev_dependencies_and_reports_absent_crates() {
    let g = synthetic(&[("cvx-signer", "tokio", "dev"), ("cvx-signer", "serde", "")]);
    assert_eq!(g.check(&SIGNER_RULE), Verdict::Clean { closure: 1 });
    let absent = Rule {
        krate: "cvx-nothing",
        ..SIGNER_RULE
    };
    assert_eq!(g.check(&absent), Verdict::NotPresentYet);
}

fn rule(krate: &str) -> &'static Rule {
    RULES.iter().find(|r| r.krate == krate).unwrap()
}

/// The real cvx-consensus rule fails on each crate the issue names, direct or transitive.
#[test]
fn the_consensus_rule_fails_on_io_runtime_store_or_sandbox() {
    let r = rule("cvx-consensus");
    for bad in ["tokio", "mio", "socket2", "nix", "cvx-etch", "cvx-sandbox"] {
        let g = synthetic(&[("cvx-consensus", "helper", ""), ("helper", bad, "")]);
        assert!(
            matches!(g.check(r), Verdict::Violations(ref v) if v[0].0 == bad),
            "{bad} must violate the cvx-consensus rule"
        );
    }
    let g = synthetic(&[
        ("cvx-consensus", "cvx-protocol", ""),
        ("cvx-consensus", "proptest", "dev"),
    ]);
    assert!(matches!(g.check(r), Verdict::Clean { .. }));
}

/// The real cvx-devnet and cvx-peer rules: the launcher links no daemon, the peer no launcher.
#[test]
fn the_launcher_and_the_daemon_stay_apart() {
    let g = synthetic(&[("cvx-devnet", "cvx-peer", "")]);
    assert!(matches!(
        g.check(rule("cvx-devnet")),
        Verdict::Violations(_)
    ));
    let g = synthetic(&[("cvx-peer", "cvx-devnet", "")]);
    assert!(matches!(g.check(rule("cvx-peer")), Verdict::Violations(_)));
}

/// cvx-consensus is sans-I/O in its sources too: no file, socket or clock.
#[test]
fn consensus_sources_name_no_io_or_clock() {
    let files = rooms::rust_sources(&workspace_root().join("consensus/src")).unwrap();
    assert!(files.len() > 3, "the consensus sources were not found");
    let v = rooms::purity_violations(&files);
    assert!(
        v.is_empty(),
        "cvx-consensus must stay sans-I/O (time and randomness come in as values):\n{}",
        v.join("\n")
    );
}

/// Files allowed over the line limit, each with the most lines it may keep until it is
/// split (none today: keep it that way).
const GRANDFATHERED: &[(&str, usize)] = &[];

/// House rule 11: no source file of any crate is over ~600 lines (rooms::MAX_LINES).
#[test]
fn no_source_file_over_the_line_limit() {
    let mut long = Vec::new();
    for krate in cvx_systest::CRATE_DIRS {
        let files = rooms::rust_sources(&workspace_root().join(krate).join("src")).unwrap();
        assert!(!files.is_empty(), "{krate}/src not found");
        long.extend(rooms::long_files(&files, rooms::MAX_LINES, GRANDFATHERED));
    }
    assert!(
        long.is_empty(),
        "over {} lines: split them into rooms (house rule 11):\n{}",
        rooms::MAX_LINES,
        long.iter()
            .map(|(p, n)| format!("{}: {n}", p.display()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// No import cycle between the modules of any crate.
#[test]
fn no_import_cycle_between_modules() {
    let root = workspace_root();
    let mut cycles = Vec::new();
    for krate in cvx_systest::CRATE_DIRS {
        let src = root.join(krate).join("src");
        let files = rooms::rust_sources(&src).unwrap();
        assert!(!files.is_empty(), "{krate}/src not found");
        // A binary's main.rs is its own crate root: it is not a module of the library.
        let lib: Vec<_> = files
            .into_iter()
            .filter(|(p, _)| !p.ends_with("main.rs") && !p.starts_with(src.join("bin")))
            .collect();
        let g = rooms::module_graph(&src, &lib);
        cycles.extend(
            rooms::module_cycles(&g)
                .into_iter()
                .map(|c| format!("{krate}: {c}")),
        );
    }
    assert!(
        cycles.is_empty(),
        "import cycles (move what both sides need to where the dependency points one way):\n{}",
        cycles.join("\n")
    );
}
