//! `parseltongue show --svg`: the major frames as a timeline per core, the cache ways and
//! the memory map as bars.

use std::fmt::Write;

use hallows_abi::table::{TableModel, PLATFORM_CDP};

use crate::show::{approx_size, core_count, duration};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 110.0;
const BAR: f64 = WIDTH - LEFT - 20.0;
const ROW: f64 = 24.0;
const PALETTE: &[&str] = &[
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#bab0ac",
];

/// Escapes text for XML content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn color(partition: u32) -> &'static str {
    PALETTE[partition as usize % PALETTE.len()]
}

struct Canvas {
    body: String,
    y: f64,
}

impl Canvas {
    fn heading(&mut self, text: &str) {
        self.y += 28.0;
        let _ = writeln!(
            self.body,
            r#"<text x="10" y="{:.1}" font-weight="bold">{}</text>"#,
            self.y,
            escape(text)
        );
        self.y += 10.0;
    }

    fn label(&mut self, text: &str) {
        let _ = writeln!(self.body, r#"<text x="10" y="{:.1}">{}</text>"#, self.y + 16.0, escape(text));
    }

    #[allow(clippy::too_many_arguments)]
    fn rect(&mut self, class: &str, x: f64, w: f64, fill: &str, text: &str, title: &str, data: &str) {
        let w = w.max(1.0);
        let _ = writeln!(
            self.body,
            r#"<g class="{class}"{data}><rect x="{x:.2}" y="{:.1}" width="{w:.2}" height="{:.1}" fill="{fill}" stroke="white"><title>{}</title></rect>"#,
            self.y,
            ROW - 4.0,
            escape(title)
        );
        if w > 7.0 * text.len() as f64 {
            let _ = write!(
                self.body,
                r#"<text x="{:.2}" y="{:.1}" fill="white">{}</text>"#,
                x + 3.0,
                self.y + 14.0,
                escape(text)
            );
        }
        let _ = writeln!(self.body, "</g>");
    }
}

/// Draws the table as an SVG document.
pub fn render(m: &TableModel) -> String {
    let mut c = Canvas { body: String::new(), y: 0.0 };
    c.heading("Cores: one major frame each (dedicated cores run one partition all the time)");
    for core in 0..core_count(m) {
        if let Some(s) = m.schedules.iter().find(|s| s.cores.contains(&core)) {
            c.label(&format!("core {core} {}", duration(s.major_frame_ns)));
            // The whole frame in grey: what no window covers is idle time.
            let _ = writeln!(
                c.body,
                r##"<rect class="frame" x="{LEFT}" y="{:.1}" width="{BAR}" height="{:.1}" fill="#eeeeee"/>"##,
                c.y,
                ROW - 4.0
            );
            let frame = s.major_frame_ns.max(1) as f64;
            for w in &s.windows {
                let x = LEFT + BAR * w.offset_ns as f64 / frame;
                let width = BAR * w.duration_ns as f64 / frame;
                let name = m.partitions.get(w.partition as usize).map_or("?", |p| p.name.as_str());
                let title = format!(
                    "core {core}: {name} {}..{} of {}",
                    duration(w.offset_ns),
                    duration(w.offset_ns + w.duration_ns),
                    duration(s.major_frame_ns)
                );
                let data = format!(
                    r#" data-core="{core}" data-partition="{}" data-offset-ns="{}" data-duration-ns="{}""#,
                    escape(name),
                    w.offset_ns,
                    w.duration_ns
                );
                c.rect("window", x, width, color(w.partition), name, &title, &data);
            }
        } else if let Some((i, p)) = m.partitions.iter().enumerate().find(|(_, p)| p.cores.contains(&core)) {
            c.label(&format!("core {core}"));
            let data = format!(r#" data-core="{core}" data-partition="{}""#, escape(&p.name));
            c.rect(
                "dedicated",
                LEFT,
                BAR,
                color(i as u32),
                &p.name,
                &format!("core {core}: {} (dedicated)", p.name),
                &data,
            );
        } else {
            c.label(&format!("core {core} unused"));
        }
        c.y += ROW;
    }
    draw_ways(m, &mut c);
    draw_memory(m, &mut c);
    let height = c.y + 30.0;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" font-family=\"monospace\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
        c.body
    )
}

/// `first-last` (or `first`) of a way block.
fn way_text(first: u8, count: u8) -> String {
    if count == 1 {
        first.to_string()
    } else {
        format!("{first}-{}", first as u32 + count as u32 - 1)
    }
}

/// One row per partition with ways (its class of service; under CDP a second bar for its
/// code ways) and one for class 0, which the hypervisor shares with the partitions
/// without ways.
fn draw_ways(m: &TableModel, c: &mut Canvas) {
    let hv = (m.platform.hv_llc_way_count != 0)
        .then_some((m.platform.hv_llc_first_way, m.platform.hv_llc_way_count));
    let blocks = m.partitions.iter().flat_map(|p| [p.llc_ways, p.llc_code_ways]).chain([hv]).flatten();
    let used = blocks.map(|(f, n)| f as u32 + n as u32).max().unwrap_or(0);
    let ways = used.max(m.platform.llc_ways as u32);
    let cdp = m.platform.flags & PLATFORM_CDP != 0;
    c.heading(if cdp { "LLC ways (CAT, with code/data prioritisation)" } else { "LLC ways (CAT)" });
    if ways == 0 || m.partitions.iter().all(|p| p.llc_ways.is_none()) && hv.is_none() {
        c.label("cache ways are not partitioned in this table");
        c.y += ROW;
        return;
    }
    let x_of = |first: u8| LEFT + BAR * first as f64 / ways as f64;
    let w_of = |count: u8| BAR * count as f64 / ways as f64;
    let mut class = 0;
    for (i, p) in m.partitions.iter().enumerate() {
        let Some((first, count)) = p.llc_ways else { continue };
        class += 1;
        c.label(&format!("{} (COS {class})", p.name));
        let code = p.llc_code_ways.filter(|_| cdp);
        let mba =
            if p.mba_percent != 0 { format!(", {}% memory bandwidth", p.mba_percent) } else { String::new() };
        let (data_word, data_label) = if code.is_some() { ("data ways", "data ") } else { ("ways", "") };
        let title = format!(
            "{}: class of service {class}, {data_word} {} of {ways}{mba}",
            p.name,
            way_text(first, count)
        );
        let data = format!(r#" data-partition="{}" data-class="{class}""#, escape(&p.name));
        c.rect(
            "ways",
            x_of(first),
            w_of(count),
            color(i as u32),
            &format!("{data_label}{}", way_text(first, count)),
            &title,
            &data,
        );
        if let Some((cf, cc)) = code {
            c.y += ROW;
            c.label(&format!("{} code", p.name));
            let title =
                format!("{}: class of service {class}, code ways {} of {ways}", p.name, way_text(cf, cc));
            c.rect(
                "ways code",
                x_of(cf),
                w_of(cc),
                color(i as u32),
                &format!("code {}", way_text(cf, cc)),
                &title,
                &data,
            );
        }
        c.y += ROW;
    }
    let sharers: Vec<&str> =
        m.partitions.iter().filter(|p| p.llc_ways.is_none()).map(|p| p.name.as_str()).collect();
    let users = if sharers.is_empty() {
        "the hypervisor".to_string()
    } else {
        format!("the hypervisor, {}", sharers.join(", "))
    };
    c.label("hypervisor (COS 0)");
    match hv {
        Some((first, count)) => {
            let title = format!("class of service 0 ({users}): ways {} of {ways}", way_text(first, count));
            c.rect(
                "ways",
                x_of(first),
                w_of(count),
                "#333333",
                &way_text(first, count),
                &title,
                r#" data-class="0""#,
            );
        }
        None => {
            // The hypervisor's rule at boot: the widest run of ways no partition uses.
            let mut free = vec![true; ways as usize];
            for (f, n) in
                m.partitions.iter().flat_map(|p| [p.llc_ways, p.llc_code_ways.filter(|_| cdp)]).flatten()
            {
                for w in free.iter_mut().skip(f as usize).take(n as usize) {
                    *w = false;
                }
            }
            let (mut best, mut run) = ((0usize, 0usize), (0usize, 0usize));
            for (w, is_free) in free.iter().enumerate() {
                run = if *is_free { (if run.1 == 0 { w } else { run.0 }, run.1 + 1) } else { (0, 0) };
                if run.1 > best.1 {
                    best = run;
                }
            }
            let auto = if m.platform.llc_ways == 0 {
                " (LLC ways auto: a CPU with more ways gives it more)"
            } else {
                ""
            };
            if best.1 == 0 {
                let title = format!("class of service 0 ({users}): no way is left, so every way{auto}");
                c.rect("ways", LEFT, BAR, "#999999", "all ways (none left)", &title, r#" data-class="0""#);
            } else {
                let (first, count) = (best.0 as u8, best.1 as u8);
                let title = format!(
                    "class of service 0 ({users}): ways {} of {ways}, the widest run no partition uses{auto}",
                    way_text(first, count)
                );
                c.rect(
                    "ways",
                    x_of(first),
                    w_of(count),
                    "#333333",
                    &way_text(first, count),
                    &title,
                    r#" data-class="0""#,
                );
            }
        }
    }
    c.y += ROW;
}

fn draw_memory(m: &TableModel, c: &mut Canvas) {
    let hv = m.platform.hv_reserved_bytes.get();
    let parts: u64 = m.partitions.iter().map(|p| p.ram_bytes).sum();
    // A partition's persistent region counts with the partition (its own block).
    let parts: u64 = parts + m.partitions.iter().map(|p| p.persistent_bytes).sum::<u64>();
    let chans: u64 = m.channels.iter().map(|ch| ch.bytes).sum();
    let ram = m.platform.ram_bytes.get();
    let total = (hv + parts + chans).max(ram).max(1) as f64;
    c.heading(&if ram == 0 {
        format!("Memory: {} needed (RAM auto)", approx_size(hv + parts + chans))
    } else {
        format!("Memory: {} needed of {}", approx_size(hv + parts + chans), approx_size(ram))
    });
    c.label("memory");
    let mut x = LEFT;
    let mut segment = |c: &mut Canvas, bytes: u64, fill: &str, text: &str| {
        let w = BAR * bytes as f64 / total;
        c.rect("memory", x, w, fill, text, &format!("{text}: {}", approx_size(bytes)), "");
        x += w;
    };
    segment(c, hv, "#333333", "hypervisor");
    for (i, p) in m.partitions.iter().enumerate() {
        segment(c, p.ram_bytes, color(i as u32), &p.name);
        if p.persistent_bytes > 0 {
            segment(c, p.persistent_bytes, color(i as u32), &format!("{} (persistent)", p.name));
        }
    }
    if chans > 0 {
        segment(c, chans, "#999999", "channels");
    }
    if ram > hv + parts + chans {
        segment(c, ram - hv - parts - chans, "#dddddd", "free");
    }
    c.y += ROW;
}
