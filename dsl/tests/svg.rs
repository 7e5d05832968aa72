//! The SVG is valid XML and draws every window of every schedule, every dedicated core,
//! every partition's cache ways and a memory bar.

use std::path::Path;

use parseltongue::compile::compile_source;

fn svg_of(config: &str) -> (hallows_abi::table::TableModel, String) {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs").join(config))
            .unwrap();
    let model = compile_source(&source).model.expect("config compiles");
    let svg = parseltongue::svg::render(&model);
    (model, svg)
}

fn check(config: &str) {
    let (model, svg) = svg_of(config);
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{config}: invalid XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let class = |n: &roxmltree::Node<'_, '_>, c: &str| n.attribute("class") == Some(c);
    let windows: Vec<_> = doc.descendants().filter(|n| class(n, "window")).collect();
    // A schedule on several cores is drawn once per core.
    let expected: usize = model.schedules.iter().map(|s| s.windows.len() * s.cores.len()).sum();
    assert_eq!(windows.len(), expected, "{config}");
    for s in &model.schedules {
        for w in &s.windows {
            let name = &model.partitions[w.partition as usize].name;
            for core in &s.cores {
                let found = windows.iter().any(|n| {
                    n.attribute("data-partition") == Some(name.as_str())
                        && n.attribute("data-core") == Some(core.to_string().as_str())
                        && n.attribute("data-offset-ns") == Some(w.offset_ns.to_string().as_str())
                        && n.attribute("data-duration-ns") == Some(w.duration_ns.to_string().as_str())
                });
                assert!(found, "{config}: window of {name} at {} on core {core} not drawn", w.offset_ns);
            }
        }
    }
    let dedicated = doc.descendants().filter(|n| class(n, "dedicated")).count();
    let scheduled: usize = model.schedules.iter().map(|s| s.cores.len()).sum();
    let used_cores = (0..parseltongue::show::core_count(&model))
        .filter(|c| model.partitions.iter().any(|p| p.cores.contains(c)))
        .count();
    assert_eq!(dedicated, used_cores - scheduled, "{config}");
    let ways = doc.descendants().filter(|n| class(n, "ways")).count();
    assert_eq!(ways, model.partitions.iter().filter(|p| p.llc_ways.is_some()).count());
    assert!(doc.descendants().filter(|n| class(n, "memory")).count() > model.partitions.len());
}

#[test]
fn demo_svg() {
    check("demo.pt");
}

#[test]
fn server_svg() {
    check("examples/two-socket-server.pt");
}

#[test]
fn scheduled_svg() {
    check("tests/scheduled.pt");
}

#[test]
fn text_is_escaped() {
    assert_eq!(parseltongue::svg::escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
}
