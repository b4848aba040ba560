//! Versions and test events: a snapshot per version written with the function, newest first,
//! bounded, gone with the function; test events saved, replaced, bounded and gone with it.

use chrono::{Duration, Utc};
use fnbox_core::{BuildStatus, Function, RawJson, StoreError, TestEvent, TestEventSaved, MAX_VERSIONS};
use uuid::Uuid;

use super::{function, Backend, StoreUnderTest};

async fn versions(store: &dyn StoreUnderTest, name: &str) -> Vec<u32> {
    store.list_versions(name).await.expect("list versions").into_iter().map(|v| v.version).collect()
}

/// Writes `f` as its next state (compare-and-swap on what was stored).
async fn update(store: &dyn StoreUnderTest, f: &mut Function, change: impl FnOnce(&mut Function)) {
    let read_at = f.updated_at;
    change(f);
    f.updated_at = read_at + Duration::milliseconds(1);
    store.update_function(f, read_at).await.expect("update");
}

/// Create keeps version 1; a write that makes a new version keeps it too, one that does not
/// changes no snapshot (but a build that ends is recorded on its version's); each snapshot
/// holds its own code and environment values.
pub async fn every_version_is_kept_with_its_function(b: &dyn Backend) {
    let store = b.open("n1").await;
    assert!(versions(&*store, "v").await.is_empty(), "no such function");
    let mut f = function("v");
    store.insert_function(&f).await.expect("insert");
    assert_eq!(versions(&*store, "v").await, [1]);
    let created = f.created_at;

    update(&*store, &mut f, |f| f.description = "edited, not a new version".into()).await;
    assert_eq!(versions(&*store, "v").await, [1]);
    let v1 = store.get_version("v", 1).await.expect("get").expect("version 1");
    assert_eq!(v1.description, "", "a snapshot keeps its version's state");

    update(&*store, &mut f, |f| {
        f.version = 2;
        f.code = "def handler(e, c): return 2".into();
        f.env.insert("A".into(), "two".into());
        f.dependencies = Some("pyyaml\n".into());
        let mut b = fnbox_core::Build::started("h".into(), 2, None, Utc::now());
        b.logs = "pip says a lot".into();
        f.build = Some(b);
        f.serving = Some(Box::new(v1.clone()));
    })
    .await;
    let v2_made = f.updated_at;
    update(&*store, &mut f, |f| {
        if let Some(b) = f.build.as_mut() {
            b.status = BuildStatus::Ready;
            b.lock = Some("pyyaml==6.0.2\n".into());
            b.image = Some("0123456789abcdef01234567".into());
        }
        f.serving = None;
    })
    .await;

    let store = b.open("n1").await;
    let list = store.list_versions("v").await.expect("list");
    assert_eq!(list.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1], "newest first");
    assert_eq!((list[0].created_at, list[1].created_at), (v2_made, created));
    assert_eq!((list[0].code_bytes, list[1].code_bytes), (27, 24));
    assert_eq!((list[0].has_dependencies, list[1].has_dependencies), (true, false));
    assert_eq!((list[0].build, list[1].build), (BuildStatus::Ready, BuildStatus::None), "a build that ended is on its version");

    let v1 = store.get_version("v", 1).await.expect("get").expect("version 1");
    let v2 = store.get_version("v", 2).await.expect("get").expect("version 2");
    assert_eq!((v1.version, v1.code.as_str(), v1.env.get("A").map(String::as_str)), (1, "def handler(e): return e", Some("1")));
    assert_eq!((v2.version, v2.code.as_str(), v2.env.get("A").map(String::as_str)), (2, "def handler(e, c): return 2", Some("two")));
    assert_eq!((v1.id, v1.name.as_str(), v1.created_at, v1.updated_at), (f.id, "v", created, created));
    assert_eq!(v2.created_at, v2_made, "when the version was made, not when its build ended");
    assert_eq!(v2.sample_input, f.sample_input);
    let build = v2.build.expect("build");
    assert_eq!((build.status, build.lock.as_deref(), build.logs.as_str()), (BuildStatus::Ready, Some("pyyaml==6.0.2\n"), ""));
    assert!(v2.serving.is_none(), "the version serving meanwhile belongs to the function, not the version");
    assert_eq!(store.get_version("v", 3).await.expect("get"), None);
    assert_eq!(store.get_version("nope", 1).await.expect("get"), None);

    // A write that loses its compare-and-swap keeps no snapshot either.
    let mut loser = f.clone();
    loser.version = 3;
    loser.updated_at = f.updated_at + Duration::milliseconds(9);
    assert!(matches!(store.update_function(&loser, f.created_at).await, Err(StoreError::Stale(_))));
    assert_eq!(versions(&*store, "v").await, [2, 1]);
}

/// At most [`MAX_VERSIONS`] are kept, the oldest pruned; deleting the function deletes its
/// history, and a function created again under the name starts a history of its own.
pub async fn versions_are_bounded_and_go_with_their_function(b: &dyn Backend) {
    let store = b.open("n1").await;
    let mut f = function("many");
    store.insert_function(&f).await.expect("insert");
    let last = MAX_VERSIONS + 3;
    for v in 2..=last {
        update(&*store, &mut f, |f| {
            f.version = v;
            f.code = format!("def handler(e, c): return {v}");
        })
        .await;
    }
    let kept = versions(&*store, "many").await;
    assert_eq!(kept.len(), MAX_VERSIONS as usize);
    assert_eq!((kept[0], kept[kept.len() - 1]), (last, last - MAX_VERSIONS + 1), "the current one is kept, the oldest go");
    assert_eq!(store.get_version("many", 1).await.expect("get"), None);
    let newest = store.get_version("many", last).await.expect("get").expect("current");
    assert_eq!(newest.code, format!("def handler(e, c): return {last}"));

    assert!(store.delete_function("many").await.expect("delete"));
    assert!(versions(&*store, "many").await.is_empty());
    let mut again = function("many");
    again.code = "def handler(e, c): return 'new'".into();
    store.insert_function(&again).await.expect("insert again");
    assert_eq!(versions(&*store, "many").await, [1]);
    let v1 = store.get_version("many", 1).await.expect("get").expect("version 1");
    assert_eq!((v1.id, v1.code.as_str()), (again.id, "def handler(e, c): return 'new'"));
    assert_eq!(store.get_version("many", last).await.expect("get"), None, "not the old function's");
}

fn event(name: &str, json: &str) -> TestEvent {
    TestEvent { name: name.into(), event: RawJson::parse(json.into()).expect("json"), updated_at: Utc::now() }
}

/// Saved, replaced (same name), listed by name exactly as written, bounded per function (a
/// replacement always fits), deleted, and gone with their function.
pub async fn test_events_are_saved_bounded_and_go_with_their_function(b: &dyn Backend) {
    let store = b.open("n1").await;
    assert!(matches!(store.put_test_event("none", &event("a", "{}"), 3).await, Err(StoreError::NotFound(_))));
    store.insert_function(&function("te")).await.expect("insert");
    store.insert_function(&function("other")).await.expect("insert");
    let big = r#"{"n":18446744073709551617,"x":[1.50]}"#;
    assert_eq!(store.put_test_event("te", &event("b-big", big), 3).await.expect("put"), TestEventSaved::Created);
    assert_eq!(store.put_test_event("te", &event("a", "1"), 3).await.expect("put"), TestEventSaved::Created);
    let replaced = event("a", r#""two""#);
    assert_eq!(store.put_test_event("te", &replaced, 3).await.expect("put"), TestEventSaved::Replaced);
    assert_eq!(store.put_test_event("other", &event("a", "[]"), 3).await.expect("put"), TestEventSaved::Created);

    let store = b.open("n1").await;
    let list = store.list_test_events("te").await.expect("list");
    assert_eq!(list.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a", "b-big"], "by name");
    assert_eq!((list[0].event.get(), list[1].event.get()), (r#""two""#, big), "exactly as saved");
    assert_eq!(list[0].updated_at.timestamp_micros(), replaced.updated_at.timestamp_micros());

    assert_eq!(store.put_test_event("te", &event("c", "3"), 3).await.expect("put"), TestEventSaved::Created);
    assert_eq!(store.put_test_event("te", &event("d", "4"), 3).await.expect("put"), TestEventSaved::Full);
    assert_eq!(store.put_test_event("te", &event("c", "33"), 3).await.expect("put"), TestEventSaved::Replaced, "a replacement fits");
    assert_eq!(store.list_test_events("te").await.expect("list").len(), 3);

    assert!(store.delete_test_event("te", "c").await.expect("delete"));
    assert!(!store.delete_test_event("te", "c").await.expect("delete"));
    assert!(!store.delete_test_event("none", "a").await.expect("delete"));
    assert_eq!(store.put_test_event("te", &event("d", "4"), 3).await.expect("put"), TestEventSaved::Created, "room again");

    assert!(store.delete_function("te").await.expect("delete"));
    assert!(store.list_test_events("te").await.expect("list").is_empty());
    let mut again = function("te");
    again.id = Uuid::now_v7();
    store.insert_function(&again).await.expect("insert again");
    assert!(store.list_test_events("te").await.expect("list").is_empty(), "a new function has none");
    assert_eq!(store.list_test_events("other").await.expect("list").len(), 1, "another function's stay");
}
