//! `status --prometheus FILE`: the report's figures in the Prometheus text
//! format (exposition format 0.0.4), for node_exporter's textfile
//! collector.

use crate::policy::status::{SourceReport, StatusReport};

/// A label value, escaped for the Prometheus text format.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The text, metric by metric.
struct Out(String);

impl Out {
    fn metric(&mut self, name: &str, help: &str, samples: Vec<(String, f64)>) {
        self.0
            .push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, x) in samples {
            self.0.push_str(&format!("{name}{labels} {x}\n"));
        }
    }
}

/// One sample per source that has the figure `f`.
fn per(sources: &[SourceReport], f: &dyn Fn(&SourceReport) -> Option<f64>) -> Vec<(String, f64)> {
    sources
        .iter()
        .filter_map(|s| Some((format!("{{source=\"{}\"}}", label(&s.source)), f(s)?)))
        .collect()
}

/// Seconds since 1970 of an RFC 3339 time.
fn timestamp(t: &str) -> Option<f64> {
    let ts = humantime::parse_rfc3339(t).ok()?;
    Some(ts.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as f64)
}

/// The report as Prometheus text.
pub fn text(r: &StatusReport) -> String {
    let mut out = Out(String::new());
    let s = &r.sources;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    out.metric(
        "strata_healthy",
        "1 if every source is within its maximum age",
        vec![(String::new(), flag(r.healthy))],
    );
    out.metric(
        "strata_source_snapshots",
        "Snapshots of the source",
        per(s, &|s| Some(s.snapshots as f64)),
    );
    out.metric(
        "strata_source_last_snapshot_timestamp_seconds",
        "Time of the latest snapshot of the source",
        per(s, &|s| timestamp(&s.latest.as_ref()?.time)),
    );
    out.metric(
        "strata_source_last_snapshot_age_seconds",
        "Age of the latest snapshot of the source",
        per(s, &|s| Some(s.latest.as_ref()?.age_seconds as f64)),
    );
    out.metric(
        "strata_source_stale",
        "1 if the source's latest snapshot is older than the maximum age (or missing)",
        per(s, &|s| Some(flag(s.stale))),
    );
    out.metric(
        "strata_source_logical_bytes",
        "Logical bytes of the source's snapshots, summed",
        per(s, &|s| s.logical_bytes.map(|b| b as f64)),
    );
    out.metric(
        "strata_source_stored_bytes",
        "Stored bytes of the distinct blobs of the source's snapshots",
        per(s, &|s| s.stored_bytes.map(|b| b as f64)),
    );
    out.metric(
        "strata_source_dedup_ratio",
        "Logical bytes per distinct raw byte of the source's snapshots",
        per(s, &|s| s.dedup_ratio),
    );
    retention(&mut out, s);
    out.0
}

/// What each retention rule keeps now, and the count it aims for.
fn retention(out: &mut Out, sources: &[SourceReport]) {
    let mut kept = Vec::new();
    let mut target = Vec::new();
    for s in sources {
        let src = label(&s.source);
        for r in &s.retention {
            let l = format!("{{source=\"{src}\",rule=\"{}\"}}", label(&r.rule));
            kept.push((l.clone(), r.kept as f64));
            if let Ok(n) = r.target.parse::<f64>() {
                target.push((l, n));
            }
        }
    }
    out.metric(
        "strata_source_retention_kept",
        "Snapshots a retention rule keeps now",
        kept,
    );
    out.metric(
        "strata_source_retention_target",
        "The count a retention rule aims for",
        target,
    );
}
