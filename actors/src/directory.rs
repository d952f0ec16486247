//! The user directory: who exists, their keys, roles and settings.
//!
//! Reads (authenticating a key, walking up the tree for suspension) are
//! lock-free `DashMap` lookups on an in-memory copy loaded at start-up. Every
//! change goes through one directory actor, which writes it to storage (user
//! record, key hash, subtree index and outbox row in one batch), waits until
//! it is durable, and only then updates the in-memory copy. Users are few
//! and change rarely next to payments, so one serialising actor is plenty and
//! makes "regenerating a key invalidates the old one at once" trivially true.

use crate::WalletHandle;
use dashmap::DashMap;
use domain::audit_log::{self, Changes};
use domain::{
    AuditAction, AuditContext, AuditEntry, EventId, EventPayload, EventType, Money, OutboxEvent,
    Rejection, Role, Secret, Timestamp, User, UserId, UserStatus,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use storage::{Store, WriteSet};

/// Prefix of every API key, so leaked keys are recognisable.
pub const KEY_PREFIX: &str = domain::api_key::PREFIX;
/// Prefix of webhook signing secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// What a caller asks for when creating a user. Authorisation (may this
/// caller create this role under this parent?) is checked by the caller;
/// the directory checks that the tree stays valid.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    pub parent_id: Option<UserId>,
    pub webhook_url: Option<String>,
    pub rate_limit_per_min: Option<u32>,
    pub payin_fee_bps: Option<u32>,
    pub payout_fee: Option<Money>,
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the URL.
    pub webhook_url: Option<Option<String>>,
    pub status: Option<UserStatus>,
    pub role: Option<Role>,
    pub rate_limit_per_min: Option<u32>,
    pub payin_fee_bps: Option<u32>,
    pub payout_fee: Option<Money>,
    /// `Some(None)` removes the settlement account (checked by the caller).
    pub settlement_account: Option<Option<domain::SettlementAccount>>,
    pub settlement_reserve: Option<Money>,
}

enum DirMsg {
    Create(
        Box<(NewUser, AuditContext)>,
        RpcReplyPort<Result<(User, String), Rejection>>,
    ),
    Update(
        UserId,
        Box<(UserPatch, AuditContext)>,
        RpcReplyPort<Result<User, Rejection>>,
    ),
    RegenerateKey(
        UserId,
        Box<AuditContext>,
        RpcReplyPort<Result<(User, String), Rejection>>,
    ),
    RotateSecret(
        UserId,
        Box<AuditContext>,
        RpcReplyPort<Result<User, Rejection>>,
    ),
    Bootstrap(
        Option<String>,
        RpcReplyPort<Result<Option<String>, Rejection>>,
    ),
    /// Write the `last_used_at` minutes waiting in `Maps::touched`.
    Touch,
}

/// Minutes since the epoch, the precision of `last_used_at`.
fn minute_of(t: Timestamp) -> i64 {
    t.unix_ms().div_euclid(60_000)
}

struct Maps {
    users: DashMap<UserId, Arc<User>>,
    keys: DashMap<[u8; 32], UserId>,
    /// The last minute each user's key authenticated in, as known here
    /// (written or waiting to be): a request in the same minute does nothing.
    last_minute: DashMap<UserId, i64>,
    /// `last_used_at` minutes not written yet; the directory actor drains
    /// them all into one write.
    touched: std::sync::Mutex<std::collections::HashMap<UserId, i64>>,
}

/// The directory's public API; cheap to clone.
#[derive(Clone)]
pub struct Directory {
    maps: Arc<Maps>,
    actor: ActorRef<DirMsg>,
    timeout: Duration,
}

/// SHA-256 of an API key: all that is ever stored of it.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_token(prefix: &str, bytes: usize) -> Result<String, Rejection> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| Rejection::DatabaseError)?;
    Ok(format!("{prefix}{}", hex(&buf)))
}

/// A new API key (SPEC §16 format).
fn new_api_key() -> Result<String, Rejection> {
    domain::api_key::generate(getrandom::fill).map_err(|_| Rejection::DatabaseError)
}

fn db(e: storage::StorageError) -> Rejection {
    tracing::error!(error = %e, "storage error in directory");
    Rejection::DatabaseError
}

impl Directory {
    /// Loads every user into memory and starts the directory actor.
    pub async fn start(
        store: Store,
        wallets: WalletHandle,
        default_rate_limit_per_min: u32,
    ) -> Result<Directory, ractor::SpawnErr> {
        let maps = Arc::new(Maps {
            users: DashMap::new(),
            keys: DashMap::new(),
            last_minute: DashMap::new(),
            touched: std::sync::Mutex::new(std::collections::HashMap::new()),
        });
        let users = store
            .all_users()
            .map_err(|e| ractor::SpawnErr::StartupFailed(e.to_string().into()))?;
        for user in users {
            if let Some(hash) = parse_hash(&user.key_hash) {
                maps.keys.insert(hash, user.id);
            }
            if let Some(t) = user.last_used_at {
                maps.last_minute.insert(user.id, minute_of(t));
            }
            maps.users.insert(user.id, Arc::new(user));
        }
        let state = DirState {
            maps: maps.clone(),
            store,
            wallets,
            default_rate_limit_per_min,
        };
        let (actor, _join) = Actor::spawn(None, DirActor, state).await?;
        Ok(Directory {
            maps,
            actor,
            timeout: Duration::from_secs(30),
        })
    }

    /// The active-or-not user behind an API key, if the key is current.
    pub fn authenticate(&self, key: &str) -> Option<Arc<User>> {
        let id = *self.maps.keys.get(&key_hash(key))?;
        self.get(&id)
    }

    /// Records that `user`'s key just authenticated (`last_used_at`, to the
    /// minute). No write per request: the first use in a minute queues the
    /// minute and asks the directory actor (without waiting) to write every
    /// queued minute in one batch; the field is shown once that write is
    /// durable, and survives a restart to the minute.
    pub fn touch(&self, user: &User) {
        let minute = minute_of(Timestamp::now());
        let newer = match self.maps.last_minute.get(&user.id) {
            Some(m) => *m < minute,
            None => true,
        };
        if !newer {
            return;
        }
        self.maps.last_minute.insert(user.id, minute);
        if let Ok(mut touched) = self.maps.touched.lock() {
            touched.insert(user.id, minute);
        }
        let _ = self.actor.cast(DirMsg::Touch);
    }

    pub fn get(&self, id: &UserId) -> Option<Arc<User>> {
        self.maps.users.get(id).map(|u| u.clone())
    }

    /// True if the user or any ancestor is suspended.
    pub fn is_blocked(&self, user: &User) -> bool {
        let mut current = Some(user.id);
        for _depth in 0..8 {
            let Some(id) = current else { return false };
            let Some(u) = self.get(&id) else { return true };
            if u.status == UserStatus::Suspended {
                return true;
            }
            current = u.parent_id;
        }
        true
    }

    /// True if `ancestor` is `user` or above it in the tree.
    pub fn is_within(&self, ancestor: &UserId, user: &UserId) -> bool {
        let mut current = Some(*user);
        for _depth in 0..8 {
            let Some(id) = current else { return false };
            if id == *ancestor {
                return true;
            }
            current = self.get(&id).and_then(|u| u.parent_id);
        }
        false
    }

    /// Ids of every merchant.
    pub fn merchants(&self) -> Vec<UserId> {
        self.maps
            .users
            .iter()
            .filter(|u| u.role == Role::Merchant)
            .map(|u| u.id)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.maps.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.maps.users.is_empty()
    }

    /// On an empty store, creates the first admin (with `admin_key` if
    /// given) and returns its key; otherwise `None`.
    pub async fn bootstrap(&self, admin_key: Option<String>) -> Result<Option<String>, Rejection> {
        self.call(|r| DirMsg::Bootstrap(admin_key, r)).await
    }

    /// Creates a user; returns it with its API key (shown only now).
    /// The platform acts (audit `actor_id` null); see `create_as`.
    pub async fn create(&self, new: NewUser) -> Result<(User, String), Rejection> {
        self.create_as(new, AuditContext::platform(None)).await
    }

    /// Creates a user on behalf of `audit`'s actor; the audit entry is in
    /// the same write as the user.
    pub async fn create_as(
        &self,
        new: NewUser,
        audit: AuditContext,
    ) -> Result<(User, String), Rejection> {
        self.call(|r| DirMsg::Create(Box::new((new, audit)), r))
            .await
    }

    /// Changes a user as the platform (audit `actor_id` null).
    pub async fn update(&self, id: UserId, patch: UserPatch) -> Result<User, Rejection> {
        self.update_as(id, patch, AuditContext::platform(None))
            .await
    }

    /// Changes a user; one audit entry per kind of change (role, status,
    /// settlement account, the rest), in the same write as the change.
    pub async fn update_as(
        &self,
        id: UserId,
        patch: UserPatch,
        audit: AuditContext,
    ) -> Result<User, Rejection> {
        self.call(|r| DirMsg::Update(id, Box::new((patch, audit)), r))
            .await
    }

    /// Replaces the user's API key; the old one stops working at once.
    pub async fn regenerate_key(&self, id: UserId) -> Result<(User, String), Rejection> {
        self.regenerate_key_as(id, AuditContext::platform(None))
            .await
    }

    pub async fn regenerate_key_as(
        &self,
        id: UserId,
        audit: AuditContext,
    ) -> Result<(User, String), Rejection> {
        self.call(|r| DirMsg::RegenerateKey(id, Box::new(audit), r))
            .await
    }

    pub async fn rotate_webhook_secret(&self, id: UserId) -> Result<User, Rejection> {
        self.rotate_webhook_secret_as(id, AuditContext::platform(None))
            .await
    }

    pub async fn rotate_webhook_secret_as(
        &self,
        id: UserId,
        audit: AuditContext,
    ) -> Result<User, Rejection> {
        self.call(|r| DirMsg::RotateSecret(id, Box::new(audit), r))
            .await
    }

    /// Ancestors of `user` (nearest first, the user excluded): the scope
    /// an audit entry about a record of this merchant is listed under.
    pub fn ancestors_of(&self, user: &UserId) -> Vec<UserId> {
        let mut chain = Vec::new();
        let mut current = self.get(user).and_then(|u| u.parent_id);
        while let Some(id) = current {
            if chain.contains(&id) || chain.len() >= 8 {
                break;
            }
            chain.push(id);
            current = self.get(&id).and_then(|u| u.parent_id);
        }
        chain
    }

    async fn call<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<Result<T, Rejection>>) -> DirMsg,
    ) -> Result<T, Rejection> {
        match self.actor.call(build, Some(self.timeout)).await {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            _ => Err(Rejection::ServiceUnavailable),
        }
    }

    pub fn stop(&self) {
        self.actor.stop(None);
    }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

struct DirActor;

struct DirState {
    maps: Arc<Maps>,
    store: Store,
    wallets: WalletHandle,
    default_rate_limit_per_min: u32,
}

impl Actor for DirActor {
    type Msg = DirMsg;
    type State = DirState;
    type Arguments = DirState;

    async fn pre_start(
        &self,
        _me: ActorRef<DirMsg>,
        state: DirState,
    ) -> Result<DirState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        _me: ActorRef<DirMsg>,
        msg: DirMsg,
        state: &mut DirState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DirMsg::Create(new, reply) => {
                let (new, audit) = *new;
                let _ = reply.send(state.create(new, None, &audit).await);
            }
            DirMsg::Update(id, patch, reply) => {
                let (patch, audit) = *patch;
                let _ = reply.send(state.update(id, patch, &audit).await);
            }
            DirMsg::RegenerateKey(id, audit, reply) => {
                let _ = reply.send(state.regenerate_key(id, &audit).await);
            }
            DirMsg::RotateSecret(id, audit, reply) => {
                let _ = reply.send(state.rotate_secret(id, &audit).await);
            }
            DirMsg::Bootstrap(key, reply) => {
                let _ = reply.send(state.bootstrap(key).await);
            }
            DirMsg::Touch => state.write_touches().await,
        }
        Ok(())
    }
}

impl DirState {
    fn user(&self, id: &UserId) -> Result<User, Rejection> {
        self.maps
            .users
            .get(id)
            .map(|u| (**u).clone())
            .ok_or(Rejection::NotFound)
    }

    /// Ancestors of a (new or existing) user with parent `parent`, nearest first.
    fn ancestors(&self, parent: Option<UserId>) -> Vec<UserId> {
        let mut chain = Vec::new();
        let mut current = parent;
        while let Some(id) = current {
            if chain.contains(&id) || chain.len() > 8 {
                break;
            }
            chain.push(id);
            current = self.maps.users.get(&id).and_then(|u| u.parent_id);
        }
        chain
    }

    /// An event about `user` to its parent; `extra` fields join the payload.
    fn event(
        &self,
        event: EventType,
        user: &User,
        extra: serde_json::Value,
        now: Timestamp,
    ) -> Option<OutboxEvent> {
        let parent = user.parent_id?;
        let id = EventId::new();
        let mut payload = json!({
            "id": id, "event": event.as_str(), "user_id": user.id, "role": user.role,
            "status": user.status, "name": user.name, "timestamp": now,
        });
        if let (Some(p), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
            p.extend(extra);
        }
        let payload = EventPayload::of(&payload);
        Some(OutboxEvent::new(id, event, &[parent], payload, now))
    }

    /// A security event (SPEC §16): to the user itself and to its parent.
    /// `extra` fields join the payload; never a key or a secret.
    fn security_event(
        &self,
        event: EventType,
        user: &User,
        audit: &AuditContext,
        extra: serde_json::Value,
        now: Timestamp,
    ) -> OutboxEvent {
        let id = EventId::new();
        let mut payload = json!({
            "id": id, "event": event.as_str(), "user_id": user.id, "role": user.role,
            "status": user.status, "name": user.name, "actor_id": audit.actor_id,
            "timestamp": now,
        });
        if let (Some(p), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
            p.extend(extra);
        }
        let mut recipients = vec![user.id];
        recipients.extend(user.parent_id);
        OutboxEvent::new(id, event, &recipients, EventPayload::of(&payload), now)
    }

    /// The audit scope of a user: itself and its ancestors.
    fn scope(&self, user: &User) -> Vec<UserId> {
        let mut scope = vec![user.id];
        scope.extend(self.ancestors(user.parent_id));
        scope
    }

    /// Writes the user (and a new key hash, events, the change's audit
    /// entries) in ONE write set durably, then publishes it in memory.
    async fn save_audited(
        &self,
        user: User,
        old_hash: Option<&str>,
        index: bool,
        events: Vec<OutboxEvent>,
        audit: &[AuditEntry],
    ) -> Result<User, Rejection> {
        let mut writes = WriteSet::new();
        let scope = self.scope(&user);
        for entry in audit {
            writes.audit_recorded(entry, &scope).map_err(db)?;
        }
        writes.user_saved(&user).map_err(db)?;
        let new_hash = parse_hash(&user.key_hash);
        if old_hash != Some(user.key_hash.as_str()) {
            if let Some(old) = old_hash.and_then(parse_hash) {
                writes.api_key_revoked(&old);
            }
            if let Some(hash) = new_hash {
                writes.api_key_issued(&hash, &user.id);
            }
        }
        if index {
            writes.user_listed(&user.id, &self.ancestors(user.parent_id));
        }
        for event in &events {
            storage::outbox::enqueue(&mut writes, event).map_err(db)?;
        }
        self.store.commit(writes).await.map_err(db)?;
        if old_hash != Some(user.key_hash.as_str()) {
            if let Some(old) = old_hash.and_then(parse_hash) {
                self.maps.keys.remove(&old);
            }
            if let Some(hash) = new_hash {
                self.maps.keys.insert(hash, user.id);
            }
        }
        self.maps.users.insert(user.id, Arc::new(user.clone()));
        Ok(user)
    }

    async fn bootstrap(&self, admin_key: Option<String>) -> Result<Option<String>, Rejection> {
        if !self.maps.users.is_empty() {
            return Ok(None);
        }
        let new = NewUser {
            name: "Administrator".into(),
            email: None,
            role: Role::Admin,
            parent_id: None,
            webhook_url: None,
            rate_limit_per_min: None,
            payin_fee_bps: None,
            payout_fee: None,
        };
        self.create(new, admin_key, &AuditContext::platform(Some("bootstrap")))
            .await
            .map(|(_, key)| Some(key))
    }

    async fn create(
        &self,
        new: NewUser,
        key: Option<String>,
        audit: &AuditContext,
    ) -> Result<(User, String), Rejection> {
        let parent = match new.parent_id {
            Some(pid) => Some(
                self.user(&pid)
                    .map_err(|_| Rejection::InvalidRequest("parent_id does not exist".into()))?,
            ),
            None if self.maps.users.is_empty() && new.role == Role::Admin => None,
            None => return Err(Rejection::MissingFields(vec!["parent_id".into()])),
        };
        if let Some(parent) = &parent {
            if !new.role.may_have_parent(parent.role) {
                return Err(Rejection::InvalidRequest(format!(
                    "a {} cannot be placed under a {}",
                    new.role.as_str(),
                    parent.role.as_str()
                )));
            }
        }
        let key = match key {
            Some(k) => k,
            None => new_api_key()?,
        };
        let id = UserId::new();
        let now = Timestamp::from_unix_ms(i64::try_from(id.unix_ms()).unwrap_or(i64::MAX));
        let merchant_id = match new.role {
            Role::Merchant => Some(id),
            Role::ApiUser => parent.as_ref().map(|p| p.id),
            _ => None,
        };
        let user = User {
            id,
            name: new.name,
            email: new.email,
            role: new.role,
            status: UserStatus::Active,
            parent_id: parent.as_ref().map(|p| p.id),
            merchant_id,
            webhook_url: new.webhook_url,
            webhook_secret: Secret::new(random_token(SECRET_PREFIX, 24)?),
            previous_webhook_secret: None,
            webhook_secret_rotated_at: None,
            rate_limit_per_min: new
                .rate_limit_per_min
                .unwrap_or(self.default_rate_limit_per_min),
            payin_fee_bps: new.payin_fee_bps.unwrap_or(0),
            payout_fee: new.payout_fee.unwrap_or(Money::ZERO),
            key_hash: hex(&key_hash(&key)),
            created_at: now,
            updated_at: now,
            settlement_account: None,
            settlement_reserve: Money::ZERO,
            last_used_at: None,
        };
        let event = self.event(EventType::UserCreated, &user, json!({}), now);
        let entry = audit.entry(
            AuditAction::UserCreated,
            user.id.to_string(),
            audit_log::user_created(&user),
        );
        let events = event.into_iter().collect();
        let user = self
            .save_audited(user, None, true, events, &[entry])
            .await?;
        Ok((user, key))
    }

    async fn update(
        &self,
        id: UserId,
        patch: UserPatch,
        audit: &AuditContext,
    ) -> Result<User, Rejection> {
        let mut user = self.user(&id)?;
        let before = user.clone();
        if let Some(role) = patch.role {
            self.check_role_change(&user, role)?;
            user.role = role;
            user.merchant_id = match role {
                Role::Merchant => Some(user.id),
                Role::ApiUser => user.parent_id,
                _ => None,
            };
        }
        if let Some(name) = patch.name {
            user.name = name;
        }
        if let Some(url) = patch.webhook_url {
            user.webhook_url = url;
        }
        if let Some(status) = patch.status {
            user.status = status;
        }
        if let Some(limit) = patch.rate_limit_per_min {
            user.rate_limit_per_min = limit;
        }
        if let Some(bps) = patch.payin_fee_bps {
            user.payin_fee_bps = bps;
        }
        if let Some(fee) = patch.payout_fee {
            user.payout_fee = fee;
        }
        if let Some(account) = patch.settlement_account {
            user.settlement_account = account;
        }
        if let Some(reserve) = patch.settlement_reserve {
            user.settlement_reserve = reserve;
        }
        if user == before {
            return Ok(user);
        }
        let now = Timestamp::now();
        user.updated_at = now;
        let mut events = Vec::new();
        let mut entries = Vec::new();
        // The suspension's kind: `misuse` when the platform suspends a key
        // for misuse, `manual` otherwise.
        let kind = if audit.actor_id.is_none() && audit.reason.as_deref() == Some("misuse") {
            "misuse"
        } else {
            "manual"
        };
        for (action, changes) in audit_log::user_changes(&before, &user) {
            let ctx = match action {
                AuditAction::UserSuspended => audit
                    .clone()
                    .with_reason(Some(audit.reason.clone().unwrap_or_else(|| kind.into()))),
                _ => audit.clone(),
            };
            match action {
                AuditAction::UserSuspended => {
                    let extra = json!({ "reason": kind, "actor_id": audit.actor_id });
                    if let Some(event) = self.event(EventType::UserSuspended, &user, extra, now) {
                        events.push(event);
                    }
                }
                AuditAction::UserReactivated => events.push(self.security_event(
                    EventType::UserReactivated,
                    &user,
                    audit,
                    json!({}),
                    now,
                )),
                AuditAction::UserRoleChanged => events.push(self.security_event(
                    EventType::UserRoleChanged,
                    &user,
                    audit,
                    json!({ "previous_role": before.role }),
                    now,
                )),
                _ => {}
            }
            entries.push(ctx.entry(action, user.id.to_string(), changes));
        }
        let fees_changed = (before.payin_fee_bps, before.payout_fee, before.role)
            != (user.payin_fee_bps, user.payout_fee, user.role);
        let saved = self
            .save_audited(user, Some(&before.key_hash), false, events, &entries)
            .await?;
        if fees_changed && before.role == Role::Merchant {
            // The wallet caches its fee schedule; tell it to re-read.
            if let Err(r) = self.wallets.reload_settings(saved.id).await {
                tracing::warn!(user = %saved.id, rejection = %r, "wallet did not reload its settings");
            }
        }
        Ok(saved)
    }

    /// Writes every queued `last_used_at` minute in ONE write set, waits
    /// until it is durable, then shows it. Later `Touch` messages find the
    /// queue empty and write nothing, so a burst is one write.
    async fn write_touches(&self) {
        let touched = match self.maps.touched.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return,
        };
        let mut writes = WriteSet::new();
        let mut users = Vec::with_capacity(touched.len());
        for (id, minute) in touched {
            let Ok(mut user) = self.user(&id) else {
                continue;
            };
            if user.last_used_at.is_some_and(|t| minute_of(t) >= minute) {
                continue;
            }
            user.last_used_at = Some(Timestamp::from_unix_ms(minute.saturating_mul(60_000)));
            if writes.user_saved(&user).is_ok() {
                users.push(user);
            }
        }
        if users.is_empty() {
            return;
        }
        match self.store.commit(writes).await {
            Ok(()) => {
                for user in users {
                    self.maps.users.insert(user.id, Arc::new(user));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "last_used_at not written");
                // A later use in the same minute tries again.
                for user in users {
                    self.maps.last_minute.remove(&user.id);
                }
            }
        }
    }

    fn check_role_change(&self, user: &User, role: Role) -> Result<(), Rejection> {
        if role == user.role {
            return Ok(());
        }
        let invalid = |why: &str| Rejection::InvalidRequest(format!("role change refused: {why}"));
        match user.parent_id {
            None => return Err(invalid("the first admin keeps its role")),
            Some(pid) => {
                let parent = self.user(&pid)?;
                if !role.may_have_parent(parent.role) {
                    return Err(invalid(&format!(
                        "a {} cannot be under a {}",
                        role.as_str(),
                        parent.role.as_str()
                    )));
                }
            }
        }
        let has_invalid_child = self
            .maps
            .users
            .iter()
            .any(|u| u.parent_id == Some(user.id) && !u.role.may_have_parent(role));
        if has_invalid_child {
            return Err(invalid(
                "it has users that could not stay under the new role",
            ));
        }
        Ok(())
    }

    async fn regenerate_key(
        &self,
        id: UserId,
        audit: &AuditContext,
    ) -> Result<(User, String), Rejection> {
        let mut user = self.user(&id)?;
        let old = user.key_hash.clone();
        let key = new_api_key()?;
        let now = Timestamp::now();
        user.key_hash = hex(&key_hash(&key));
        user.updated_at = now;
        // Neither the key nor its hash is ever in the log or the event.
        let entry = audit.entry(
            AuditAction::ApiKeyRegenerated,
            user.id.to_string(),
            Changes::default(),
        );
        let event = self.security_event(EventType::ApiKeyRegenerated, &user, audit, json!({}), now);
        let user = self
            .save_audited(user, Some(&old), false, vec![event], &[entry])
            .await?;
        Ok((user, key))
    }

    async fn rotate_secret(&self, id: UserId, audit: &AuditContext) -> Result<User, Rejection> {
        let mut user = self.user(&id)?;
        let now = Timestamp::now();
        let new_secret = Secret::new(random_token(SECRET_PREFIX, 24)?);
        user.previous_webhook_secret =
            Some(std::mem::replace(&mut user.webhook_secret, new_secret));
        user.webhook_secret_rotated_at = Some(now);
        user.updated_at = now;
        let old = user.key_hash.clone();
        let entry = audit.entry(
            AuditAction::WebhookSecretRotated,
            user.id.to_string(),
            Changes::default(),
        );
        let event = self.security_event(
            EventType::WebhookSecretRotated,
            &user,
            audit,
            json!({}),
            now,
        );
        self.save_audited(user, Some(&old), false, vec![event], &[entry])
            .await
    }
}
