//! The dpstack binary: `dpstack [EAL options] -- [dpstack options]`.
//! Everything is in [`dpstack::runtime`].

fn main() -> std::process::ExitCode {
    dpstack::runtime::main_with_apps(Vec::new())
}
