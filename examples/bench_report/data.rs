//! The results and the helpers every section uses: medians, number formats, table cells.

use serde_json::Value;
use std::collections::BTreeMap;

pub const TARGETS: [(&str, &str); 5] = [
    ("chat-server", "chat-server"),
    ("mio", "ceiling: minimal mio server"),
    ("tokio-ct", "tokio current_thread"),
    ("tokio-mt2", "tokio multi-thread, 2 workers"),
    ("peer", "PEER_BIN"),
];

pub struct Data {
    pub recs: Vec<Value>,
    pub meta: BTreeMap<String, String>,
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// 1234567 → "1.23 M", 45678 → "45.7 k".
pub fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

pub fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} ms")
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

pub fn size_label(n: usize) -> String {
    if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

impl Data {
    pub fn meta(&self, k: &str) -> &str {
        self.meta.get(k).map_or("?", String::as_str)
    }

    pub fn list(&self, k: &str) -> Vec<usize> {
        self.meta(k)
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    }

    pub fn targets(&self) -> Vec<(&'static str, &'static str)> {
        TARGETS
            .iter()
            .copied()
            .filter(|(t, _)| self.recs.iter().any(|r| r["target"] == *t))
            .collect()
    }

    pub fn find<'a>(
        &'a self,
        target: &'a str,
        run: &'a str,
        scenario: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.recs
            .iter()
            .filter(move |r| r["target"] == target && r["run"] == run && r["scenario"] == scenario)
    }

    /// Median of `f` over the records, with the number of values.
    pub fn med(
        &self,
        target: &str,
        run: &str,
        scenario: &str,
        keep: impl Fn(&Value) -> bool,
        f: impl Fn(&Value) -> Option<f64>,
    ) -> (Option<f64>, usize) {
        let v: Vec<f64> = self
            .find(target, run, scenario)
            .filter(|r| keep(r))
            .filter_map(&f)
            .collect();
        let n = v.len();
        (median(v), n)
    }

    pub fn knee(&self, target: &str, run: &str, size: usize) -> (Option<f64>, usize) {
        self.med(
            target,
            run,
            "knee",
            |r| r["size"] == size,
            |r| num(&r["knee_dps"]).filter(|&k| k > 0.0),
        )
    }

    pub fn fixed(
        &self,
        target: &str,
        run: &str,
        size: usize,
        load: f64,
        f: impl Fn(&Value) -> Option<f64>,
    ) -> (Option<f64>, usize) {
        self.med(
            target,
            run,
            "fixed",
            |r| r["size"] == size && num(&r["offered_dps"]) == Some(load),
            f,
        )
    }

    pub fn idle(&self, target: &str, run: &str, size: usize) -> (Option<f64>, usize) {
        self.med(
            target,
            run,
            "setup",
            |r| r["size"] == size && r["ok"] == true,
            |r| num(&r["rss_bytes_per_conn"]),
        )
    }
}

pub fn cell(v: (Option<f64>, usize), fmt: impl Fn(f64) -> String, reps: usize) -> String {
    match v {
        (Some(x), n) if n < reps => format!("{} (n={n})", fmt(x)),
        (Some(x), _) => fmt(x),
        (None, _) => "–".into(),
    }
}
