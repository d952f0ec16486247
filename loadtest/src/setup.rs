//! Set-up through the admin API: merchants (fees set by the admin, a high
//! rate limit so the harness measures the server rather than the limiter,
//! a webhook_url on the sink when it runs), their webhook secrets from
//! `GET /profile`, and their api_users.

use crate::client::Api;
use crate::model::{ApiUser, MerchantModel};
use crate::money;
use crate::sink::Sink;
use hyper::Method;
use serde_json::{json, Value};
use std::sync::Arc;

/// Pay-in fees (bps) and payout fees (paise) handed out round-robin, so
/// that half-up rounding, zero fees and flat payout fees are all exercised.
pub const PAYIN_FEE_BPS: [u32; 5] = [150, 0, 199, 250, 333];
pub const PAYOUT_FEE_PAISE: [u64; 4] = [500, 0, 1_000, 250];

/// The highest per-user limit the server accepts.
pub const RATE_LIMIT_PER_MIN: u32 = 1_000_000;

fn str_field(v: &Value, path: &[&str]) -> Result<String, String> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("response lacks {}: {v}", path.join(".")))
}

async fn merchant(
    api: &Api,
    admin_key: &str,
    index: usize,
    api_users: usize,
    sink: Option<&Sink>,
) -> Result<MerchantModel, String> {
    let bps = PAYIN_FEE_BPS[index % PAYIN_FEE_BPS.len()];
    let payout_fee = PAYOUT_FEE_PAISE[index % PAYOUT_FEE_PAISE.len()];
    let mut body = json!({
        "name": format!("loadtest merchant {index}"),
        "role": "merchant",
        "rate_limit_per_min": RATE_LIMIT_PER_MIN,
        "payin_fee_bps": bps,
        // A bare 0 for a zero fee: servers before e72de84 refused "0.00".
        "payout_fee": if payout_fee == 0 { json!(0) } else { json!(money::render(payout_fee)) },
    });
    if let Some(sink) = sink {
        body["webhook_url"] = json!(sink.url_for(index));
    }
    let created = api
        .expect(Method::POST, "/api/v1/users", admin_key, Some(&body), 201)
        .await?;
    let id = str_field(&created, &["user", "id"])?;
    let key = str_field(&created, &["api_key"])?;
    let profile = api
        .expect(Method::GET, "/api/v1/profile", &key, None, 200)
        .await?;
    let secret = str_field(&profile, &["webhook_secret"])?;
    let settings = &profile["merchant_settings"];
    if settings["payin_fee_bps"].as_u64() != Some(u64::from(bps))
        || money::value_paise(&settings["payout_fee"]) != Some(payout_fee)
    {
        return Err(format!(
            "merchant {id}: fees not as set (bps {bps}, payout fee {}): {settings}",
            money::render(payout_fee)
        ));
    }
    if let Some(sink) = sink {
        sink.set_secret(index, secret.clone());
    }
    let mut users = Vec::with_capacity(api_users);
    for u in 0..api_users {
        let body = json!({
            "name": format!("loadtest api_user {index}.{u}"),
            "role": "api_user",
            "parent_id": id,
            "rate_limit_per_min": RATE_LIMIT_PER_MIN,
        });
        let created = api
            .expect(Method::POST, "/api/v1/users", admin_key, Some(&body), 201)
            .await?;
        users.push(ApiUser {
            id: str_field(&created, &["user", "id"])?,
            key: str_field(&created, &["api_key"])?,
        });
    }
    Ok(MerchantModel {
        payin_fee_bps: bps,
        payout_fee,
        webhook_secret: secret,
        api_users: users,
        ..MerchantModel::new(index, id, key)
    })
}

/// Creates `merchants` merchants with `api_users` api_users each, 8 at a time.
pub async fn create(
    api: &Api,
    admin_key: &str,
    merchants: usize,
    api_users: usize,
    sink: Option<Arc<Sink>>,
) -> Result<Vec<MerchantModel>, String> {
    let gate = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::with_capacity(merchants);
    for index in 0..merchants {
        let (api, key, sink, gate) = (
            api.clone(),
            admin_key.to_owned(),
            sink.clone(),
            gate.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            merchant(&api, &key, index, api_users, sink.as_deref()).await
        }));
    }
    let mut out = Vec::with_capacity(merchants);
    for t in tasks {
        out.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok(out)
}
