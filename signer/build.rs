//! Compile the signer's seccomp policy (policies/seccomp/cvx-signer.json: one entry per
//! system call, each with its reason) into BPF at build time, as Firecracker does; the
//! binary embeds the instructions and parses nothing at run time. The compiler is
//! cvx-sandbox's `policy` module, shared with cvx-peer.

fn main() -> Result<(), cvx_sandbox::policy::PolicyError> {
    cvx_sandbox::policy::emit("cvx-signer", &[("cvx-signer", "FILTER")])
}
