//! `axon`: see the `axon_server` library for the layout.

// glibc's malloc was a tenth of the server's CPU under the Matrix load
// (arena lock hand-offs between worker threads included), but mimalloc
// holds more memory per idle QUIC connection; see docs/benchmarks.md for
// the figures with each allocator. The `mimalloc` feature is on by default.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    axon_server::commands::main()
}
