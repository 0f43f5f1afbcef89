//! Flags: generator saturation, skipped runs, failed setups, disconnects.

use crate::Ctx;
use serde_json::Value;
use std::fmt::Write as _;

/// Everything that qualifies a figure above.
pub fn flags(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    // Flags.
    let _ = writeln!(s, "\n## Flags\n");
    let mut any = false;
    for r in &d.recs {
        let steps: Vec<&Value> = match r["scenario"].as_str() {
            Some("knee") => r["steps"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            Some("fixed") => vec![r],
            Some("stalled" | "rest" | "churn" | "overload") => vec![&r["step"]],
            _ => Vec::new(),
        };
        let sat = steps
            .iter()
            .filter(|st| st["gen_saturated"] == true)
            .count();
        if sat > 0 {
            any = true;
            let _ = writeln!(
                s,
                "- † generator saturated in {sat} step(s): {} / {} / {} at {} clients, rep {}",
                r["target"].as_str().unwrap_or("?"),
                r["run"].as_str().unwrap_or("?"),
                r["scenario"].as_str().unwrap_or("?"),
                r["size"],
                r["rep"].as_str().unwrap_or("?")
            );
        }
        if r["scenario"] == "skipped" {
            any = true;
            let _ = writeln!(
                s,
                "- skipped for the time budget: {} / {} rep {} ({} s left, about {} s needed)",
                r["target"].as_str().unwrap_or("?"),
                r["run"].as_str().unwrap_or("?"),
                r["rep"].as_str().unwrap_or("?"),
                r["left_s"],
                r["estimate_s"]
            );
        }
        if r["scenario"] == "setup" && r["ok"] == false {
            any = true;
            let _ = writeln!(
                s,
                "- setup failed: {} / {} at {} clients, rep {}: {} joined, errors {}",
                r["target"].as_str().unwrap_or("?"),
                r["run"].as_str().unwrap_or("?"),
                r["size"],
                r["rep"].as_str().unwrap_or("?"),
                r["joined"],
                r["errors"]
            );
        }
        if r["scenario"] == "end"
            && (r["aborted"] == true || r["disconnects"].as_u64().unwrap_or(0) > 0)
        {
            any = true;
            let _ = writeln!(
                s,
                "- {} / {} rep {}: {}{} client disconnects, errors {}",
                r["target"].as_str().unwrap_or("?"),
                r["run"].as_str().unwrap_or("?"),
                r["rep"].as_str().unwrap_or("?"),
                if r["aborted"] == true {
                    "stopped at its time limit; "
                } else {
                    ""
                },
                r["disconnects"],
                r["errors"]
            );
        }
    }
    if !any {
        let _ = writeln!(
            s,
            "None: no generator saturation, skipped run, failed setup or disconnect."
        );
    }
    let _ = writeln!(
        s,
        "\nRaw results (one JSON object per scenario) are kept under `target/bench/` by the run."
    );
}
