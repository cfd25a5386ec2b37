//! The native JSON buyer protocol of contract §5: the bodies it sends here,
//! the answers it reads in `answer` — one format, one home.

mod answer;

pub use answer::{parse_bid_answer, parse_post_answer};

use super::{BidAnswer, Integration, PingCtx, PostAnswer, PostCtx};
use crate::json::write_str;
use crate::money::write_cents;
use crate::routing::Reason;

pub struct Native;

const JSON: &str = "application/json";

impl Integration for Native {
    fn build_ping(&self, ctx: &PingCtx<'_>, out: &mut Vec<u8>) -> &'static str {
        out.extend_from_slice(b"{\"ping_id\":");
        write_str(out, ctx.ping_id);
        out.extend_from_slice(b",\"vertical\":");
        write_str(out, ctx.vertical);
        out.extend_from_slice(b",\"lead\":");
        ctx.lead.write_json(out, false);
        out.extend_from_slice(if ctx.test {
            b",\"test\":true}"
        } else {
            b",\"test\":false}"
        });
        JSON
    }

    fn parse_bid(&self, status: u16, body: &mut [u8]) -> BidAnswer {
        if status != 200 {
            return BidAnswer::Invalid(Reason::Http(status).as_str());
        }
        parse_bid_answer(body)
    }

    fn build_post(&self, ctx: &PostCtx<'_>, out: &mut Vec<u8>) -> &'static str {
        out.extend_from_slice(b"{\"ping_id\":");
        write_str(out, ctx.ping_id);
        out.extend_from_slice(b",\"ref\":");
        match ctx.buyer_ref {
            Some(r) => write_str(out, r),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"vertical\":");
        write_str(out, ctx.vertical);
        out.extend_from_slice(b",\"lead\":");
        ctx.lead.write_json(out, true);
        out.extend_from_slice(b",\"consent\":");
        match ctx.consent {
            Some(c) => c.write_json(out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"price\":");
        write_cents(out, ctx.price);
        out.extend_from_slice(if ctx.test {
            b",\"test\":true}"
        } else {
            b",\"test\":false}"
        });
        JSON
    }

    fn parse_result(&self, status: u16, body: &mut [u8]) -> PostAnswer {
        if status != 200 {
            return PostAnswer::Invalid(Reason::Http(status).as_str());
        }
        parse_post_answer(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::Lead;

    fn lead() -> Lead {
        Lead {
            zip: "90210".into(),
            state: "CA".into(),
            age: Some(30),
            phone: Some("+15552345678".into()),
            first_name: Some("Ann".into()),
            last_name: Some("Lee".into()),
            email: Some("ann@example.com".into()),
            ..Lead::default()
        }
    }

    #[test]
    fn ping_carries_ping_fields_only() {
        let l = lead();
        let mut out = Vec::new();
        let ctx = PingCtx {
            ping_id: "p1",
            vertical: "auto",
            lead: &l,
            test: true,
        };
        assert_eq!(Native.build_ping(&ctx, &mut out), "application/json");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["ping_id"], "p1");
        assert_eq!(v["test"], true);
        assert_eq!(v["lead"]["zip"], "90210");
        assert!(v["lead"].get("phone").is_none() && v["lead"].get("email").is_none());
    }

    #[test]
    fn post_carries_full_lead_ref_and_own_price() {
        let l = lead();
        let mut out = Vec::new();
        let ctx = PostCtx {
            ping_id: "p1",
            buyer_ref: Some("r9"),
            vertical: "auto",
            lead: &l,
            consent: None,
            price: 1250,
            test: false,
        };
        Native.build_post(&ctx, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["ref"], "r9");
        assert_eq!(v["price"], 12.5);
        assert_eq!(v["lead"]["phone"], "+15552345678");
        assert_eq!(v["test"], false);
    }

    #[test]
    fn non_200_is_never_a_bid_or_a_sale() {
        let mut body = br#"{"status":"bid","price":5}"#.to_vec();
        assert!(matches!(
            Native.parse_bid(500, &mut body),
            BidAnswer::Invalid("http_500")
        ));
        let mut body = br#"{"status":"accepted","lead_id":"x"}"#.to_vec();
        assert!(matches!(
            Native.parse_result(201, &mut body),
            PostAnswer::Invalid("http_201")
        ));
        let mut body = br#"{"status":"bid","price":5.25,"ref":"a"}"#.to_vec();
        assert!(matches!(
            Native.parse_bid(200, &mut body),
            BidAnswer::Bid { price: 525, .. }
        ));
    }
}
