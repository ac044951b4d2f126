//! The `strata` binary: parse, run, map the outcome to an exit code.
fn main() {
    std::process::exit(strata::cli::main());
}
