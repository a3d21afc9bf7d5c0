//! The timeline picture (`timeline.svg` in the devnet directory): each peer's finality
//! over time, fault windows shaded and labelled, violations marked. Pure SVG text, no
//! image crate.

use std::fmt::Write as _;

/// A shaded window.
#[derive(Clone, Debug)]
pub struct Window {
    /// Start (ms after the network came up).
    pub start_ms: u64,
    /// End.
    pub end_ms: u64,
    /// The label (`#3 isolate p1`).
    pub label: String,
    /// Kind name, for the colour (`partition`, `delay`, `loss`, `kill`, `freeze`).
    pub kind: &'static str,
}

/// What to draw.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Title line (seed, peers, latency).
    pub title: String,
    /// Per peer: (ms, finality) samples.
    pub series: Vec<Vec<(u64, u64)>>,
    /// Fault windows.
    pub windows: Vec<Window>,
    /// Violations: (ms, short text).
    pub marks: Vec<(u64, String)>,
    /// Length of the run (ms).
    pub run_ms: u64,
}

const W: f64 = 1400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 60.0;
const LABEL_ROWS: usize = 3;
const ROW_H: f64 = 16.0;
const PLOT_H: f64 = 420.0;
/// More windows than this: labelled by number only.
const MAX_FULL_LABELS: usize = 16;
/// More violations than this: red lines without text.
const MAX_MARK_TEXTS: usize = 12;
const COLORS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#7f7f7f", "#d62728",
];

fn fault_fill(kind: &str) -> &'static str {
    match kind {
        "partition" => "#f4a3a3",
        "delay" => "#f7d79a",
        "loss" => "#c6b3e6",
        "kill" | "kill-signer" => "#9fb8d9",
        "freeze" => "#a8d8b9",
        _ => "#dddddd",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" tick step near `span / 8`.
fn step(span: f64) -> f64 {
    let raw = (span / 8.0).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}

/// The SVG document.
#[must_use]
#[allow(clippy::cast_precision_loss, clippy::too_many_lines)]
pub fn render(t: &Timeline) -> String {
    let plot_top = TOP + LABEL_ROWS as f64 * ROW_H + 8.0;
    let plot_w = W - LEFT - RIGHT;
    let h = plot_top + PLOT_H + 70.0;
    let run = t
        .run_ms
        .max(t.series.iter().flatten().map(|p| p.0).max().unwrap_or(0))
        .max(1) as f64;
    let fmax = t
        .series
        .iter()
        .flatten()
        .map(|p| p.1)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = |ms: u64| LEFT + ms as f64 / run * plot_w;
    let y = |f: u64| plot_top + PLOT_H - f as f64 / fmax * PLOT_H;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"#,
        esc(&t.title)
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="44" fill="#444">finality (blocks executed) per peer over time; shaded: fault windows; red lines: violations</text>"##
    );
    // Fault windows: shaded over the plot, labels in rows above it (rotating rows so
    // neighbouring labels do not overlap), a thin tick joining label and window.
    // A long run has too many windows for whole labels: then only their numbers (the
    // whole labels are in the nemesis log and the JSON summary).
    let crowded = t.windows.len() > MAX_FULL_LABELS;
    for (i, w) in t.windows.iter().enumerate() {
        let label = if crowded {
            w.label.split(' ').next().unwrap_or("")
        } else {
            w.label.as_str()
        };
        let x0 = x(w.start_ms);
        let x1 = x(w.end_ms).max(x0 + 2.0);
        let row = i % LABEL_ROWS;
        let ly = TOP + (row as f64 + 1.0) * ROW_H - 3.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{plot_top:.1}" width="{:.1}" height="{PLOT_H}" fill="{}" fill-opacity="0.55"/>"#,
            x1 - x0,
            fault_fill(w.kind)
        );
        let _ = writeln!(
            s,
            r##"<line x1="{x0:.1}" y1="{:.1}" x2="{x0:.1}" y2="{plot_top:.1}" stroke="#888" stroke-width="0.8"/>"##,
            ly + 3.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{ly:.1}" font-size="11">{}</text>"#,
            x0 + 2.0,
            esc(label)
        );
    }
    // Axes and grid.
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{plot_top:.1}" width="{plot_w}" height="{PLOT_H}" fill="none" stroke="#333"/>"##
    );
    let xs = step(run / 1000.0);
    let mut sec = 0.0;
    while sec * 1000.0 <= run {
        let px = LEFT + sec * 1000.0 / run * plot_w;
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{plot_top:.1}" x2="{px:.1}" y2="{:.1}" stroke="#ccc" stroke-width="0.5"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{sec}</text>"##,
            plot_top + PLOT_H,
            plot_top + PLOT_H + 16.0
        );
        sec += xs;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the network came up</text>"#,
        LEFT + plot_w / 2.0,
        plot_top + PLOT_H + 36.0
    );
    let ys = step(fmax);
    let mut f = 0.0;
    while f <= fmax {
        let py = plot_top + PLOT_H - f / fmax * PLOT_H;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ccc" stroke-width="0.5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{f}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0
        );
        f += ys;
    }
    let _ = writeln!(
        s,
        r#"<text x="20" y="{:.1}" transform="rotate(-90 20 {:.1})" text-anchor="middle">finality</text>"#,
        plot_top + PLOT_H / 2.0,
        plot_top + PLOT_H / 2.0
    );
    // Series: a gap where a peer did not answer (samples more than 3 s apart).
    for (i, pts) in t.series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let mut d = String::new();
        let mut dots = String::new();
        let mut prev: Option<u64> = None;
        for (ms, fin) in pts {
            let cmd = if prev.is_some_and(|p| ms.saturating_sub(p) <= 3_000) {
                'L'
            } else {
                'M'
            };
            let _ = write!(d, "{cmd}{:.1},{:.1} ", x(*ms), y(*fin));
            // A sample after a gap starts a new stretch: a dot, so that a lone one shows.
            if cmd == 'M' {
                let _ = write!(
                    dots,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{c}"/>"#,
                    x(*ms),
                    y(*fin)
                );
            }
            prev = Some(*ms);
        }
        let _ = writeln!(
            s,
            r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="1.8"/>{dots}"#
        );
        let ly = plot_top + 10.0 + i as f64 * 18.0;
        let lx = LEFT + plot_w + 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="3"/><text x="{}" y="{}">peer {i}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0
        );
    }
    // Fault legend.
    let mut ly = plot_top + 30.0 + t.series.len() as f64 * 18.0;
    for (kind, name) in [
        ("partition", "partition"),
        ("delay", "delay spike"),
        ("loss", "loss"),
        ("kill", "kill -9"),
        ("freeze", "SIGSTOP freeze"),
    ] {
        let lx = LEFT + plot_w + 14.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{:.1}" width="22" height="12" fill="{}" fill-opacity="0.55"/><text x="{}" y="{ly:.1}">{name}</text>"#,
            ly - 10.0,
            fault_fill(kind),
            lx + 28.0
        );
        ly += 18.0;
    }
    for (ms, text) in &t.marks {
        let px = x(*ms);
        if t.marks.len() > MAX_MARK_TEXTS {
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{plot_top:.1}" x2="{px:.1}" y2="{:.1}" stroke="#d00" stroke-width="1" stroke-dasharray="4,3"><title>{}</title></line>"##,
                plot_top + PLOT_H,
                esc(text)
            );
            continue;
        }
        // The violation's first words (`REGRESSION`, `NO RECOVERY`...) along the line.
        let short: String = text
            .split_once("] ")
            .map_or(text.as_str(), |(_, r)| r)
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" transform="rotate(90 {:.1} {:.1})" font-size="10" fill="#d00">{}</text>"##,
            px + 3.0,
            plot_top + 4.0,
            px + 3.0,
            plot_top + 4.0,
            esc(&short)
        );
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{plot_top:.1}" x2="{px:.1}" y2="{:.1}" stroke="#d00" stroke-width="1.5" stroke-dasharray="4,3"><title>{}</title></line>"##,
            plot_top + PLOT_H,
            esc(text)
        );
    }
    if !t.marks.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="{:.1}" fill="#d00">{} violation(s); see nemesis.log in the devnet directory (fault labels too)</text>"##,
            plot_top + PLOT_H + 56.0,
            t.marks.len()
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Timeline {
        Timeline {
            title: "seed 7 <4 peers>".into(),
            series: vec![
                vec![(0, 0), (1_000, 5), (2_000, 9)],
                vec![(0, 0), (6_000, 9)],
            ],
            windows: vec![Window {
                start_ms: 500,
                end_ms: 1_500,
                label: "#0 isolate p1".into(),
                kind: "partition",
            }],
            marks: vec![(1_800, "fork & more".into())],
            run_ms: 10_000,
        }
    }

    #[test]
    fn the_picture_has_every_peer_every_fault_and_escapes_text() {
        let s = render(&sample());
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("peer 0") && s.contains("peer 1"));
        assert!(s.contains("#0 isolate p1"));
        assert!(s.contains("seed 7 &lt;4 peers&gt;"));
        assert!(s.contains("fork &amp; more"));
        assert!(s.contains("1 violation(s)"));
        // Peer 1's samples are 6 s apart: drawn with a gap (two moves).
        let paths: Vec<&str> = s.lines().filter(|l| l.starts_with("<path")).collect();
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[1].matches('M').count(), 2);
        assert_eq!(paths[0].matches('M').count(), 1);
        assert_eq!(
            paths[1].matches("<circle").count(),
            2,
            "a dot where each stretch starts"
        );
    }

    #[test]
    fn a_long_run_is_labelled_by_fault_number() {
        let mut t = sample();
        t.windows = (0..40)
            .map(|i| Window {
                start_ms: i * 100,
                end_ms: i * 100 + 50,
                label: format!("#{i} isolate p1"),
                kind: "partition",
            })
            .collect();
        t.marks = (0..20)
            .map(|i| (i * 100, format!("[1s] NO RECOVERY after fault #{i}: x")))
            .collect();
        let s = render(&t);
        assert!(s.contains(">#39</text>") && !s.contains("isolate p1"));
        assert!(
            !s.contains(">NO RECOVERY after fault #3</text>"),
            "no text per violation"
        );
        assert_eq!(s.matches("stroke=\"#d00\"").count(), 20);
    }

    #[test]
    fn empty_timeline_renders() {
        let s = render(&Timeline::default());
        assert!(s.contains("</svg>"));
        assert!(!s.contains("NaN"));
    }

    #[test]
    fn ticks_are_round() {
        assert!((step(60.0) - 10.0).abs() < 1e-9);
        assert!((step(1800.0) - 250.0).abs() < 1e-9 || (step(1800.0) - 500.0).abs() < 1e-9);
    }
}
