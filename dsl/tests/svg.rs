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
    // One bar per partition with ways (its class of service), and one for class 0 (the
    // hypervisor and the partitions without ways) when any partition has ways.
    let with_ways = model.partitions.iter().filter(|p| p.llc_ways.is_some()).count();
    let bars = |partition: bool| {
        doc.descendants()
            .filter(|n| class(n, "ways") && n.attribute("data-partition").is_some() == partition)
            .count()
    };
    assert_eq!(bars(true), with_ways, "{config}");
    assert_eq!(bars(false), usize::from(with_ways > 0), "{config}: the class 0 bar");
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

#[test]
fn cat_svg() {
    check("tests/cat.pt");
    let (_, svg) = svg_of("tests/cat.pt");
    assert!(svg.contains("class of service 0 (the hypervisor, rogue_pqr): ways 8-10 of 11"), "{svg}");
    assert!(svg.contains("sensor: class of service 2, ways 2-4 of 11"));
}

/// Under CDP a partition's code ways get a bar of their own; the hypervisor's ways, when
/// the table gives them, are drawn as given.
#[test]
fn code_ways_and_hypervisor_ways_are_drawn() {
    let source = "platform { llc_ways 12; cdp }\nhypervisor { llc_ways 10-11 }\n\
        partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB; llc_ways 0-1; llc_code_ways 2-3; memory_bandwidth 40 percent }\n\
        partition b { kind rt; image \"b.elf\"; cores 1; memory 4 MiB }\n";
    let compiled = compile_source(source);
    let model = compiled.model.unwrap_or_else(|| panic!("{:?}", compiled.diagnostics));
    let svg = parseltongue::svg::render(&model);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let code: Vec<_> = doc.descendants().filter(|n| n.attribute("class") == Some("ways code")).collect();
    assert_eq!(code.len(), 1);
    assert_eq!(code[0].attribute("data-partition"), Some("a"));
    assert!(svg.contains("a: class of service 1, data ways 0-1 of 12, 40% memory bandwidth"), "{svg}");
    assert!(svg.contains("a: class of service 1, code ways 2-3 of 12"));
    assert!(svg.contains("class of service 0 (the hypervisor, b): ways 10-11 of 12"));
}
