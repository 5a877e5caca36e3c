//! Eddy's benchmarks live in `benches/`: run `cargo bench -p eddy-benches`. Results, with
//! the machine and the command, go to `BENCHMARKS.md` at the repository root.
