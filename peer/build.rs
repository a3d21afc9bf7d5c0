//! Compile the peer's seccomp policy (policies/seccomp/cvx-peer.json: one entry per
//! system call, each with its reason) into BPF at build time, with the same compiler as
//! the signer (cvx-sandbox's `policy` module); the binary parses nothing at run time.

fn main() -> Result<(), cvx_sandbox::policy::PolicyError> {
    cvx_sandbox::policy::emit(
        "cvx-peer",
        &[("cvx-peer", "FILTER"), ("cvx-peer-clone3", "CLONE3_FILTER")],
    )
}
