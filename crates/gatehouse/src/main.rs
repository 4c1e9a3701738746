#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
