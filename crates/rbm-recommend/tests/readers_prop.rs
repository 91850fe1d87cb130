//! The ratings reader on arbitrary input: `Ok` or a typed error, never a panic.

use std::path::Path;

use proptest::prelude::*;
use rbm_recommend::ratings::{Fields, IdMap, parse_ratings};

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_or_fails_cleanly(text in "\\PC{0,300}") {
        for fields in [Fields::Ratings, Fields::Pairs] {
            let _ = parse_ratings(&text, Path::new("any.csv"), fields, IdMap::default(), IdMap::default());
        }
    }

    #[test]
    fn ratings_like_text_parses_or_fails_cleanly(
        pieces in proptest::collection::vec(
            prop_oneof![
                Just(","), Just("\t"), Just("::"), Just("\n"), Just("\r\n"), Just("u1"), Just("i2"), Just("3"),
                Just("4.5"), Just("-1"), Just("NaN"), Just("1e40"), Just("user"), Just("\u{feff}"), Just(" "),
            ],
            0..60,
        ),
    ) {
        let text = pieces.concat();
        for fields in [Fields::Ratings, Fields::Pairs] {
            let _ = parse_ratings(&text, Path::new("any.csv"), fields, IdMap::default(), IdMap::default());
        }
    }
}
