//! Runs every test of the conformance suite on every backend: SQLite in a temp dir, and
//! PostgreSQL on a throwaway server (one per test, started from a template: a fraction of a
//! second each).

use std::sync::Arc;

use async_trait::async_trait;
use fnbox_store::conformance::{Backend, StoreUnderTest, ALL};
use fnbox_store_postgres::PostgresStore;
use fnbox_store_sqlite::{SqliteStore, SyncMode};
use fnbox_testkit::postgres::Postgres;

struct Sqlite(tempfile::TempDir);

#[async_trait]
impl Backend for Sqlite {
    async fn open(&self, _node: &str) -> Arc<dyn StoreUnderTest> {
        Arc::new(SqliteStore::open(self.0.path(), SyncMode::Normal).expect("open SQLite"))
    }

    fn shared_by_nodes(&self) -> bool {
        false
    }
}

struct Pg(Postgres);

#[async_trait]
impl Backend for Pg {
    async fn open(&self, node: &str) -> Arc<dyn StoreUnderTest> {
        Arc::new(PostgresStore::connect(&self.0.url(), node).await.expect("connect to PostgreSQL"))
    }

    fn shared_by_nodes(&self) -> bool {
        true
    }
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        const LISTED: &[&str] = &[$(stringify!($name)),*];

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::Sqlite(tempfile::tempdir().expect("tempdir"));
                    fnbox_store::conformance::$name(&backend).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::Pg(super::Postgres::start());
                    fnbox_store::conformance::$name(&backend).await;
                }
            )*
        }
    };
}

suite!(
    functions_round_trip_and_conflict,
    dependencies_build_and_serving_version_round_trip,
    http_setting_round_trips_and_http_runs_filter,
    compare_and_swap_lets_one_writer_win,
    unfinished_executions_become_interrupted_records_at_the_next_open,
    recovery_is_limited_to_this_node,
    node_is_recorded_and_read_back,
    acknowledged_records_survive_reopen,
    executions_survive_reopen_and_filter,
    filters_and_paging,
    search_finds_text_in_logs_errors_and_output,
    a_page_of_executions_is_bounded_by_bytes,
    comparison_runs_are_left_out_unless_asked_for,
    last_execution_of_each_function_leaves_comparisons_out,
    failures_carry_the_type_and_the_start_of_the_message_only,
    samples_follow_the_metrics_filter,
    prune_by_age_and_count,
    comparisons_round_trip,
    keys_insert_list_revoke_touch_and_version,
    async_calls_are_accepted_claimed_once_retried_and_completed,
    a_final_record_replaces_a_queued_one_never_the_reverse,
    expired_and_released_leases_make_items_claimable_again,
    dead_letters_are_kept_retried_and_discarded,
    schedules_round_trip_and_come_due,
    a_tick_fires_once_whoever_tries,
    every_version_is_kept_with_its_function,
    versions_are_bounded_and_go_with_their_function,
    test_events_are_saved_bounded_and_go_with_their_function,
);

/// A test added to the suite but not to the list above would silently run nowhere.
#[test]
fn every_suite_test_runs_on_every_backend() {
    let mut listed = LISTED.to_vec();
    let mut all = ALL.to_vec();
    listed.sort_unstable();
    all.sort_unstable();
    assert_eq!(listed, all);
}
