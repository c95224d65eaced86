//! The `bifrost-workers` binary: everything it does is `cli`.

fn main() -> std::process::ExitCode {
    bifrost_workers::cli::main()
}
