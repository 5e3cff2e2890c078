//! `axon`: see the `axon_server` library for the layout.

fn main() -> std::process::ExitCode {
    axon_server::commands::main()
}
