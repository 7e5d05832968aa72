//! Writes a generated table to stdout, for timing the CLI on large inputs
//! (docs/measurements.md): `cargo run --release -p parseltongue --example generate_table --
//! PARTITIONS PER_CORE WINDOWS_EACH [broken]`. `broken` turns it into the benchmark's error
//! path: every window names an unknown partition and every partition shares cache way 0.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let mut source = parseltongue::generate::table(number(0, 1000), number(1, 5), number(2, 10), true);
    if args.get(3).is_some_and(|a| a == "broken") {
        source = source.replace("window p", "window q").replace("    llc_ways ", "    llc_ways 0, ");
    }
    print!("{source}");
}
