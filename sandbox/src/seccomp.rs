//! seccomp-bpf: install a filter compiled (at build time, from a policy file in
//! `policies/seccomp/`) into raw BPF instructions.

use seccompiler::sock_filter;

/// One BPF instruction as `(code, jt, jf, k)`, the form build scripts emit.
pub type Instruction = (u16, u8, u8, u32);

/// Why the filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The program is empty.
    #[error("the seccomp program is empty (build problem)")]
    Empty,
    /// The kernel refused it.
    #[error("installing the seccomp filter failed: {0}")]
    Install(#[from] seccompiler::Error),
}

/// Install `program` for the calling thread (sets no-new-privs first). Call it last in
/// start-up, single-threaded, after the panic hook.
///
/// # Errors
/// [`SeccompError`].
pub fn install(program: &[Instruction]) -> Result<(), SeccompError> {
    if program.is_empty() {
        return Err(SeccompError::Empty);
    }
    let bpf: Vec<sock_filter> = program
        .iter()
        .map(|&(code, jt, jf, k)| sock_filter { code, jt, jf, k })
        .collect();
    seccompiler::apply_filter(&bpf)?;
    Ok(())
}
