#![forbid(unsafe_code)]

// mimalloc instead of glibc's malloc: per-thread free lists without arena locks. Requests
// allocate small, short-lived objects on every worker thread; glibc's arena locks showed up as
// futex waits in `perf` under load (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
