//! Native buyers' answers to a ping and to a post (contract §5), as pure
//! functions from bytes to a value. Anything a buyer gets wrong is a value too
//! (`Invalid` with a short reason for the record), never an error: a bad
//! answer is an expected outcome of calling other people's servers.

use simd_json::borrowed::{Object, Value};
use simd_json::StaticNode;

use crate::buyer::{BidAnswer, PostAnswer};
use crate::lead::value::{is_null, number, truncate};
use crate::limits;
use crate::money;
use crate::wire::parse_json;

/// The answer's object and its `status` string, or the reason it has none.
fn status<'a, 'v>(v: &'a Value<'v>) -> Result<(&'a Object<'v>, &'a str), &'static str> {
    let Value::Object(obj) = v else {
        return Err("not_an_object");
    };
    match obj.get("status") {
        None => Err("missing_status"),
        Some(Value::String(s)) => Ok((obj, s)),
        Some(_) => Err("bad_status_field"),
    }
}

/// `{"status":"bid","price":12.50,"ref":"…"}` or `{"status":"no_bid"}`.
/// Other keys are ignored: buyers add their own and that is harmless.
pub fn parse_bid_answer(body: &mut [u8]) -> BidAnswer {
    let Ok(v) = parse_json(body) else {
        return BidAnswer::Invalid("malformed_json");
    };
    match status(&v) {
        Err(reason) => BidAnswer::Invalid(reason),
        Ok((_, "no_bid")) => BidAnswer::NoBid,
        Ok((obj, "bid")) => bid(obj),
        Ok(_) => BidAnswer::Invalid("bad_status_field"),
    }
}

fn bid(obj: &Object<'_>) -> BidAnswer {
    let price = match obj.get("price") {
        None => return BidAnswer::Invalid("missing_price"),
        Some(p) => match number(p) {
            None => return BidAnswer::Invalid("bad_price"),
            Some(p) if p < 0.0 => return BidAnswer::Invalid("negative_price"),
            // Too many decimals, or more than cents_from_f64 will hold.
            Some(p) => match money::cents_from_f64(p) {
                Some(c) => c,
                None => return BidAnswer::Invalid("bad_price"),
            },
        },
    };
    // The ref is echoed back verbatim, so a cut one would be wrong: refuse.
    let buyer_ref = match obj.get("ref") {
        None => None,
        Some(v) if is_null(v) => None,
        Some(Value::String(s)) if s.len() <= limits::BUYER_ANSWER_STRING_BYTES_MAX => {
            Some(s.to_string())
        }
        Some(_) => return BidAnswer::Invalid("bad_ref"),
    };
    BidAnswer::Bid { price, buyer_ref }
}

/// `{"status":"accepted","lead_id":"…"}` or
/// `{"status":"rejected","reason":"…"}`.
///
/// An `accepted` stays accepted whatever its `lead_id` looks like: calling
/// it a failure would offer a lead the buyer already took to the next
/// bidder. So a numeric id is kept as text, a long one is cut, any other
/// type is dropped.
pub fn parse_post_answer(body: &mut [u8]) -> PostAnswer {
    let Ok(v) = parse_json(body) else {
        return PostAnswer::Invalid("malformed_json");
    };
    let max = limits::BUYER_ANSWER_STRING_BYTES_MAX;
    match status(&v) {
        Err(reason) => PostAnswer::Invalid(reason),
        Ok((obj, "accepted")) => {
            let buyer_lead_id = obj.get("lead_id").and_then(|v| text(v, max));
            PostAnswer::Accepted { buyer_lead_id }
        }
        Ok((obj, "rejected")) => {
            let reason = obj
                .get("reason")
                .and_then(|v| text(v, max))
                .unwrap_or_else(|| "unspecified".to_string());
            PostAnswer::Rejected { reason }
        }
        Ok(_) => PostAnswer::Invalid("bad_status_field"),
    }
}

/// A string (cut to `bytes_max`) or an integer as text; `None` otherwise.
fn text(v: &Value<'_>, bytes_max: usize) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(truncate(s, bytes_max).to_string()),
        Value::Static(StaticNode::I64(n)) => Some(n.to_string()),
        Value::Static(StaticNode::U64(n)) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(s: &str) -> BidAnswer {
        parse_bid_answer(&mut s.as_bytes().to_vec())
    }
    fn post(s: &str) -> PostAnswer {
        parse_post_answer(&mut s.as_bytes().to_vec())
    }

    #[test]
    fn good_bids() {
        let r = Some("r-1".to_string());
        assert_eq!(
            bid(r#"{"status":"bid","price":12.50,"ref":"r-1"}"#),
            BidAnswer::Bid {
                price: 1250,
                buyer_ref: r
            }
        );
        assert_eq!(
            bid(r#"{"status":"bid","price":7}"#),
            BidAnswer::Bid {
                price: 700,
                buyer_ref: None
            }
        );
        assert_eq!(
            bid(r#"{"price":0.07,"status":"bid","ref":null,"x":[1]}"#),
            BidAnswer::Bid {
                price: 7,
                buyer_ref: None
            }
        );
        assert_eq!(bid(r#"{"status":"no_bid"}"#), BidAnswer::NoBid);
        assert_eq!(
            bid(r#"{"status":"no_bid","price":"junk"}"#),
            BidAnswer::NoBid
        );
        let max_ref = "r".repeat(limits::BUYER_ANSWER_STRING_BYTES_MAX);
        let body = format!(r#"{{"status":"bid","price":1,"ref":"{max_ref}"}}"#);
        assert_eq!(
            bid(&body),
            BidAnswer::Bid {
                price: 100,
                buyer_ref: Some(max_ref)
            }
        );
    }

    #[test]
    fn bad_bids_carry_their_reason() {
        let long_ref = format!(
            r#"{{"status":"bid","price":1,"ref":"{}"}}"#,
            "r".repeat(257)
        );
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let cases: &[(&str, &str)] = &[
            ("", "malformed_json"),
            ("garbage", "malformed_json"),
            (r#"{"status":"bid","price":12.5"#, "malformed_json"),
            (&deep, "malformed_json"),
            ("[]", "not_an_object"),
            (r#""bid""#, "not_an_object"),
            (r#"{"price":12.5}"#, "missing_status"),
            (r#"{"status":1,"price":12.5}"#, "bad_status_field"),
            (r#"{"status":"BID","price":12.5}"#, "bad_status_field"),
            (r#"{"status":"bid"}"#, "missing_price"),
            (r#"{"status":"bid","price":"12.50"}"#, "bad_price"),
            (r#"{"status":"bid","price":null}"#, "bad_price"),
            (r#"{"status":"bid","price":-1}"#, "negative_price"),
            (r#"{"status":"bid","price":-0.5}"#, "negative_price"),
            (r#"{"status":"bid","price":1.005}"#, "bad_price"),
            (r#"{"status":"bid","price":1e300}"#, "bad_price"),
            (
                r#"{"status":"bid","price":18446744073709551615}"#,
                "bad_price",
            ),
            (r#"{"status":"bid","price":1,"ref":7}"#, "bad_ref"),
            (&long_ref, "bad_ref"),
        ];
        for (body, reason) in cases {
            assert_eq!(bid(body), BidAnswer::Invalid(reason), "{body}");
        }
    }

    #[test]
    fn post_answers() {
        let id = |s: &str| PostAnswer::Accepted {
            buyer_lead_id: Some(s.to_string()),
        };
        assert_eq!(post(r#"{"status":"accepted","lead_id":"L-9"}"#), id("L-9"));
        assert_eq!(
            post(r#"{"status":"accepted","lead_id":12345}"#),
            id("12345")
        );
        assert_eq!(
            post(r#"{"status":"accepted"}"#),
            PostAnswer::Accepted {
                buyer_lead_id: None
            }
        );
        assert_eq!(
            post(r#"{"status":"accepted","lead_id":{}}"#),
            PostAnswer::Accepted {
                buyer_lead_id: None
            }
        );
        let long = format!(r#"{{"status":"accepted","lead_id":"{}"}}"#, "é".repeat(200));
        assert_eq!(post(&long), id(&"é".repeat(128)));
        let rejected = |s: &str| PostAnswer::Rejected {
            reason: s.to_string(),
        };
        assert_eq!(
            post(r#"{"status":"rejected","reason":"dupe"}"#),
            rejected("dupe")
        );
        assert_eq!(post(r#"{"status":"rejected"}"#), rejected("unspecified"));
        let long = format!(
            r#"{{"status":"rejected","reason":"{}"}}"#,
            "x".repeat(10_000)
        );
        assert_eq!(post(&long), rejected(&"x".repeat(256)));
    }

    #[test]
    fn bad_post_answers() {
        let cases: &[(&str, &str)] = &[
            ("<html>502</html>", "malformed_json"),
            ("[1]", "not_an_object"),
            (r#"{"lead_id":"x"}"#, "missing_status"),
            (r#"{"status":true}"#, "bad_status_field"),
            (r#"{"status":"ok"}"#, "bad_status_field"),
        ];
        for (body, reason) in cases {
            assert_eq!(post(body), PostAnswer::Invalid(reason), "{body}");
        }
    }
}
