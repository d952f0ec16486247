//! `POST /payouts/batch` (SPEC §13): up to 1,000 payout bodies, each with
//! its own `reference_id`, checked one by one; the valid ones of each
//! wallet are committed in ONE durable write (one wallet command). Always
//! 200 with one result per item, in order: 201 and the payout, or the
//! item's error status and error object. Invalid items change nothing.

use super::payouts::new_payout;
use super::Ctx;
use crate::http::error::{self, Body};
use crate::http::request::JsonBody;
use crate::http::views;
use actors::NewPayout;
use domain::{Payout, Rejection, UserId};
use hyper::{Response, StatusCode};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::collections::BTreeMap;

/// Most items in one batch.
pub const ITEMS_MAX: usize = 1_000;
/// Largest body this route reads (others: 64 KiB).
pub const BODY_MAX_BYTES: usize = 1024 * 1024;

pub async fn create(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    let body = JsonBody::parse(&ctx.body)?;
    body.require(&["payouts"])?;
    let items = body
        .objects("payouts", ITEMS_MAX)?
        .ok_or_else(|| Rejection::MissingFields(vec!["payouts".into()]))?;
    let mut results: Vec<Option<Result<Payout, Rejection>>> = vec![None; items.len()];
    let mut by_wallet: BTreeMap<UserId, Vec<(usize, NewPayout)>> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        // Every missing field at once, `reference_id` among them.
        let parsed = match (item.require(&["reference_id"]), new_payout(ctx, item)) {
            (Ok(()), parsed) => parsed,
            (Err(Rejection::MissingFields(own)), Err(Rejection::MissingFields(mut fields))) => {
                fields.extend(own);
                Err(Rejection::MissingFields(fields))
            }
            (Err(missing), _) => Err(missing),
        };
        match parsed {
            Ok((merchant, new)) => by_wallet.entry(merchant).or_default().push((index, new)),
            Err(rejection) => results[index] = Some(Err(rejection)),
        }
    }
    for (merchant, wallet_items) in by_wallet {
        let (indexes, news): (Vec<usize>, Vec<NewPayout>) = wallet_items.into_iter().unzip();
        match ctx.app.wallets.create_payouts(merchant, news).await {
            Ok(answers) => {
                for (index, answer) in indexes.into_iter().zip(answers) {
                    results[index] = Some(answer);
                }
            }
            Err(rejection) => {
                for index in indexes {
                    results[index] = Some(Err(rejection.clone()));
                }
            }
        }
    }
    let results: Vec<ItemResult> = results
        .into_iter()
        .enumerate()
        .map(|(index, r)| ItemResult {
            index,
            result: r.unwrap_or(Err(Rejection::DatabaseError)),
        })
        .collect();
    Ok(error::ok(StatusCode::OK, &Results { results }))
}

#[derive(serde::Serialize)]
struct Results {
    results: Vec<ItemResult>,
}

/// One item's answer: `{"index", "status": 201, "payout"}` or
/// `{"index", "status": 4xx, "error": {...}}`.
struct ItemResult {
    index: usize,
    result: Result<Payout, Rejection>,
}

impl Serialize for ItemResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("ItemResult", 3)?;
        out.serialize_field("index", &self.index)?;
        match &self.result {
            Ok(payout) => {
                out.serialize_field("status", &201)?;
                out.serialize_field("payout", &views::payout(payout))?;
            }
            Err(rejection) => {
                out.serialize_field("status", &rejection.status())?;
                out.serialize_field("error", &error::error_value(rejection))?;
            }
        }
        out.end()
    }
}
