//! The `vmjit` command line: a thin layer over `engine` that parses options, loads the
//! program, runs it and turns the outcome into messages and an exit status.
//!
//! **Invariants.** Guest stdout/stderr go straight to fds 1/2 (the engine writes them);
//! vmjit's own output is only on stderr: one-line errors (`vmjit: ...`), the guest's end
//! when it is not a normal exit, and `--stats`. The exit status is the guest's (128+N for
//! a signal). Bad input ends with exit status 1 and one line; nothing panics.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

/// Run static riscv64 Linux programs (RV64GC, `riscv64-linux-gnu-gcc -static`) on this
/// host, as qemu-riscv64 does, with a JIT backed by a unified code cache.
#[derive(Parser, Debug)]
#[command(
    name = "vmjit",
    version,
    propagate_version = true,
    after_help = "Examples:\n  \
        vmjit run guests/bin/hello a b c         run a guest with three arguments\n  \
        vmjit run --stats guests/bin/coremark    ... and report instructions, blocks, speed\n  \
        vmjit run --trace --max-insns 50 prog    show the first 50 instructions executed\n\n\
        See `vmjit run --help` for every option."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a static riscv64 Linux executable.
    ///
    /// The guest gets PROGRAM and ARGS as its argv, vmjit's environment, and vmjit's
    /// standard input, output and error. vmjit exits with the guest's exit status (128+N
    /// when the guest is killed by signal N: 139 for a segmentation fault, 132 for an
    /// illegal instruction).
    #[command(arg_required_else_help = true)]
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Execution engine: `interp` interprets every instruction; `jit` translates hot code
    /// to native code (not available yet).
    #[arg(long, value_enum, default_value_t = Engine::Interp)]
    engine: Engine,

    /// After the run, print instructions retired, basic blocks executed, wall time and
    /// millions of instructions per second to stderr.
    #[arg(long)]
    stats: bool,

    /// Print every executed instruction (address, encoding, disassembly) to stderr
    /// before it runs. Slow: every instruction is decoded and executed one at a time.
    #[arg(long)]
    trace: bool,

    /// Stop the guest after N instructions (exit status 124, like timeout(1)).
    #[arg(long, value_name = "N")]
    max_insns: Option<u64>,

    /// The static riscv64 executable to run.
    #[arg(value_name = "PROGRAM")]
    program: PathBuf,

    /// Arguments passed to the guest verbatim (also ones starting with `-`).
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// The interpreter (reference semantics).
    Interp,
    /// The JIT compiler (not available yet).
    Jit,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the context chain on one line: `<program>: <reason>`.
            say(format_args!("vmjit: {e:#}"));
            ExitCode::from(1)
        }
    }
}

/// Writes one line to stderr. Unlike `eprintln!`, a broken stderr (a closed pipe) is
/// ignored instead of panicking: the exit status still tells how the guest ended.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Runs the guest; `Err` is a problem before the guest started (one line, status 1).
fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.engine == Engine::Jit {
        anyhow::bail!("the JIT engine is not available yet; use --engine interp");
    }
    let env = engine::host_environment();
    let mut vm = engine::Vm::load(&args.program, &args.args, &env)
        .with_context(|| args.program.display().to_string())?;
    vm.set_max_insns(args.max_insns);
    vm.set_trace(args.trace);
    let out = vm.run();
    if let Some(msg) = out.exit.message() {
        say(format_args!("{msg}"));
    }
    if args.stats {
        let secs = out.wall.as_secs_f64();
        let mips = if secs > 0.0 {
            out.instructions as f64 / secs / 1e6
        } else {
            0.0
        };
        say(format_args!(
            "vmjit: instructions retired: {}",
            out.instructions
        ));
        say(format_args!("vmjit: basic blocks executed: {}", out.blocks));
        say(format_args!("vmjit: wall time: {secs:.3} s"));
        say(format_args!("vmjit: speed: {mips:.1} M instructions/s"));
    }
    Ok(ExitCode::from(out.exit.exit_code().clamp(0, 255) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn guest_arguments_starting_with_dashes_are_passed_verbatim() {
        let cli =
            Cli::try_parse_from(["vmjit", "run", "--stats", "prog", "-x", "--trace", "y"]).unwrap();
        let Command::Run(r) = cli.command;
        assert!(r.stats);
        assert!(!r.trace);
        assert_eq!(r.program, PathBuf::from("prog"));
        assert_eq!(
            r.args,
            vec![OsString::from("-x"), "--trace".into(), "y".into()]
        );
    }
}
