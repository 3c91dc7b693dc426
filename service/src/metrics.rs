//! Prometheus text exposition, shared by the center's and the agent's `/metrics`: the other
//! contract both keep, with whoever scrapes them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A metrics page being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// A metric family: `kind` is `counter` or `gauge`; each sample is its labels (`{a="b"}` or
    /// empty) and its value.
    pub fn family<V: std::fmt::Display>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: &[(String, V)],
    ) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.out, "{name}{labels} {value}");
        }
    }

    /// One unlabelled sample.
    pub fn single<V: std::fmt::Display>(&mut self, name: &str, kind: &str, help: &str, value: V) {
        self.family(name, kind, help, &[(String::new(), value)]);
    }

    /// A histogram.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(self.out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = h.count.load(Ordering::Relaxed);
        let _ = writeln!(self.out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ =
            writeln!(self.out, "{name}_sum {}", h.sum_ms.load(Ordering::Relaxed) as f64 / 1000.0);
        let _ = writeln!(self.out, "{name}_count {total}");
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

/// `{name="value",…}` with values escaped.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A histogram of durations in seconds, with fixed bucket bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_ms: AtomicU64,
}

impl Histogram {
    /// Buckets at `bounds` seconds (ascending).
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ms: AtomicU64::new(0),
        }
    }

    /// Records one duration of `ms` milliseconds.
    pub fn observe_ms(&self, ms: u64) {
        let seconds = ms as f64 / 1000.0;
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_histograms_and_escaped_labels_render_as_prometheus_reads_them() {
        let h = Histogram::new(&[1.0, 10.0]);
        h.observe_ms(500);
        h.observe_ms(5_000);
        h.observe_ms(50_000);
        let mut e = Exposition::default();
        e.single("x_total", "counter", "Things.", 3);
        e.family("y", "gauge", "Per camera.", &[(labels(&[("camera", "gate \"1\"")]), 1.5)]);
        e.histogram("z_seconds", "Waits.", &h);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n\
             # HELP y Per camera.\n# TYPE y gauge\ny{camera=\"gate \\\"1\\\"\"} 1.5\n\
             # HELP z_seconds Waits.\n# TYPE z_seconds histogram\n\
             z_seconds_bucket{le=\"1\"} 1\nz_seconds_bucket{le=\"10\"} 2\nz_seconds_bucket{le=\"+Inf\"} 3\n\
             z_seconds_sum 55.5\nz_seconds_count 3\n"
        );
    }
}
