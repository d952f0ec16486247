//! `tijori-loadtest`: parse the flags, run (set-up, load, audit), print the
//! text report on stdout, write the JSON/HTML reports, and exit 0 (clean),
//! 1 (the audit found problems) or 2 (the run could not be done).

use clap::Parser;
use std::process::ExitCode;
use tijori_loadtest::config::Config;

fn main() -> ExitCode {
    let cfg = Config::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tijori-loadtest: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match runtime.block_on(tijori_loadtest::run(&cfg)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tijori-loadtest: {e:#}");
            return ExitCode::from(2);
        }
    };
    print!("{}", outcome.text());
    if let Err(e) = outcome.write_files(&cfg) {
        eprintln!("tijori-loadtest: {e:#}");
        return ExitCode::from(2);
    }
    if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
