//! `o365probe`: see the crate docs in lib.rs.

fn main() {
    eprintln!("o365probe: the agent is not built yet (issue 4/10)");
    std::process::exit(2);
}
