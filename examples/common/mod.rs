//! What the examples share: where each keeps its data (the embedded sled store in
//! `./ledgerflow-examples/NAME` by default, memory with `--memory`) and how to look at it
//! afterwards with the `ledgerflow` command.

// Each example uses the part of this module it needs.
#![allow(dead_code)]

use std::path::PathBuf;

use ledgerflow::{RuntimeBuilder, ScheduledRuntime};

/// The store an example uses: `Some(dir)` for sled, `None` for memory (`--memory`).
pub fn store_dir(example: &str) -> Option<PathBuf> {
    if std::env::args().any(|arg| arg == "--memory") {
        println!("store: in memory (--memory): nothing is kept after the example ends");
        return None;
    }
    let dir = PathBuf::from("ledgerflow-examples").join(example);
    println!(
        "store: the embedded sled store in ./{} (run with --memory to keep nothing)",
        dir.display()
    );
    Some(dir)
}

/// A runtime builder on the example's store.
pub fn runtime(example: &str) -> (RuntimeBuilder, Option<PathBuf>) {
    let dir = store_dir(example);
    let builder = match &dir {
        Some(dir) => ScheduledRuntime::builder().sled(dir),
        None => ScheduledRuntime::builder().memory(),
    };
    (builder, dir)
}

/// Tells the reader how to look at what the example left in its store.
pub fn print_how_to_look(dir: Option<&PathBuf>) {
    if let Some(dir) = dir {
        let db = dir.display();
        println!("\nlook at it with the ledgerflow command (cargo install --path crates/cli, or cargo run -p ledgerflow-cli --):");
        println!("  ledgerflow --db {db} runs list");
        println!("  ledgerflow --db {db} ledger verify --all");
        println!("  ledgerflow --db {db} check");
    }
}
