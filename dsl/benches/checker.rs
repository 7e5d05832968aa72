//! Checks and compiles generated tables: 1,000 partitions with 10,000 windows (the issue's
//! benchmark), and 2,000 / 4,000 partitions to show the checker scales linearly.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use parseltongue::compile::compile_source;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("check_and_compile");
    group.sample_size(10);
    for partitions in [1_000usize, 2_000, 4_000] {
        // 200 cores, each shared by partitions/200 partitions with 10 windows each.
        let source = parseltongue::generate::table(partitions, partitions / 200, 10, true);
        group.throughput(Throughput::Elements(partitions as u64));
        group.bench_with_input(BenchmarkId::new("check", partitions), &source, |b, s| {
            b.iter(|| {
                let parsed = parseltongue::parser::parse(s);
                let diags = parseltongue::check::check(&parsed.file);
                assert!(diags.is_empty());
            })
        });
        group.bench_with_input(BenchmarkId::new("check+compile+to_bytes", partitions), &source, |b, s| {
            b.iter(|| {
                let compiled = compile_source(s);
                compiled.model.expect("valid").to_bytes()
            })
        });
    }
    // The error path: every window names an unknown partition (10,000 diagnostics with
    // did-you-mean searches) and every partition shares core 0 and cache way 0.
    let broken = parseltongue::generate::table(1_000, 5, 10, true)
        .replace("window p", "window q")
        .replace("    llc_ways ", "    llc_ways 0, ");
    group.bench_function("check_with_errors/1000", |b| {
        b.iter(|| {
            let parsed = parseltongue::parser::parse(&broken);
            let diags = parseltongue::check::check(&parsed.file);
            assert!(diags.len() > 10_000);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
