//! The `restarts COUNT per DURATION` partition setting: checked against the ABI's ranges,
//! compiled into the table's restart fields, kept by `fmt` and printed by `show`.

use hallows_abi::table::{RestartBudget, Table, MAX_RESTART_LIMIT};
use parseltongue::compile::compile_source;
use parseltongue::diagnostics::Code;

fn table(restarts: &str) -> String {
    format!(
        "partition a {{\n    kind rt\n    image \"a.elf\"\n    cores 0\n    memory 4 MiB\n    {restarts}\n}}\n\
         partition b {{ kind rt; image \"b.elf\"; cores 1; memory 4 MiB }}\n"
    )
}

/// The diagnostics of a table with `restarts` on partition `a`, as (code, span text).
fn problems(restarts: &str) -> Vec<(Code, String)> {
    let src = table(restarts);
    compile_source(&src)
        .diagnostics
        .iter()
        .map(|d| (d.code, src[d.span.start..d.span.end].to_string()))
        .collect()
}

#[test]
fn budgets_compile_into_the_table() {
    for (setting, limit, window_ms) in [
        ("restarts 5 per 2500 ms", 5, 2_500),
        ("restarts 1 per 1 ms", 1, 1),
        ("restarts 16 per 1 s", 16, 1_000),
        ("restarts 3 per 3600 s", 3, 3_600_000),
    ] {
        let compiled = compile_source(&table(setting));
        assert!(compiled.diagnostics.is_empty(), "{setting}: {:?}", compiled.diagnostics);
        let bytes = compiled.model.unwrap().to_bytes();
        let t = Table::load(&bytes).unwrap();
        assert_eq!(t.restart_budget(0), RestartBudget { limit, window_ms }, "{setting}");
        assert_eq!(t.restart_budget(1), RestartBudget::default(), "no setting: the default");
    }
}

#[test]
fn budgets_out_of_range_are_refused_with_their_span() {
    let over = format!("restarts {} per 10 s", MAX_RESTART_LIMIT + 1);
    assert_eq!(problems(&over), vec![(Code::RestartBudgetBad, "17".to_string())]);
    assert_eq!(problems("restarts 0 per 10 s"), vec![(Code::RestartBudgetBad, "0".to_string())]);
    assert_eq!(problems("restarts 3 per 3601 s"), vec![(Code::RestartBudgetBad, "3601 s".to_string())]);
    assert_eq!(problems("restarts 3 per 999 us"), vec![(Code::RestartBudgetBad, "999 us".to_string())]);
    assert_eq!(problems("restarts 3 per 1500 us"), vec![(Code::RestartBudgetBad, "1500 us".to_string())]);
    assert_eq!(
        problems("restarts 99 per 0 ms"),
        vec![(Code::RestartBudgetBad, "99".to_string()), (Code::RestartBudgetBad, "0 ms".to_string())]
    );
}

#[test]
fn malformed_budgets_are_syntax_errors_with_hints() {
    for (setting, code) in [
        ("restarts 3", Code::UnexpectedToken),
        ("restarts 3 per", Code::UnexpectedToken),
        ("restarts 3 per 10", Code::UnknownUnit),
        ("restarts three per 10 s", Code::UnexpectedToken),
        ("restarts 3 every 10 s", Code::UnexpectedToken),
    ] {
        let src = table(setting);
        let diags = compile_source(&src).diagnostics;
        assert_eq!(diags.len(), 1, "{setting}: {diags:?}");
        assert_eq!(diags[0].code, code, "{setting}");
        assert!(
            diags[0]
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("restarts 3 per 10 s") || h.contains("10 ms")),
            "{setting}: {:?}",
            diags[0].hint
        );
    }
}

#[test]
fn fmt_keeps_the_budget_and_show_prints_it() {
    let src = "partition a { restarts 4 per 1500 ms; kind rt; image \"a.elf\"; cores 0; memory 4 MiB }\n";
    let formatted = parseltongue::fmt::format_source(src).unwrap();
    assert!(formatted.contains("    memory 4 MiB\n    restarts 4 per 1500 ms\n}"), "{formatted}");
    assert_eq!(parseltongue::fmt::format_source(&formatted).as_deref(), Some(formatted.as_str()));
    let original = compile_source(src).model.unwrap().to_bytes();
    assert_eq!(compile_source(&formatted).model.unwrap().to_bytes(), original);
    let shown = parseltongue::show::render(&compile_source(src).model.unwrap());
    assert!(shown.contains("restarts 4 per 1500 ms"), "{shown}");
}
