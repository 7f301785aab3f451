//! The audit log as the portal's page lists it: one site's entries, newest first, narrowed
//! by actor, action, target and time, in pages that neither skip nor repeat, each filter
//! served by an index.

mod support;

use callrec_model::SiteId;
use callrec_store::{AuditEntry, AuditFilter, Store};
use chrono::Duration;
use serde_json::json;
use support::{Fixture, start_time};

/// Append an entry now, then move the clock on a minute.
fn entry(f: &mut Fixture, site: SiteId, actor: &str, action: &str, target: &str) -> i64 {
    let seq = f
        .store
        .record_event(Some(site), actor, action, target, &json!({"n": 1}))
        .unwrap();
    f.clock.advance(Duration::minutes(1));
    seq
}

fn seqs(entries: &[AuditEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.seq).collect()
}

fn all(store: &Store, site: SiteId, filter: &AuditFilter) -> Vec<i64> {
    seqs(
        &store
            .view()
            .audit_page(site, filter, None, 500)
            .unwrap()
            .entries,
    )
}

#[test]
fn each_filter_narrows_the_sites_log_and_they_combine() {
    let mut f = Fixture::new();
    let site = f.user("1001").site_id;
    let other = f
        .store
        .create_site("other", &Default::default(), "test")
        .unwrap()
        .id;
    let t = start_time();
    let a = entry(
        &mut f,
        site,
        "1001@default",
        "recording.play",
        "recording:A",
    );
    let b = entry(
        &mut f,
        site,
        "1002@default",
        "recording.download",
        "recording:A",
    );
    let c = entry(
        &mut f,
        site,
        "1001@default",
        "recording.download",
        "recording:B",
    );
    let d = entry(&mut f, site, "daemon", "recording.stored", "recording:B");
    let _elsewhere = entry(&mut f, other, "1001@other", "recording.play", "recording:C");

    // Newest first, without the other site's entry; before `a`, the site's own earlier
    // entries (the user's creation).
    let everything = all(&f.store, site, &AuditFilter::default());
    assert_eq!(&everything[..4], &[d, c, b, a]);
    assert!(everything[4..].iter().all(|s| *s < a), "{everything:?}");

    let by_actor = AuditFilter {
        actor: Some("1001@default".into()),
        ..Default::default()
    };
    assert_eq!(all(&f.store, site, &by_actor), [c, a]);
    let by_action = AuditFilter {
        action: Some("recording.download".into()),
        ..Default::default()
    };
    assert_eq!(all(&f.store, site, &by_action), [c, b]);
    let by_target = AuditFilter {
        target: Some("recording:A".into()),
        ..Default::default()
    };
    assert_eq!(all(&f.store, site, &by_target), [b, a]);
    // `since` is inclusive, `until` exclusive: the minutes of b and c.
    let by_time = AuditFilter {
        since: Some(t + Duration::minutes(1)),
        until: Some(t + Duration::minutes(3)),
        ..Default::default()
    };
    assert_eq!(all(&f.store, site, &by_time), [c, b]);
    let combined = AuditFilter {
        actor: Some("1001@default".into()),
        action: Some("recording.download".into()),
        target: Some("recording:B".into()),
        since: Some(t),
        until: Some(t + Duration::hours(1)),
    };
    assert_eq!(all(&f.store, site, &combined), [c]);
    // Nothing of the other site, whatever the filter.
    let theirs = AuditFilter {
        actor: Some("1001@other".into()),
        ..Default::default()
    };
    assert!(all(&f.store, site, &theirs).is_empty());
    assert_eq!(all(&f.store, other, &theirs).len(), 1);
}

#[test]
fn pages_follow_each_other_without_skipping_or_repeating() {
    let mut f = Fixture::new();
    let site = f.user("1001").site_id;
    let mut plays = Vec::new();
    for i in 0..25 {
        plays.push(entry(
            &mut f,
            site,
            "1001@default",
            "recording.play",
            "recording:A",
        ));
        if i % 2 == 0 {
            entry(
                &mut f,
                site,
                "9000@default",
                "recording.search",
                "site:default",
            );
        }
    }
    let filter = AuditFilter {
        action: Some("recording.play".into()),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = f
            .store
            .view()
            .audit_page(site, &filter, before, 10)
            .unwrap();
        pages += 1;
        seen.extend(seqs(&page.entries));
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    plays.reverse();
    assert_eq!(seen, plays);
    assert_eq!(pages, 3, "10 + 10 + 5");
}

#[test]
fn every_filter_is_served_by_its_own_index() {
    let mut f = Fixture::new();
    let site = f.user("1001").site_id;
    let t = start_time();
    let cases = [
        (
            AuditFilter::default(),
            "audit_log_site (site_id=? AND seq<?)",
        ),
        (
            AuditFilter {
                actor: Some("1001@default".into()),
                ..Default::default()
            },
            "audit_log_site_actor (site_id=? AND actor=? AND seq<?)",
        ),
        (
            AuditFilter {
                action: Some("recording.play".into()),
                ..Default::default()
            },
            "audit_log_site_action (site_id=? AND action=? AND seq<?)",
        ),
        (
            AuditFilter {
                target: Some("recording:A".into()),
                actor: Some("1001@default".into()),
                ..Default::default()
            },
            "audit_log_target (target=? AND seq<?)",
        ),
        (
            AuditFilter {
                since: Some(t),
                until: Some(t + Duration::days(1)),
                ..Default::default()
            },
            "audit_log_site_at (site_id=? AND at>? AND at<?)",
        ),
    ];
    for (filter, index) in &cases {
        let plan = f.store.view().audit_page_plan(site, filter).unwrap();
        assert!(
            plan.iter()
                .any(|step| step == &format!("SEARCH audit_log USING INDEX {index}")),
            "{filter:?}: {plan:?}"
        );
        // Only the time range alone sorts (its range's entries); the rest stop at a page.
        let sorts = plan.iter().any(|step| step.contains("TEMP B-TREE"));
        assert_eq!(sorts, filter.since.is_some(), "{filter:?}: {plan:?}");
    }
}
