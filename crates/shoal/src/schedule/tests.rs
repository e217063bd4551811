//! Unit and property tests of business-hours windows, DST change days included.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::parse::hhmm;
use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn bh(start: &str, end: &str, tz: &str, days: &[&str]) -> BusinessHours {
    let days: Vec<String> = days.iter().map(|s| s.to_string()).collect();
    BusinessHours::parse(start, end, tz, &days).unwrap()
}

/// Total open time within `[from, to)`, walking `next_change`.
fn open_time(w: &BusinessHours, from: Timestamp, to: Timestamp) -> SignedDuration {
    let mut total = SignedDuration::ZERO;
    let mut t = from;
    while t < to {
        let next = w.next_change(t).unwrap().min(to);
        if w.is_open(t) {
            total += next - t;
        }
        t = next;
    }
    total
}

const NS: SignedDuration = SignedDuration::from_nanos(1);

#[test]
fn plain_window_edges_inclusive_start_exclusive_end() {
    let w = bh("09:00", "17:00", "UTC", &[]);
    assert!(!w.is_open(ts("2026-05-06T08:59:59.999999999Z")));
    assert!(w.is_open(ts("2026-05-06T09:00:00Z")));
    assert!(w.is_open(ts("2026-05-06T12:00:00Z")));
    assert!(w.is_open(ts("2026-05-06T16:59:59.999999999Z")));
    assert!(!w.is_open(ts("2026-05-06T17:00:00Z")));
    assert!(!w.is_open(ts("2026-05-06T23:00:00Z")));
}

#[test]
fn plain_window_next_change_before_in_after() {
    let w = bh("09:00", "17:00", "UTC", &[]);
    let nc = |s| w.next_change(ts(s)).unwrap();
    assert_eq!(nc("2026-05-06T03:00:00Z"), ts("2026-05-06T09:00:00Z"));
    // Strictly after: at the opening edge the next change is the close.
    assert_eq!(nc("2026-05-06T09:00:00Z"), ts("2026-05-06T17:00:00Z"));
    assert_eq!(nc("2026-05-06T12:00:00Z"), ts("2026-05-06T17:00:00Z"));
    assert_eq!(nc("2026-05-06T17:00:00Z"), ts("2026-05-07T09:00:00Z"));
    assert_eq!(nc("2026-05-06T20:00:00Z"), ts("2026-05-07T09:00:00Z"));
}

#[test]
fn weekdays_only_closed_on_weekend_and_friday_close_points_to_monday() {
    let w = bh("09:00", "17:00", "UTC", &["mon-fri"]);
    // 2026-05-08 is a Friday.
    assert!(w.is_open(ts("2026-05-08T10:00:00Z")));
    assert!(!w.is_open(ts("2026-05-09T10:00:00Z")));
    assert!(!w.is_open(ts("2026-05-10T10:00:00Z")));
    assert_eq!(
        w.next_change(ts("2026-05-08T17:00:00Z")),
        Some(ts("2026-05-11T09:00:00Z"))
    );
    assert_eq!(
        w.next_change(ts("2026-05-09T12:00:00Z")),
        Some(ts("2026-05-11T09:00:00Z"))
    );
}

#[test]
fn overnight_window_open_across_midnight() {
    let w = bh("22:00", "06:00", "UTC", &[]);
    assert!(w.crosses_midnight());
    assert!(w.is_open(ts("2026-05-06T22:00:00Z")));
    assert!(w.is_open(ts("2026-05-06T23:00:00Z")));
    assert!(w.is_open(ts("2026-05-07T00:00:00Z")));
    assert!(w.is_open(ts("2026-05-07T05:59:00Z")));
    assert!(!w.is_open(ts("2026-05-07T06:00:00Z")));
    assert!(!w.is_open(ts("2026-05-07T21:59:00Z")));
    assert_eq!(
        w.next_change(ts("2026-05-06T23:00:00Z")),
        Some(ts("2026-05-07T06:00:00Z"))
    );
    assert_eq!(
        w.next_change(ts("2026-05-07T12:00:00Z")),
        Some(ts("2026-05-07T22:00:00Z"))
    );
}

#[test]
fn overnight_window_belongs_to_the_day_it_opens() {
    // 2026-05-08 is a Friday.
    let w = bh("22:00", "06:00", "UTC", &["fri"]);
    assert!(!w.is_open(ts("2026-05-08T03:00:00Z"))); // Thursday night: not listed
    assert!(w.is_open(ts("2026-05-08T23:00:00Z")));
    assert!(w.is_open(ts("2026-05-09T03:00:00Z")));
    assert!(!w.is_open(ts("2026-05-09T06:00:00Z")));
    assert!(!w.is_open(ts("2026-05-09T23:00:00Z")));
    assert_eq!(
        w.next_change(ts("2026-05-09T03:00:00Z")),
        Some(ts("2026-05-09T06:00:00Z"))
    );
    assert_eq!(
        w.next_change(ts("2026-05-09T06:00:00Z")),
        Some(ts("2026-05-15T22:00:00Z"))
    );
}

#[test]
fn window_ending_at_midnight_closes_at_next_days_start() {
    let w = bh("09:00", "00:00", "UTC", &["mon"]);
    // 2026-05-11 is a Monday.
    assert!(w.is_open(ts("2026-05-11T23:59:59Z")));
    assert!(!w.is_open(ts("2026-05-12T00:00:00Z")));
    assert!(!w.is_open(ts("2026-05-11T00:30:00Z")));
}

#[test]
fn business_day_is_eight_hours_on_dst_change_days() {
    for (tz, day) in [
        ("Europe/Berlin", "2026-03-29"),
        ("Europe/Berlin", "2026-10-25"),
        ("America/New_York", "2026-03-08"),
        ("America/New_York", "2026-11-01"),
    ] {
        let w = bh("09:00", "17:00", tz, &[]);
        let date: Date = day.parse().unwrap();
        let from = w.time_zone().to_timestamp(date.at(0, 0, 0, 0)).unwrap();
        let to = w
            .time_zone()
            .to_timestamp(date.tomorrow().unwrap().at(0, 0, 0, 0))
            .unwrap();
        assert_eq!(open_time(&w, from, to).as_secs(), 28_800, "{tz} {day}");
    }
}

#[test]
fn berlin_window_containing_spring_forward_is_three_hours() {
    let w = bh("01:00", "05:00", "Europe/Berlin", &[]);
    let nc = w.next_change(ts("2026-03-28T23:00:00Z")).unwrap();
    assert_eq!(nc, ts("2026-03-29T00:00:00Z")); // 01:00 CET
    let close = w.next_change(nc).unwrap();
    assert_eq!(close, ts("2026-03-29T03:00:00Z")); // 05:00 CEST
    assert_eq!((close - nc).as_secs(), 3 * 3600);
}

#[test]
fn berlin_window_containing_fall_back_is_five_hours() {
    let w = bh("01:00", "05:00", "Europe/Berlin", &[]);
    let open = w.next_change(ts("2026-10-24T22:00:00Z")).unwrap();
    assert_eq!(open, ts("2026-10-24T23:00:00Z")); // 01:00 CEST
    let close = w.next_change(open).unwrap();
    assert_eq!(close, ts("2026-10-25T04:00:00Z")); // 05:00 CET
    assert_eq!((close - open).as_secs(), 5 * 3600);
}

#[test]
fn new_york_window_containing_transitions() {
    let w = bh("01:00", "05:00", "America/New_York", &[]);
    let open = w.next_change(ts("2026-03-08T05:00:00Z")).unwrap();
    assert_eq!(open, ts("2026-03-08T06:00:00Z")); // 01:00 EST
    assert_eq!(w.next_change(open), Some(ts("2026-03-08T09:00:00Z"))); // 05:00 EDT
    let open = w.next_change(ts("2026-11-01T04:00:00Z")).unwrap();
    assert_eq!(open, ts("2026-11-01T05:00:00Z")); // 01:00 EDT
    assert_eq!(w.next_change(open), Some(ts("2026-11-01T10:00:00Z"))); // 05:00 EST
}

#[test]
fn start_inside_spring_forward_gap_is_shifted_forward() {
    // 02:30 does not exist in Berlin on 2026-03-29: "compatible" gives 03:30 CEST.
    let w = bh("02:30", "05:00", "Europe/Berlin", &[]);
    let open = w.next_change(ts("2026-03-28T23:00:00Z")).unwrap();
    assert_eq!(open, ts("2026-03-29T01:30:00Z"));
    let s = w.state(ts("2026-03-28T23:00:00Z"));
    assert_eq!(
        s.next_change_local.as_deref(),
        Some("2026-03-29T03:30:00+02:00")
    );
    assert!(!w.is_open(ts("2026-03-29T01:29:59Z")));
    assert!(w.is_open(ts("2026-03-29T01:30:00Z")));
    assert_eq!(w.next_change(open), Some(ts("2026-03-29T03:00:00Z")));
}

#[test]
fn end_inside_spring_forward_gap_is_shifted_forward() {
    // 02:30 on 2026-03-29 is 03:30 CEST, so the window is 01:00 CET - 03:30 CEST: 1.5 h.
    let w = bh("01:00", "02:30", "Europe/Berlin", &[]);
    let open = w.next_change(ts("2026-03-28T23:00:00Z")).unwrap();
    assert_eq!(open, ts("2026-03-29T00:00:00Z"));
    assert_eq!(w.next_change(open), Some(ts("2026-03-29T01:30:00Z")));
}

#[test]
fn window_emptied_by_spring_forward_gap_is_skipped() {
    // 02:30 -> 03:30 CEST but 03:00 is 03:00 CEST: closes before it opens, so no window
    // on 2026-03-29; next opening is the following day.
    let w = bh("02:30", "03:00", "Europe/Berlin", &[]);
    assert!(!w.is_open(ts("2026-03-29T01:15:00Z")));
    assert_eq!(
        w.next_change(ts("2026-03-28T23:00:00Z")),
        Some(ts("2026-03-30T00:30:00Z"))
    );
}

#[test]
fn start_inside_fall_back_fold_is_the_earlier_instant() {
    // 02:30 happens twice in Berlin on 2026-10-25: CEST (00:30Z) and CET (01:30Z).
    let w = bh("02:30", "04:00", "Europe/Berlin", &[]);
    let open = w.next_change(ts("2026-10-24T22:00:00Z")).unwrap();
    assert_eq!(open, ts("2026-10-25T00:30:00Z"));
    assert_eq!(w.next_change(open), Some(ts("2026-10-25T03:00:00Z")));
    // End inside the fold: also the earlier instant.
    let w = bh("01:00", "02:30", "Europe/Berlin", &[]);
    let open = w.next_change(ts("2026-10-24T22:00:00Z")).unwrap();
    assert_eq!(open, ts("2026-10-24T23:00:00Z"));
    assert_eq!(w.next_change(open), Some(ts("2026-10-25T00:30:00Z")));
}

#[test]
fn overlapping_days_merge_into_one_open_period() {
    // 03:10-02:30 in Berlin. The window of Saturday 2026-03-28 opens 03:10 CET (02:10Z)
    // and closes at 02:30 on the 29th, which is in the gap: 03:30 CEST (01:30Z). But the
    // window of the 29th opens at 03:10 CEST (01:10Z), before that: the two overlap and
    // the window stays open until the 30th, 02:30 CEST (00:30Z).
    let w = bh("03:10", "02:30", "Europe/Berlin", &[]);
    let open = ts("2026-03-28T02:10:00Z");
    assert!(w.is_open(open));
    assert!(w.is_open(ts("2026-03-29T01:20:00Z")));
    assert!(w.is_open(ts("2026-03-29T01:30:00Z")));
    assert_eq!(w.next_change(open), Some(ts("2026-03-30T00:30:00Z")));
    // Touching windows merge too: 03:30-02:30 closes at 01:30Z as the next one opens.
    let w = bh("03:30", "02:30", "Europe/Berlin", &[]);
    assert_eq!(
        w.next_change(ts("2026-03-28T03:00:00Z")),
        Some(ts("2026-03-30T00:30:00Z"))
    );
    // With only Saturday listed, the Saturday window ends in the gap as usual.
    let w = bh("03:10", "02:30", "Europe/Berlin", &["sat"]);
    assert_eq!(
        w.next_change(ts("2026-03-28T02:10:00Z")),
        Some(ts("2026-03-29T01:30:00Z"))
    );
}

#[test]
fn state_reports_open_next_change_and_zone() {
    let w = bh("09:00", "17:00", "Europe/Berlin", &["mon-fri"]);
    // Saturday 2026-03-28 12:00 CET; opens Monday 2026-03-30 09:00 CEST.
    let s = w.state(ts("2026-03-28T11:00:00Z"));
    assert!(!s.open);
    assert_eq!(s.next_change, Some(ts("2026-03-30T07:00:00Z")));
    assert_eq!(
        s.next_change_local.as_deref(),
        Some("2026-03-30T09:00:00+02:00")
    );
    assert_eq!(s.timezone, "Europe/Berlin");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "open": false,
            "next_change": "2026-03-30T07:00:00Z",
            "next_change_local": "2026-03-30T09:00:00+02:00",
            "timezone": "Europe/Berlin",
        })
    );
}

#[test]
fn new_validates_times_days_and_empty_window() {
    let utc = TimeZone::UTC;
    assert!(matches!(
        BusinessHours::new((9, 0), (9, 0), utc.clone(), None),
        Err(ScheduleError::EmptyWindow { .. })
    ));
    assert!(matches!(
        BusinessHours::new((24, 0), (9, 0), utc.clone(), None),
        Err(ScheduleError::InvalidTime { .. })
    ));
    assert!(matches!(
        BusinessHours::new((9, 60), (10, 0), utc.clone(), None),
        Err(ScheduleError::InvalidTime { .. })
    ));
    assert_eq!(
        BusinessHours::new((9, 0), (17, 0), utc.clone(), Some(vec![])).unwrap_err(),
        ScheduleError::NoDays
    );
    let w = BusinessHours::new(
        (9, 0),
        (17, 0),
        utc,
        Some(vec![Weekday::Friday, Weekday::Monday, Weekday::Friday]),
    )
    .unwrap();
    assert_eq!(w.days(), vec![Weekday::Monday, Weekday::Friday]);
    assert_eq!(w.timezone_name(), "UTC");
}

#[test]
fn parse_times_and_zone() {
    let w = bh("9:05", "17:30", "europe/berlin", &[]);
    assert_eq!(hhmm(w.start()), "09:05");
    assert_eq!(hhmm(w.end()), "17:30");
    assert_eq!(w.timezone_name(), "Europe/Berlin");
    assert_eq!(w.days().len(), 7);
    for bad in [
        "24:00", "9", "09:5", "09:60", "+9:00", "aa:bb", "", "123:00",
    ] {
        assert_eq!(
            BusinessHours::parse(bad, "17:00", "UTC", &[]).unwrap_err(),
            ScheduleError::InvalidTime { input: bad.into() },
            "{bad:?}"
        );
    }
    let e = BusinessHours::parse("09:00", "17:00", "Mars/Olympus", &[]).unwrap_err();
    assert!(matches!(&e, ScheduleError::UnknownTimeZone { name, .. } if name == "Mars/Olympus"));
    assert!(e.to_string().contains("Mars/Olympus"));
    assert!(matches!(
        BusinessHours::parse("09:00", "09:00", "UTC", &[]),
        Err(ScheduleError::EmptyWindow { time }) if time == "09:00"
    ));
}

#[test]
fn parse_days_names_ranges_and_errors() {
    use Weekday::*;
    let days = |d: &[&str]| bh("09:00", "17:00", "UTC", d).days();
    assert_eq!(
        days(&["mon-fri"]),
        [Monday, Tuesday, Wednesday, Thursday, Friday]
    );
    assert_eq!(
        days(&["Monday", "TUE", "wednesday"]),
        [Monday, Tuesday, Wednesday]
    );
    assert_eq!(days(&["tues", "Thurs"]), [Tuesday, Thursday]);
    assert_eq!(days(&["fri-mon"]), [Monday, Friday, Saturday, Sunday]);
    assert_eq!(days(&[" sat - sun "]), [Saturday, Sunday]);
    assert_eq!(days(&["mon-wed,fri"]), [Monday, Tuesday, Wednesday, Friday]);
    assert_eq!(days(&["sun-sun"]), [Sunday]);
    let err =
        |d: &str| BusinessHours::parse("09:00", "17:00", "UTC", &[d.to_string()]).unwrap_err();
    assert_eq!(
        err("mon-fry"),
        ScheduleError::InvalidDay {
            entry: "mon-fry".into(),
            part: "fry".into()
        }
    );
    assert!(err("mo").to_string().contains("\"mo\""));
    assert!(matches!(err("funday"), ScheduleError::InvalidDay { .. }));
    assert!(matches!(err(""), ScheduleError::InvalidDay { .. }));
    assert!(matches!(err("mon-"), ScheduleError::InvalidDay { .. }));
}

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
];

fn arb_window() -> impl Strategy<Value = BusinessHours> {
    (0..1440i32, 1..1440i32, 0..ZONES.len(), 1..128u8).prop_map(|(start, len, zone, mask)| {
        let end = (start + len) % 1440;
        let hm = |m: i32| ((m / 60) as i8, (m % 60) as i8);
        let days = (0..7)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| Weekday::from_monday_zero_offset(i).unwrap())
            .collect();
        let tz = TimeZone::get(ZONES[zone]).unwrap();
        BusinessHours::new(hm(start), hm(end), tz, Some(days)).unwrap()
    })
}

/// 2024-01-01T00:00:00Z .. 2030-01-01T00:00:00Z, with nanoseconds.
fn arb_instant() -> impl Strategy<Value = Timestamp> {
    (1_704_067_200i64..1_893_456_000, 0..1_000_000_000i32)
        .prop_map(|(s, ns)| Timestamp::new(s, ns).unwrap())
}

/// The naive wall-clock definition, valid when no DST transition is near `at`.
fn naive_is_open(w: &BusinessHours, at: Timestamp) -> bool {
    let dt = w.time_zone().to_datetime(at);
    let listed = |d: Date| w.days().contains(&d.weekday());
    let t = dt.time();
    if w.crosses_midnight() {
        (t >= w.start() && listed(dt.date()))
            || (t < w.end() && listed(dt.date().yesterday().unwrap()))
    } else {
        w.start() <= t && t < w.end() && listed(dt.date())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn prop_next_change_is_a_flip(w in arb_window(), t in arb_instant()) {
        let mut t = t;
        // Follow a few changes so edges themselves are also tested as starting points.
        for _ in 0..3 {
            let nc = w.next_change(t).expect("a valid window always changes");
            prop_assert!(nc > t);
            prop_assert!(nc - t <= SignedDuration::from_hours(8 * 24), "{t} -> {nc}");
            let before = w.is_open(t);
            prop_assert_eq!(w.is_open(nc - NS), before, "{} -> {}", t, nc);
            prop_assert_ne!(w.is_open(nc), before, "{} -> {}", t, nc);
            t = nc;
        }
    }

    #[test]
    fn prop_matches_wall_clock_away_from_transitions(
        w in arb_window(),
        t in arb_instant(),
    ) {
        let margin = SignedDuration::from_hours(50);
        let quiet = w
            .time_zone()
            .following(t - margin)
            .next()
            .is_none_or(|tr| tr.timestamp() > t + margin);
        // (~1% of instants are near a transition: skip them rather than reject them.)
        if quiet {
            prop_assert_eq!(w.is_open(t), naive_is_open(&w, t));
        }
    }
}

#[test]
fn prewarming_starts_one_start_time_before_the_opening() {
    let w = bh("09:00", "17:00", "Europe/Berlin", &[]);
    let lead = SignedDuration::from_secs(45);
    // 08:59:00 local (CET, +01:00): the window opens in 60 s, more than the lead.
    let at = ts("2026-01-15T07:59:00Z");
    let st = w.state(at);
    assert!(!st.open && !st.opens_within(at, lead));
    assert_eq!(st.prewarm_at(lead), Some(ts("2026-01-15T07:59:15Z")));
    // From 08:59:15 it opens within the lead: start the replicas now.
    let at = ts("2026-01-15T07:59:15Z");
    assert!(w.state(at).opens_within(at, lead));
    let at = ts("2026-01-15T07:59:59Z");
    assert!(w.state(at).opens_within(at, lead));
    // Open: no pre-warming, and nothing to pre-warm for.
    let at = ts("2026-01-15T08:00:00Z");
    let st = w.state(at);
    assert!(st.open && !st.opens_within(at, lead));
    assert_eq!(st.prewarm_at(lead), None);
    // Before the closing edge nothing is pre-warmed either.
    let at = ts("2026-01-15T15:59:30Z");
    assert!(!w.state(at).opens_within(at, lead));
}

#[test]
fn prewarming_follows_dst_and_skipped_days() {
    // Mon-fri 09:00 New York: on the Monday after the spring-forward Sunday (2026-03-08) the
    // opening is 13:00Z (EDT), not 14:00Z; from Friday evening the next opening is Monday's.
    let w = bh("09:00", "17:00", "America/New_York", &["mon-fri"]);
    let lead = SignedDuration::from_secs(120);
    let friday_evening = ts("2026-03-06T23:00:00Z");
    assert_eq!(
        w.state(friday_evening).prewarm_at(lead),
        Some(ts("2026-03-09T12:58:00Z"))
    );
    let at = ts("2026-03-09T12:58:30Z");
    assert!(w.state(at).opens_within(at, lead));
    // Saturday morning, an opening on a weekday would be 2 minutes away: nothing.
    let at = ts("2026-03-07T13:58:30Z");
    assert!(!w.state(at).opens_within(at, lead));
}
