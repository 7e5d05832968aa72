//! Rendering 10,000 and 20,000 diagnostics (PT1002 warnings, one per 10 us window of a
//! generated schedule): the text report as the CLI prints it (first 200, then a count), every diagnostic
//! rendered (no cap, to show the cost per diagnostic is constant), and JSON.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use parseltongue::diagnostics::Report;
use parseltongue::render::{render, Style};
use parseltongue::span::LineIndex;

fn source(n: usize) -> String {
    let mut s = String::from("partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB }\n");
    s.push_str("schedule cores 0 {\n    major_frame 1 s\n");
    for i in 0..n {
        s.push_str(&format!("    window a {}..{} us\n", i * 20, i * 20 + 10));
    }
    s.push_str("}\n");
    s
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    group.sample_size(10);
    for n in [10_000usize, 20_000] {
        let src = source(n);
        let diags = parseltongue::compile::compile_source(&src).diagnostics;
        let report = Report { file_name: "many.pt", source: &src, diagnostics: &diags };
        group.bench_with_input(BenchmarkId::new("text_capped", n), &report, |b, r| {
            b.iter(|| r.render(false, 120))
        });
        group.bench_with_input(BenchmarkId::new("text_all", n), &report, |b, r| {
            b.iter(|| {
                let index = LineIndex::new(r.source);
                let style = Style { color: false, width: 120, limit: usize::MAX };
                render(r.file_name, r.source, &index, r.diagnostics, style)
            })
        });
        group.bench_with_input(BenchmarkId::new("json", n), &report, |b, r| b.iter(|| r.to_json()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
