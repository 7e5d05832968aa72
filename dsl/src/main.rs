//! The `parseltongue` command line.

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hallows_abi::table::Table;
use parseltongue::compile::{compile_bytes, decode, Compiled};
use parseltongue::diagnostics::Report;

const EXAMPLES: &str = "\
Examples:
  parseltongue check configs/demo.pt
  parseltongue check --format json configs/demo.pt
  parseltongue compile configs/demo.pt -o table.bin
  parseltongue show configs/demo.pt
  parseltongue show --svg configs/demo.pt -o demo.svg
  parseltongue fmt --write configs/demo.pt
  parseltongue explain PT0302
  parseltongue explain manage

Exit codes: 0 ok (warnings allowed), 1 errors found, 2 usage or I/O error.";

/// Parseltongue: check, compile and draw RustHallows partition tables (.pt files).
#[derive(Parser)]
#[command(name = "parseltongue", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Rendered reports with source excerpts.
    Human,
    /// One JSON document on stdout, for editors and CI.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check a table as a whole system and report every problem.
    #[command(after_help = "Example:\n  parseltongue check configs/demo.pt")]
    Check {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Check and compile a table to the binary format the hypervisor loads.
    #[command(after_help = "Example:\n  parseltongue compile configs/demo.pt -o table.bin")]
    Compile {
        file: PathBuf,
        /// Where to write the binary table.
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Print a summary (per core what runs when, per partition memory and ways, channels),
    /// or with --svg draw it.
    #[command(
        after_help = "Examples:\n  parseltongue show configs/demo.pt\n  parseltongue show --svg configs/demo.pt -o demo.svg"
    )]
    Show {
        file: PathBuf,
        /// Draw an SVG picture instead of printing text.
        #[arg(long)]
        svg: bool,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print what a compiled table needs from the machine (cores, RAM, ESP files) as shell
    /// assignments, for scripts: `cores=N ram_mib=M images="a.elf b.elf"`.
    #[command(after_help = "Example:\n  eval \"$(parseltongue info table.bin)\"")]
    Info { table: PathBuf },
    /// Explain a diagnostic code (with an example) or a privilege (what it lets a
    /// partition do).
    #[command(after_help = "Examples:\n  parseltongue explain PT0302\n  parseltongue explain manage")]
    Explain {
        /// A code such as PT0302, or a word of `privileges` such as manage.
        topic: String,
    },
    /// Print a table in the canonical layout (or rewrite it with --write).
    #[command(
        after_help = "Examples:\n  parseltongue fmt configs/demo.pt\n  parseltongue fmt --check configs/*.pt"
    )]
    Fmt {
        files: Vec<PathBuf>,
        /// Rewrite the files in place.
        #[arg(short, long)]
        write: bool,
        /// Only report files that are not formatted (exit 1 if any).
        #[arg(long, conflicts_with = "write")]
        check: bool,
    },
}

/// Widest source line shown under a diagnostic; longer lines are elided around the span.
const EXCERPT_COLUMNS: usize = 120;

/// The file's bytes; whether they are UTF-8 is for the diagnostics to say.
fn read(path: &Path) -> Result<Vec<u8>, ExitCode> {
    std::fs::read(path).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ExitCode> {
    std::fs::write(path, bytes).map_err(|e| {
        eprintln!("error: cannot write {}: {e}", path.display());
        ExitCode::from(2)
    })
}

/// Prints the diagnostics; returns whether there were errors.
fn report(path: &Path, source: &str, compiled: &Compiled, format: Format) -> bool {
    let name = path.display().to_string();
    let r = Report { file_name: &name, source, diagnostics: &compiled.diagnostics };
    match format {
        Format::Json => println!("{}", r.to_json()),
        Format::Human => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            eprint!("{}", r.render(color, EXCERPT_COLUMNS));
        }
    }
    compiled.model.is_none()
}

fn run(cli: Cli) -> Result<(), ExitCode> {
    match cli.command {
        Command::Check { file, format } => {
            let (source, compiled) = compile_bytes(&read(&file)?);
            if report(&file, &source, &compiled, format) {
                return Err(ExitCode::from(1));
            }
        }
        Command::Compile { file, output, format } => {
            let (source, compiled) = compile_bytes(&read(&file)?);
            let failed = report(&file, &source, &compiled, format);
            let Some(model) = compiled.model.filter(|_| !failed) else { return Err(ExitCode::from(1)) };
            let bytes = model.to_bytes();
            // The hypervisor re-validates at load; refuse to write what it would refuse.
            if let Err(e) = Table::load(&bytes) {
                eprintln!("internal error: the compiled table fails the hypervisor's validation: {e}");
                return Err(ExitCode::from(1));
            }
            write(&output, &bytes)?;
            if format == Format::Human {
                eprintln!("wrote {} ({} bytes)", output.display(), bytes.len());
            }
        }
        Command::Show { file, svg, output } => {
            let (source, compiled) = compile_bytes(&read(&file)?);
            let Some(model) =
                compiled.model.as_ref().filter(|_| compiled.diagnostics.iter().all(|d| !d.is_error()))
            else {
                report(&file, &source, &compiled, Format::Human);
                return Err(ExitCode::from(1));
            };
            let text = if svg { parseltongue::svg::render(model) } else { parseltongue::show::render(model) };
            match output {
                Some(path) => write(&path, text.as_bytes())?,
                None => print!("{text}"),
            }
        }
        Command::Info { table } => {
            let bytes = read(&table)?;
            match parseltongue::info::shell_assignments(&bytes) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!("error: {}: {e}", table.display());
                    return Err(ExitCode::from(1));
                }
            }
        }
        Command::Explain { topic } => match parseltongue::explain::explain(&topic) {
            Some(text) => print!("{text}"),
            None => {
                let words: Vec<&str> = parseltongue::parser::PRIVILEGES.iter().map(|(w, _)| *w).collect();
                eprintln!(
                    "error: unknown code or privilege `{topic}` (codes look like PT0302; privileges are {})",
                    words.join(", ")
                );
                return Err(ExitCode::from(2));
            }
        },
        Command::Fmt { files, write: in_place, check } => {
            if files.is_empty() {
                eprintln!("error: give at least one file");
                return Err(ExitCode::from(2));
            }
            let mut unformatted = false;
            for file in files {
                let decoded = decode(&read(&file)?);
                if let Some(not_utf8) = decoded.not_utf8 {
                    let compiled = Compiled { diagnostics: vec![not_utf8], model: None };
                    report(&file, &decoded.text, &compiled, Format::Human);
                    unformatted = true;
                    continue;
                }
                let source = decoded.text;
                let Some(formatted) = parseltongue::fmt::format_source(&source) else {
                    eprintln!("error: {} has syntax errors; run `parseltongue check` first", file.display());
                    unformatted = true;
                    continue;
                };
                if check {
                    if formatted != source {
                        println!("{} is not formatted", file.display());
                        unformatted = true;
                    }
                } else if in_place {
                    if formatted != source {
                        write(&file, formatted.as_bytes())?;
                    }
                } else {
                    print!("{formatted}");
                }
            }
            if unformatted {
                return Err(ExitCode::from(1));
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
