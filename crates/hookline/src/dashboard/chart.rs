//! Per-config charts of success rate and latency over time: inline SVG drawn on the server
//! (no chart library, no script). Colours come from classes styled in `assets/app.css`.

use std::fmt::Write;

use super::html::esc;
use crate::model::Millis;
use crate::store::AttemptBucket;

/// A chart window: its name in the query string, its label, bucket size and bucket count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub name: &'static str,
    pub label: &'static str,
    pub bucket_ms: i64,
    pub buckets: u32,
}

pub const RANGES: [Range; 3] = [
    Range {
        name: "1h",
        label: "last hour",
        bucket_ms: 60_000,
        buckets: 60,
    },
    Range {
        name: "24h",
        label: "last 24 hours",
        bucket_ms: 30 * 60_000,
        buckets: 48,
    },
    Range {
        name: "7d",
        label: "last 7 days",
        bucket_ms: 3 * 3_600_000,
        buckets: 56,
    },
];

impl Range {
    pub fn parse(name: Option<&str>) -> Range {
        RANGES
            .into_iter()
            .find(|r| Some(r.name) == name)
            .unwrap_or(RANGES[0])
    }

    /// The window's start: buckets end at the next bucket boundary after `now`.
    pub fn since(&self, now: Millis) -> Millis {
        let end = (now / self.bucket_ms + 1) * self.bucket_ms;
        end - self.bucket_ms * i64::from(self.buckets)
    }
}

// The view box is about the size the chart is drawn at (half the page), so text stays legible.
const W: f64 = 480.0;
const H: f64 = 170.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 468.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 140.0;

/// The two charts and a one-line summary of the window.
pub fn render(range: Range, since: Millis, buckets: &[AttemptBucket]) -> String {
    let total: u64 = buckets.iter().map(|b| b.attempts).sum();
    let ok: u64 = buckets.iter().map(|b| b.succeeded).sum();
    let total_ms: u64 = buckets.iter().map(|b| b.total_ms).sum();
    let max_ms = buckets.iter().map(|b| b.max_ms).max().unwrap_or(0);
    let mut out = String::new();
    if total == 0 {
        let _ = write!(
            out,
            "<p class=\"summary\" data-attempts=\"0\">No delivery attempts in the {}.</p>",
            range.label
        );
    } else {
        let _ = write!(
            out,
            "<p class=\"summary\" data-attempts=\"{total}\"><b>{total}</b> attempts in the {}, \
             <b>{}</b> succeeded; latency average <b>{} ms</b>, slowest <b>{max_ms} ms</b>.</p>",
            range.label,
            percent(ok, total),
            total_ms / total,
        );
    }
    out.push_str("<div class=\"charts\"><figure><figcaption>Success rate</figcaption>");
    out.push_str(&success_chart(range, since, buckets));
    out.push_str("</figure><figure><figcaption>Latency (ms): <span class=\"key avg\">average</span> <span class=\"key max\">slowest</span></figcaption>");
    out.push_str(&latency_chart(range, since, buckets));
    out.push_str("</figure></div>");
    out
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if p > 99.5 && part < whole {
        "99.5 %".to_owned()
    } else {
        format!("{:.0} %", p)
    }
}

fn slot_width(range: Range) -> f64 {
    (RIGHT - LEFT) / f64::from(range.buckets)
}

fn bucket_title(range: Range, since: Millis, b: &AttemptBucket) -> String {
    let start = since + range.bucket_ms * i64::from(b.index);
    let avg = b.total_ms.checked_div(b.attempts).unwrap_or(0);
    esc(&format!(
        "{} – {} UTC: {} attempts, {} succeeded ({}), average {} ms, slowest {} ms",
        label_time(range, start, true),
        label_time(range, start + range.bucket_ms, false),
        b.attempts,
        b.succeeded,
        percent(b.succeeded, b.attempts),
        avg,
        b.max_ms
    ))
}

fn label_time(range: Range, ms: Millis, with_date: bool) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return String::new();
    };
    if with_date || range.bucket_ms >= 3_600_000 {
        t.format("%m-%d %H:%M").to_string()
    } else {
        t.format("%H:%M").to_string()
    }
}

fn svg_open(out: &mut String, class: &str, label: &str) {
    let _ = write!(
        out,
        "<svg class=\"chart {class}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" \
         preserveAspectRatio=\"xMidYMid meet\">",
        esc(label)
    );
}

/// Horizontal grid lines with their labels, and the time axis.
fn axes(out: &mut String, range: Range, since: Millis, ticks: &[(f64, String)]) {
    for (y, label) in ticks {
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{RIGHT}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            esc(label)
        );
    }
    let n = range.buckets;
    for i in [0, n / 4, n / 2, 3 * n / 4, n] {
        let x = LEFT + slot_width(range) * f64::from(i);
        let anchor = match i {
            0 => "start",
            i if i == n => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            "<line class=\"tick\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{BOTTOM}\" y2=\"{:.1}\"/>\
             <text class=\"axis\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            BOTTOM + 4.0,
            BOTTOM + 18.0,
            esc(&label_time(
                range,
                since + range.bucket_ms * i64::from(i),
                false
            ))
        );
    }
}

fn success_chart(range: Range, since: Millis, buckets: &[AttemptBucket]) -> String {
    let mut out = String::new();
    svg_open(
        &mut out,
        "success",
        &format!("Success rate of attempts per interval, {}", range.label),
    );
    let y = |rate: f64| BOTTOM - (BOTTOM - TOP) * rate;
    axes(
        &mut out,
        range,
        since,
        &[
            (y(0.0), "0 %".into()),
            (y(0.5), "50 %".into()),
            (y(1.0), "100 %".into()),
        ],
    );
    let slot = slot_width(range);
    let gap = (slot * 0.15).min(2.0);
    for b in buckets.iter().filter(|b| b.attempts > 0) {
        let rate = b.succeeded as f64 / b.attempts as f64;
        let class = if b.succeeded == b.attempts {
            "good"
        } else if rate >= 0.5 {
            "warn"
        } else {
            "bad"
        };
        let x = LEFT + slot * f64::from(b.index) + gap / 2.0;
        // A bucket with only failures still shows a sliver, so it is not mistaken for no data.
        let top = y(rate).min(BOTTOM - 2.0);
        let _ = write!(
            out,
            "<rect class=\"bar {class}\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{:.1}\" \
             height=\"{:.1}\"><title>{}</title></rect>",
            (slot - gap).max(1.0),
            BOTTOM - top,
            bucket_title(range, since, b)
        );
    }
    out.push_str("</svg>");
    out
}

/// The smallest of 1, 2, 5 × 10^k that is at least `v`.
fn nice_ceiling(v: u64) -> u64 {
    let mut scale = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * scale >= v {
                return m * scale;
            }
        }
        scale = scale.saturating_mul(10);
        if scale == u64::MAX {
            return v;
        }
    }
}

fn latency_chart(range: Range, since: Millis, buckets: &[AttemptBucket]) -> String {
    let mut out = String::new();
    svg_open(
        &mut out,
        "latency",
        &format!(
            "Average and slowest attempt latency per interval, {}",
            range.label
        ),
    );
    let top_ms = nice_ceiling(buckets.iter().map(|b| b.max_ms).max().unwrap_or(0).max(10));
    let y = |ms: u64| BOTTOM - (BOTTOM - TOP) * (ms as f64 / top_ms as f64);
    axes(
        &mut out,
        range,
        since,
        &[
            (y(0), "0".into()),
            (y(top_ms / 2), (top_ms / 2).to_string()),
            (y(top_ms), top_ms.to_string()),
        ],
    );
    let slot = slot_width(range);
    let center = |index: u32| LEFT + slot * (f64::from(index) + 0.5);
    // The average as a line through consecutive intervals that have attempts.
    let mut segment: Vec<String> = Vec::new();
    let mut last: Option<u32> = None;
    let mut lines = String::new();
    let flush = |segment: &mut Vec<String>, lines: &mut String| {
        if segment.len() > 1 {
            let _ = write!(
                lines,
                "<polyline class=\"avg\" points=\"{}\"/>",
                segment.join(" ")
            );
        }
        segment.clear();
    };
    for b in buckets.iter().filter(|b| b.attempts > 0) {
        if last.is_some_and(|l| l + 1 != b.index) {
            flush(&mut segment, &mut lines);
        }
        let avg = b.total_ms / b.attempts;
        segment.push(format!("{:.1},{:.1}", center(b.index), y(avg)));
        last = Some(b.index);
    }
    flush(&mut segment, &mut lines);
    out.push_str(&lines);
    for b in buckets.iter().filter(|b| b.attempts > 0) {
        let x = center(b.index);
        let half = (slot * 0.35).clamp(1.5, 5.0);
        let avg = b.total_ms / b.attempts;
        let _ = write!(
            out,
            "<g class=\"point\"><title>{}</title>\
             <line class=\"max\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
             <circle class=\"avg\" cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3\"/></g>",
            bucket_title(range, since, b),
            x - half,
            x + half,
            y(b.max_ms),
            y(b.max_ms),
            y(avg),
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceiling_rounds_up_to_1_2_5() {
        assert_eq!(nice_ceiling(10), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(201), 500);
        assert_eq!(nice_ceiling(501), 1000);
    }

    #[test]
    fn a_window_ends_at_the_next_bucket_boundary() {
        let r = Range::parse(Some("1h"));
        let since = r.since(90_500);
        assert_eq!(since + r.bucket_ms * i64::from(r.buckets), 120_000);
        assert_eq!(Range::parse(Some("nonsense")), RANGES[0]);
    }

    #[test]
    fn bars_and_points_for_buckets_with_attempts_only() {
        let r = RANGES[0];
        let buckets = [
            AttemptBucket {
                index: 3,
                attempts: 4,
                succeeded: 3,
                total_ms: 40,
                max_ms: 25,
            },
            AttemptBucket {
                index: 4,
                attempts: 2,
                succeeded: 0,
                total_ms: 10,
                max_ms: 6,
            },
        ];
        let svg = render(r, 0, &buckets);
        assert_eq!(svg.matches("<rect class=\"bar").count(), 2);
        assert!(svg.contains("bar warn"), "{svg}");
        assert!(svg.contains("bar bad"), "{svg}");
        assert_eq!(svg.matches("<circle class=\"avg\"").count(), 2);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("data-attempts=\"6\""));
        assert!(svg.contains("<b>50 %</b> succeeded"), "{svg}");
        assert!(render(r, 0, &[]).contains("No delivery attempts"));
    }
}
