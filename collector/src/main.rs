//! `o365collector`: see the crate docs in lib.rs.

fn main() {
    eprintln!("o365collector: the collector is not built yet (issue 5/10)");
    std::process::exit(2);
}
