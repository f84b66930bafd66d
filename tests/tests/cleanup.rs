//! The scheduled cleanup job on both backends: old unverified accounts go with their
//! claims (so the address and username can sign up again), expired sessions and history
//! entries the TTL sweep has not reached go, everything else stays; the job is
//! idempotent, honours its time budget, and answers an EventBridge scheduled event.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use accounts::app::App;
use accounts::flows::cleanup::{self, CleanupReport};
use accounts::records::{attr, keys};
use accounts::store::{Item, Key, Page, Query, Store, TransactError, Write, WriteError};
use api_tests::{Backend, TestApp, on_both_backends, on_both_backends_with};
use api_tests::{signup_body, unique_email, unique_username};
use serde_json::json;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// Plenty of time for one run against DynamoDB Local.
const BUDGET: Duration = Duration::from_secs(120);

async fn run(app: &App) -> CleanupReport {
    cleanup::run(app, BUDGET).await.expect("the cleanup runs")
}

/// A report of a run that found nothing to do.
fn nothing_done(report: &CleanupReport) -> CleanupReport {
    CleanupReport {
        complete: true,
        elapsed_ms: report.elapsed_ms,
        ..CleanupReport::default()
    }
}

/// The account id that holds `email` (lowercase test addresses are canonical).
async fn owner_of_email(app: &TestApp, email: &str) -> Option<String> {
    claim_owner(app, &keys::email_claim(email)).await
}

async fn owner_of_username(app: &TestApp, username: &str) -> Option<String> {
    claim_owner(app, &keys::username_claim(&username.to_lowercase())).await
}

async fn claim_owner(app: &TestApp, key: &Key) -> Option<String> {
    app.app
        .store
        .get(key)
        .await
        .expect("read a claim")
        .and_then(|claim| claim.s(attr::USER_ID).map(str::to_owned))
}

/// The sort keys of every item still stored in an account's partition, expired or not
/// (what DynamoDB holds before its TTL sweep).
async fn stored_items(app: &TestApp, user_id: &str) -> Vec<String> {
    let page = app
        .app
        .store
        .query(
            &Query::partition(keys::user_partition(user_id))
                .including_expired()
                .limit(1_000),
        )
        .await
        .expect("read a partition");
    page.items
        .iter()
        .filter_map(|item| item.s("sk").map(str::to_owned))
        .collect()
}

fn count_with_prefix(sks: &[String], prefix: &str) -> usize {
    sks.iter().filter(|sk| sk.starts_with(prefix)).count()
}

/// Signs up `email` with `username` (and the test password) as a freelancer.
async fn sign_up_with_username(app: &TestApp, email: &str, username: &str) {
    let mut signup = signup_body(email);
    signup["username"] = json!(username);
    assert_eq!(app.signup(&signup).await.status(), 202);
}

on_both_backends! {
    async fn an_old_unverified_account_goes_with_its_claims_and_can_sign_up_again(app) {
        let email = unique_email();
        let username = unique_username();
        sign_up_with_username(&app, &email, &username).await;
        let old_id = owner_of_email(&app, &email).await.expect("an email claim");
        assert_eq!(owner_of_username(&app, &username).await.as_deref(), Some(old_id.as_str()));
        // A wrong password leaves a history entry and a back-off in the account.
        let wrong = app
            .login(&json!({ "login": email, "password": "not-the-password-42" }))
            .await;
        assert_eq!(wrong.status(), 401);
        let before = stored_items(&app, &old_id).await;
        assert_eq!(count_with_prefix(&before, "HISTORY#"), 1, "{before:?}");
        assert!(before.iter().any(|sk| sk == "LOCKOUT"), "{before:?}");

        let verified = unique_email();
        app.sign_up_verified(&verified).await;
        app.clock.advance(DAY);
        let younger = unique_email();
        assert_eq!(app.sign_up(&younger).await.status(), 202);
        // The first account is now 7 days and a second old; the younger 6 days.
        app.clock.advance(6 * DAY + 1);

        let report = run(&app.app).await;
        assert_eq!(report.unverified_accounts_deleted, 1, "{report:?}");
        assert_eq!(report.account_items_deleted, 2, "{report:?}");
        assert_eq!(report.unverified_accounts_kept, 0, "{report:?}");
        assert!(report.complete);
        assert_eq!(stored_items(&app, &old_id).await, Vec::<String>::new());
        assert_eq!(owner_of_email(&app, &email).await, None);
        assert_eq!(owner_of_username(&app, &username).await, None);
        assert!(owner_of_email(&app, &younger).await.is_some());
        let verified_id = owner_of_email(&app, &verified).await.expect("the verified account");
        assert!(stored_items(&app, &verified_id).await.contains(&"PROFILE".to_owned()));

        // Nothing more to do: the younger account is too young, the other verified.
        let again = run(&app.app).await;
        assert_eq!(again, nothing_done(&again));

        // The address and the username are free: a new account gets them and works.
        sign_up_with_username(&app, &email, &username).await;
        let new_id = owner_of_email(&app, &email).await.expect("a new email claim");
        assert_ne!(new_id, old_id);
        assert_eq!(owner_of_username(&app, &username).await, Some(new_id));
        let token = app.verification_token(&email).await;
        let verify = app.verify_email(&json!({ "token": token })).await;
        assert_eq!(verify.status(), 200);
        app.log_in(&username, false).await;
    }

    async fn verified_accounts_of_any_age_stay(app) {
        let email = unique_email();
        app.sign_up_verified(&email).await;
        let id = owner_of_email(&app, &email).await.expect("an email claim");
        app.clock.advance(60 * DAY);
        let report = run(&app.app).await;
        assert_eq!(report.unverified_accounts_deleted, 0, "{report:?}");
        assert_eq!(owner_of_email(&app, &email).await, Some(id));
        app.log_in(&email, false).await;
    }

    async fn an_account_verified_between_the_read_and_the_delete_stays(app) {
        let email = unique_email();
        let username = unique_username();
        sign_up_with_username(&app, &email, &username).await;
        let id = owner_of_email(&app, &email).await.expect("an email claim");
        app.clock.advance(8 * DAY);
        // A fresh link (the first one has expired), spent while the job is between its
        // read of the index and its delete.
        let resend = app.resend_verification(&json!({ "email": email })).await;
        assert_eq!(resend.status(), 202);
        let token = app.verification_token(&email).await;
        let http = app.http.clone();
        let url = format!("{}/v1/email/verify", app.address);
        let verify: BoxFuture<()> = Box::pin(async move {
            let response = http
                .post(url)
                .json(&json!({ "token": token }))
                .send()
                .await
                .expect("the request is sent");
            assert_eq!(response.status(), 200);
        });
        let store = Arc::new(BeforeFirstTransaction {
            inner: app.app.store.clone(),
            hook: Mutex::new(Some(verify)),
        });
        let racing = app.app.with_store(store.clone());

        let report = run(&racing).await;
        assert!(store.hook.lock().expect("lock").is_none(), "the job never tried a delete");
        assert_eq!(report.unverified_accounts_deleted, 0, "{report:?}");
        assert_eq!(report.unverified_accounts_kept, 1, "{report:?}");
        assert!(report.complete);
        assert_eq!(owner_of_email(&app, &email).await.as_deref(), Some(id.as_str()));
        assert_eq!(owner_of_username(&app, &username).await, Some(id));
        app.log_in(&email, false).await;
        // Verified now, it is out of the index: later runs do not look at it again.
        let again = run(&app.app).await;
        assert_eq!(again, nothing_done(&again));
    }

    async fn expired_sessions_and_history_are_swept_and_live_ones_stay(app) {
        let email = unique_email();
        app.sign_up_verified(&email).await;
        let id = owner_of_email(&app, &email).await.expect("an email claim");
        app.log_in(&email, false).await;
        app.log_in(&email, true).await;
        let fresh = stored_items(&app, &id).await;
        assert_eq!(count_with_prefix(&fresh, "SESSION#"), 2, "{fresh:?}");
        assert_eq!(count_with_prefix(&fresh, "HISTORY#"), 2, "{fresh:?}");

        // The plain session (12 hours) is over; the "remember me" one is not.
        app.clock.advance(13 * HOUR);
        let report = run(&app.app).await;
        assert_eq!(report.expired_items_deleted, 1, "{report:?}");
        assert_eq!(report.expired_items_kept, 0, "{report:?}");
        assert!(report.complete);
        let left = stored_items(&app, &id).await;
        assert_eq!(count_with_prefix(&left, "SESSION#"), 1, "{left:?}");
        assert_eq!(count_with_prefix(&left, "HISTORY#"), 2, "{left:?}");
        let again = run(&app.app).await;
        assert_eq!(again, nothing_done(&again));

        // Past the history's 90-day retention: the entries and the idle session go.
        app.clock.advance(90 * DAY);
        let report = run(&app.app).await;
        assert_eq!(report.expired_items_deleted, 3, "{report:?}");
        assert!(report.complete);
        let left = stored_items(&app, &id).await;
        assert_eq!(count_with_prefix(&left, "SESSION#"), 0, "{left:?}");
        assert_eq!(count_with_prefix(&left, "HISTORY#"), 0, "{left:?}");
        assert!(left.contains(&"PROFILE".to_owned()), "{left:?}");
        let again = run(&app.app).await;
        assert_eq!(again, nothing_done(&again));
    }

    async fn an_account_whose_claim_names_another_account_goes_without_that_claim(app) {
        let email = unique_email();
        let username = unique_username();
        sign_up_with_username(&app, &email, &username).await;
        let id = owner_of_email(&app, &email).await.expect("an email claim");
        // An inconsistency the job must not trip over (nor delete someone else's claim).
        app.app
            .store
            .write(Write::put(
                Item::new(&keys::email_claim(&email))
                    .with(attr::USER_ID, "someone-else")
                    .with(attr::EMAIL, email.as_str()),
            ))
            .await
            .expect("overwrite the claim");
        app.clock.advance(7 * DAY);

        let report = run(&app.app).await;
        assert_eq!(report.unverified_accounts_deleted, 1, "{report:?}");
        assert_eq!(stored_items(&app, &id).await, Vec::<String>::new());
        assert_eq!(owner_of_email(&app, &email).await.as_deref(), Some("someone-else"));
        assert_eq!(owner_of_username(&app, &username).await, None);
    }

    async fn a_second_run_deletes_nothing(app) {
        let stale = unique_email();
        assert_eq!(app.sign_up(&stale).await.status(), 202);
        let member = unique_email();
        app.sign_up_verified(&member).await;
        app.log_in(&member, false).await;
        app.clock.advance(7 * DAY);

        let first = run(&app.app).await;
        assert_eq!(first.unverified_accounts_deleted, 1, "{first:?}");
        assert_eq!(first.expired_items_deleted, 1, "{first:?}");
        assert!(first.complete);
        let second = run(&app.app).await;
        assert_eq!(second, nothing_done(&second));
    }

    async fn a_spent_budget_stops_the_job_without_an_error(app) {
        let email = unique_email();
        assert_eq!(app.sign_up(&email).await.status(), 202);
        app.clock.advance(7 * DAY);

        let report = cleanup::run(&app.app, Duration::ZERO)
            .await
            .expect("a spent budget is not an error");
        assert!(!report.complete);
        assert_eq!(report.unverified_accounts_deleted, 0, "{report:?}");
        assert_eq!(report.expired_items_deleted, 0, "{report:?}");
        assert!(owner_of_email(&app, &email).await.is_some());

        // The next run finishes the work.
        let report = run(&app.app).await;
        assert!(report.complete);
        assert_eq!(report.unverified_accounts_deleted, 1, "{report:?}");
        assert_eq!(owner_of_email(&app, &email).await, None);
    }
}

on_both_backends_with! {
    &[("UNVERIFIED_ACCOUNT_MAX_AGE_DAYS", "2")];
    async fn the_maximum_age_is_configurable(app) {
        let old = unique_email();
        assert_eq!(app.sign_up(&old).await.status(), 202);
        app.clock.advance(DAY);
        let young = unique_email();
        assert_eq!(app.sign_up(&young).await.status(), 202);
        app.clock.advance(DAY);

        let report = run(&app.app).await;
        assert_eq!(report.unverified_accounts_deleted, 1, "{report:?}");
        assert_eq!(owner_of_email(&app, &old).await, None);
        assert!(owner_of_email(&app, &young).await.is_some());
    }
}

/// The scheduled function's handler, given the event EventBridge sends (parsed as the
/// runtime parses a payload) and the budget it derives from the invocation's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_answers_an_eventbridge_scheduled_event() {
    let app = TestApp::spawn(Backend::Memory).await;
    let email = unique_email();
    assert_eq!(app.sign_up(&email).await.status(), 202);
    app.clock.advance(8 * DAY);

    let event: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/eventbridge-scheduled.json"))
            .expect("the fixture is JSON");
    assert_eq!(event["detail-type"], "Scheduled Event");
    let now = SystemTime::now();
    let budget = cleanup::budget(now + Duration::from_secs(300), now);
    assert_eq!(budget, Duration::from_secs(300) - cleanup::SAFETY_MARGIN);

    let report = cleanup::handle_scheduled_event(&app.app, &event, budget)
        .await
        .expect("the handler succeeds");
    assert!(report.complete);
    assert_eq!(report.unverified_accounts_deleted, 1, "{report:?}");
    assert_eq!(owner_of_email(&app, &email).await, None);
    // The report is the function's response.
    let response = serde_json::to_value(&report).expect("the report serialises");
    assert_eq!(response["unverified_accounts_deleted"], 1);
    assert_eq!(response["expired_items_deleted"], 0);
    assert_eq!(response["complete"], true);

    // With too little time left, the handler starts nothing and says so.
    let late = cleanup::budget(now + Duration::from_secs(3), now);
    let report = cleanup::handle_scheduled_event(&app.app, &event, late)
        .await
        .expect("the handler succeeds");
    assert!(!report.complete);
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A store that runs a hook (another request) just before the first transaction, i.e.
/// between the cleanup's read of an account and its delete. Written out by hand: the
/// `Store` trait is an `async_trait`, and this package does not depend on that macro.
struct BeforeFirstTransaction {
    inner: Arc<dyn Store>,
    hook: Mutex<Option<BoxFuture<()>>>,
}

type StoreFuture<'t, T> = Pin<Box<dyn Future<Output = T> + Send + 't>>;

impl Store for BeforeFirstTransaction {
    fn get<'a, 'b, 't>(&'a self, key: &'b Key) -> StoreFuture<'t, anyhow::Result<Option<Item>>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        self.inner.get(key)
    }

    fn get_many<'a, 'b, 't>(&'a self, keys: &'b [Key]) -> StoreFuture<'t, anyhow::Result<Vec<Item>>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        self.inner.get_many(keys)
    }

    fn query<'a, 'b, 't>(&'a self, query: &'b Query) -> StoreFuture<'t, anyhow::Result<Page>>
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        self.inner.query(query)
    }

    fn write<'a, 't>(&'a self, write: Write) -> StoreFuture<'t, Result<Option<Item>, WriteError>>
    where
        'a: 't,
        Self: 't,
    {
        self.inner.write(write)
    }

    fn transact<'a, 't>(&'a self, writes: Vec<Write>) -> StoreFuture<'t, Result<(), TransactError>>
    where
        'a: 't,
        Self: 't,
    {
        let hook = self.hook.lock().expect("lock").take();
        Box::pin(async move {
            if let Some(hook) = hook {
                hook.await;
            }
            self.inner.transact(writes).await
        })
    }

    fn ping<'a, 't>(&'a self) -> StoreFuture<'t, anyhow::Result<()>>
    where
        'a: 't,
        Self: 't,
    {
        self.inner.ping()
    }
}
