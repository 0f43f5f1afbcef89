//! Property tests for the moderation parsers: durations (`30m`, `12h`, `7d`) and ban targets
//! (`@nick`, addresses, IPv4 and IPv6 CIDR ranges).

use chat_server::chat::duration::{parse_duration, MAX_DURATION_MS};
use chat_server::chat::{parse_target, BanTarget};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const UNITS: [(char, u64); 5] = [
    ('s', 1_000),
    ('m', 60_000),
    ('h', 3_600_000),
    ('d', 86_400_000),
    ('w', 604_800_000),
];

fn v4_mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn durations_are_number_times_unit(n in 0u64..10_000_000, unit in 0usize..5, upper in any::<bool>()) {
        let (c, ms) = UNITS[unit];
        let c = if upper { c.to_ascii_uppercase() } else { c };
        let expected = n.checked_mul(ms).filter(|v| (1..=MAX_DURATION_MS).contains(v));
        prop_assert_eq!(parse_duration(&format!("{n}{c}")), expected);
    }

    #[test]
    fn any_text_is_a_bounded_duration_or_none(text in "\\PC{0,12}") {
        if let Some(ms) = parse_duration(&text) {
            prop_assert!((1..=MAX_DURATION_MS).contains(&ms));
            prop_assert!(text.as_bytes()[0].is_ascii_digit());
        }
    }

    #[test]
    fn ipv4_ranges_hold_exactly_their_addresses(a in any::<u32>(), prefix in 0u8..=32, probe in any::<u32>()) {
        let text = format!("{}/{prefix}", Ipv4Addr::from(a));
        let Some(BanTarget::Net(net)) = parse_target(&text) else {
            return Err(TestCaseError::fail(format!("{text} did not parse")));
        };
        let mask = v4_mask(prefix);
        prop_assert!(net.contains(&IpAddr::V4(Ipv4Addr::from(a))));
        let inside = probe & mask == a & mask;
        prop_assert_eq!(net.contains(&IpAddr::V4(Ipv4Addr::from(probe))), inside);
        // The shown form parses back to the same range.
        let shown = BanTarget::Net(net).to_string();
        prop_assert_eq!(parse_target(&shown), Some(BanTarget::Net(net)));
    }

    #[test]
    fn ipv6_ranges_parse_and_round_trip(a in any::<u128>(), prefix in 0u8..=128, probe in any::<u128>()) {
        let text = format!("{}/{prefix}", Ipv6Addr::from(a));
        let parsed = parse_target(&text);
        let Some(BanTarget::Net(net)) = parsed else {
            return Err(TestCaseError::fail(format!("{text} did not parse")));
        };
        let addr = Ipv6Addr::from(a);
        if addr.to_ipv4_mapped().is_none() {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            prop_assert!(net.contains(&IpAddr::V6(addr)));
            let inside = probe & mask == a & mask;
            prop_assert_eq!(net.contains(&IpAddr::V6(Ipv6Addr::from(probe))), inside);
        }
        let shown = BanTarget::Net(net).to_string();
        prop_assert_eq!(parse_target(&shown), Some(BanTarget::Net(net)));
    }

    #[test]
    fn any_text_is_a_target_that_round_trips_or_none(text in "[@0-9a-fA-F:./xz -]{0,45}") {
        if let Some(target) = parse_target(&text) {
            let shown = target.to_string();
            prop_assert!(parse_target(&shown).is_some_and(|t| t.same(&target)), "{} -> {}", text, shown);
        }
    }
}

#[test]
fn ipv6_examples() {
    let shown = |s: &str| parse_target(s).map(|t| t.to_string());
    assert_eq!(shown("2001:db8::/32").as_deref(), Some("2001:db8::/32"));
    assert_eq!(
        shown("2001:db8:1234::5/48").as_deref(),
        Some("2001:db8:1234::/48")
    );
    assert_eq!(shown("::1").as_deref(), Some("::1"));
    assert_eq!(shown("fe80::/10").as_deref(), Some("fe80::/10"));
    assert_eq!(shown("2001:db8::/129"), None);
    assert_eq!(shown("2001:db8:::/32"), None);
}
