//! `status --prometheus FILE`: the report's figures in the Prometheus text
//! format (exposition format 0.0.4), for node_exporter's textfile
//! collector.

use crate::policy::status::{LastReport, SourceReport, StatusReport};

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
        "1 if status finds no problem: the repository opens, every source is within its maximum \
         age, no source or step failed its last run, the last run started, the last check is \
         clean and recent, the offsite copy keeps up",
        vec![(String::new(), flag(r.healthy))],
    );
    out.metric(
        "strata_problems",
        "Problems status found (strata status lists them)",
        vec![(String::new(), r.problems.len() as f64)],
    );
    out.metric(
        "strata_repository_reachable",
        "1 if the repository could be opened and unlocked",
        vec![(String::new(), flag(r.repository_error.is_none()))],
    );
    runs(&mut out, r);
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
    drills(&mut out, s);
    offsite(&mut out, r);
    out.0
}

/// The last drill of each source.
fn drills(out: &mut Out, s: &[SourceReport]) {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    out.metric(
        "strata_source_drill_seconds",
        "The measured restore time of the source's last drill",
        per(s, &|s| Some(s.drill.as_ref()?.seconds)),
    );
    out.metric(
        "strata_source_drill_timestamp_seconds",
        "When the source's last drill started",
        per(s, &|s| timestamp(&s.drill.as_ref()?.time)),
    );
    out.metric(
        "strata_source_drill_ok",
        "1 if the source's last drill restored it within its rto and is recent; 0 if it \
         failed, was slower than the rto, or is older than twice the drill cadence",
        per(s, &|s| Some(flag(s.drill.as_ref()?.problem.is_none()))),
    );
    out.metric(
        "strata_source_drill_rto_seconds",
        "The source's recovery time objective",
        per(s, &|s| s.drill.as_ref()?.rto_seconds),
    );
}

/// The offsite copy as checked from here.
fn offsite(out: &mut Out, r: &StatusReport) {
    let Some(c) = &r.sync.check else {
        return;
    };
    let one = |x: f64| vec![(String::new(), x)];
    out.metric(
        "strata_offsite_verified_fraction",
        "Share of the offsite copy's packs read-data verified within [verification] max_age",
        one(c.coverage.fraction),
    );
    out.metric(
        "strata_offsite_damaged_packs",
        "Packs found damaged at the offsite copy and not copied again since",
        one(c.damaged_packs.len() as f64),
    );
    out.metric(
        "strata_offsite_check_last_timestamp_seconds",
        "When the offsite copy was last checked",
        c.last
            .as_ref()
            .and_then(|l| timestamp(&l.time))
            .map(one)
            .unwrap_or_default(),
    );
}

/// The time of the last attempt, and 1 if it succeeded.
fn last(l: Option<&LastReport>) -> Option<(f64, f64)> {
    let l = l?;
    let t = timestamp(l.attempt.as_deref()?)?;
    Some((t, if l.error.is_none() { 1.0 } else { 0.0 }))
}

/// The last run, start, per source and per step: when, and whether it
/// succeeded; the last check; the offsite copy.
fn runs(out: &mut Out, r: &StatusReport) {
    let one = |v: Option<f64>| v.map(|x| vec![(String::new(), x)]).unwrap_or_default();
    let run = last(r.last_run.as_ref());
    out.metric(
        "strata_last_run_timestamp_seconds",
        "When the last run started",
        one(run.map(|x| x.0)),
    );
    out.metric(
        "strata_last_run_success",
        "1 if no source or step of the last run failed",
        one(run.map(|x| x.1)),
    );
    out.metric(
        "strata_last_start_success",
        "1 if the last run could open and unlock the repository",
        one(last(r.last_start.as_ref()).map(|x| x.1)),
    );
    let src: Vec<(String, (f64, f64))> = r
        .sources
        .iter()
        .filter_map(|s| {
            let l = format!("{{source=\"{}\"}}", label(&s.source));
            Some((l, last(s.last_run.as_ref())?))
        })
        .collect();
    out.metric(
        "strata_source_last_run_timestamp_seconds",
        "When the source was last attempted",
        src.iter().map(|(l, x)| (l.clone(), x.0)).collect(),
    );
    out.metric(
        "strata_source_last_run_success",
        "1 if the source's last attempt succeeded",
        src.iter().map(|(l, x)| (l.clone(), x.1)).collect(),
    );
    let steps: Vec<(String, (f64, f64))> = [
        ("forget", r.forget.as_ref()),
        ("gc", r.gc.as_ref()),
        ("sync", r.sync.last.as_ref()),
    ]
    .into_iter()
    .filter_map(|(n, l)| Some((format!("{{step=\"{n}\"}}"), last(l)?)))
    .collect();
    out.metric(
        "strata_step_last_run_timestamp_seconds",
        "When the step was last attempted (sync: by run or by strata sync)",
        steps.iter().map(|(l, x)| (l.clone(), x.0)).collect(),
    );
    out.metric(
        "strata_step_last_run_success",
        "1 if the step's last attempt succeeded",
        steps.iter().map(|(l, x)| (l.clone(), x.1)).collect(),
    );
    let check = r.check.last.as_ref();
    out.metric(
        "strata_check_last_timestamp_seconds",
        "When the last check started",
        one(check.and_then(|c| timestamp(&c.time))),
    );
    out.metric(
        "strata_check_errors",
        "Problems the last check found",
        one(check.map(|c| c.errors as f64)),
    );
    if r.sync.configured {
        out.metric(
            "strata_offsite_reachable",
            "1 if the offsite copy could be listed",
            vec![(
                String::new(),
                if r.sync.behind_packs.is_some() {
                    1.0
                } else {
                    0.0
                },
            )],
        );
        out.metric(
            "strata_offsite_behind_packs",
            "Packs the offsite copy lacks",
            one(r.sync.behind_packs.map(|n| n as f64)),
        );
        out.metric(
            "strata_offsite_behind_bytes",
            "Bytes of the packs the offsite copy lacks",
            one(r.sync.behind_bytes.map(|n| n as f64)),
        );
    }
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
