//! QR codes for signed-transaction files: one or more codes, each holding
//! `CVXTX1:<i>/<n>:<UPPER-CASE HEX>` (QR alphanumeric mode), shown in the terminal
//! and written as an SVG image.

use qrcode::{Color, EcLevel, QrCode};

use crate::error::{Result, VaultError};

/// The payload prefix.
pub const PREFIX: &str = "CVXTX1";
/// File bytes per code (500 hex characters: QR version 12–13 at level M).
pub const CHUNK: usize = 250;
/// Quiet zone in modules.
pub const QUIET: usize = 4;

/// The payloads for `bytes`.
#[must_use]
pub fn payloads(bytes: &[u8]) -> Vec<String> {
    payloads_with(PREFIX, bytes)
}

/// The payloads for `bytes` under another prefix (`CONVEX1` for Convex wrappers).
#[must_use]
pub fn payloads_with(prefix: &str, bytes: &[u8]) -> Vec<String> {
    let chunks: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{prefix}:{}/{n}:{}", i + 1, hex::encode_upper(c)))
        .collect()
}

/// Join payloads (any order) back into the file bytes.
///
/// # Errors
/// [`VaultError::Invalid`] for a foreign, duplicate or missing part.
pub fn reassemble(parts: &[String]) -> Result<Vec<u8>> {
    let bad = |r: &str| VaultError::invalid("qr", r.to_owned());
    let mut slots: Vec<Option<Vec<u8>>> = Vec::new();
    for p in parts {
        let rest = p
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or_else(|| bad("not a cvx transaction QR code"))?;
        let (pos, hexdata) = rest.split_once(':').ok_or_else(|| bad("malformed part"))?;
        let (i, n) = pos
            .split_once('/')
            .ok_or_else(|| bad("malformed part number"))?;
        let i: usize = i.parse().map_err(|_| bad("malformed part number"))?;
        let n: usize = n.parse().map_err(|_| bad("malformed part count"))?;
        if n == 0 || n > 64 || i == 0 || i > n {
            return Err(bad("part number out of range"));
        }
        if slots.is_empty() {
            slots = vec![None; n];
        } else if slots.len() != n {
            return Err(bad("parts from different files"));
        }
        let data = hex::decode(hexdata).map_err(|_| bad("part data is not hex"))?;
        if slots[i - 1].replace(data).is_some() {
            return Err(bad("duplicate part"));
        }
    }
    if slots.is_empty() || slots.iter().any(Option::is_none) {
        return Err(bad("missing parts"));
    }
    Ok(slots.into_iter().flatten().flatten().collect())
}

/// A QR code as a square of modules (`true` = dark).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix {
    /// Modules per side (without quiet zone).
    pub width: usize,
    /// Row-major modules.
    pub dark: Vec<bool>,
}

impl Matrix {
    /// Encode one payload at error-correction level M.
    ///
    /// # Errors
    /// [`VaultError::Invalid`] if the payload does not fit a QR code.
    pub fn encode(payload: &str) -> Result<Self> {
        let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
            .map_err(|e| VaultError::invalid("qr", e.to_string()))?;
        Ok(Self {
            width: code.width(),
            dark: code
                .to_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect(),
        })
    }

    /// Dark at (x, y), quiet zone included (coordinates may be negative-offset).
    #[must_use]
    pub fn at(&self, x: usize, y: usize) -> bool {
        if x < QUIET || y < QUIET || x >= self.width + QUIET || y >= self.width + QUIET {
            return false;
        }
        self.dark[(y - QUIET) * self.width + (x - QUIET)]
    }

    /// Terminal rendering with half blocks, two module rows per text row. With
    /// `light_blocks` (the default, for dark terminals, as `qrencode -t UTF8` does)
    /// light modules are drawn; otherwise dark ones.
    #[must_use]
    pub fn terminal(&self, light_blocks: bool) -> String {
        let side = self.width + 2 * QUIET;
        let mut out = String::new();
        let ink = |x, y| self.at(x, y) != light_blocks;
        for y in (0..side).step_by(2) {
            for x in 0..side {
                let top = ink(x, y);
                let bottom = y + 1 < side && ink(x, y + 1);
                out.push(match (top, bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            out.push('\n');
        }
        out
    }

    /// SVG rendering: one 1×1 rect per dark module, on a white square with the quiet
    /// zone, scaled by the viewer.
    #[must_use]
    pub fn svg(&self) -> String {
        let side = self.width + 2 * QUIET;
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 {side} {side}\" width=\"{}\" height=\"{}\" shape-rendering=\"crispEdges\">\n<rect x=\"0\" y=\"0\" width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\n",
            side * 8,
            side * 8
        );
        for y in 0..side {
            for x in 0..side {
                if self.at(x, y) {
                    s.push_str(&format!(
                        "<rect x=\"{x}\" y=\"{y}\" width=\"1\" height=\"1\" fill=\"#000\"/>\n"
                    ));
                }
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

/// Several codes in one SVG, stacked vertically with a caption-free gap.
#[must_use]
pub fn svg_document(codes: &[Matrix]) -> String {
    if codes.len() == 1 {
        return codes[0].svg();
    }
    let side = codes.iter().map(|m| m.width + 2 * QUIET).max().unwrap_or(0);
    let total: usize = codes.iter().map(|m| m.width + 2 * QUIET).sum();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 {side} {total}\" width=\"{}\" height=\"{}\" shape-rendering=\"crispEdges\">\n<rect x=\"0\" y=\"0\" width=\"{side}\" height=\"{total}\" fill=\"#fff\"/>\n",
        side * 8,
        total * 8
    );
    let mut top = 0;
    for m in codes {
        let own = m.width + 2 * QUIET;
        for y in 0..own {
            for x in 0..own {
                if m.at(x, y) {
                    s.push_str(&format!(
                        "<rect x=\"{x}\" y=\"{}\" width=\"1\" height=\"1\" fill=\"#000\"/>\n",
                        top + y
                    ));
                }
            }
        }
        top += own;
    }
    s.push_str("</svg>\n");
    s
}
