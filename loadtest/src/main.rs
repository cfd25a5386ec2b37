//! `leadx-loadtest`: parses the command line and hands over to the library.

use clap::Parser;

fn main() {
    let cli = leadx_loadtest::cli::Cli::parse();
    if let Err(e) = leadx_loadtest::cli::main_with(cli) {
        eprintln!("leadx-loadtest: {e}");
        std::process::exit(e.exit_code());
    }
}
