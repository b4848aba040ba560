//! Versioned schema migrations, embedded in the binary and applied in order at open.

use rusqlite::Connection;

/// (version, name, sql). Append only: a released migration is never edited.
const SQLITE: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "comparisons", include_str!("../migrations/sqlite/0002_comparisons.sql")),
    (3, "api_keys", include_str!("../migrations/sqlite/0003_api_keys.sql")),
    (4, "inflight", include_str!("../migrations/sqlite/0004_inflight.sql")),
    (5, "triggers", include_str!("../migrations/sqlite/0005_triggers.sql")),
    (6, "nodes", include_str!("../migrations/sqlite/0006_nodes.sql")),
    (7, "dependencies", include_str!("../migrations/sqlite/0007_dependencies.sql")),
    (8, "http", include_str!("../migrations/sqlite/0008_http.sql")),
    (9, "queue", include_str!("../migrations/sqlite/0009_queue.sql")),
    (10, "versions", include_str!("../migrations/sqlite/0010_versions.sql")),
];

pub(crate) fn run(conn: &mut Connection) -> rusqlite::Result<Vec<i64>> {
    run_until(conn, i64::MAX)
}

/// Applies the pending migrations up to version `last` (tests stop early to build old data).
fn run_until(conn: &mut Connection, last: i64) -> rusqlite::Result<Vec<i64>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )?;
    let mut applied = Vec::new();
    for (version, name, sql) in SQLITE.iter().filter(|(v, _, _)| *v <= last) {
        let tx = conn.transaction()?;
        let done: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![version, name, chrono::Utc::now().to_rfc3339()],
            )?;
            applied.push(*version);
        }
        tx.commit()?;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Older versions stored a comparison's copies as functions; one a crash or a dropped client
    /// left behind is removed by the upgrade, and the runs of all of them become `compare` runs.
    #[test]
    fn comparison_leftovers_of_older_versions_are_removed_and_marked() -> rusqlite::Result<()> {
        let mut conn = Connection::open_in_memory()?;
        run_until(&mut conn, 4)?;
        let function = |name: &str, description: &str| {
            format!(
                "INSERT INTO functions VALUES ('{name}-id', '{name}', '{description}', 'python', 'docker', 'x', 1000, 128, 1,
                 '{{}}', NULL, 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');"
            )
        };
        let execution = |id: &str, name: &str| {
            format!(
                "INSERT INTO executions VALUES ('{id}', '{name}', 1, 'docker', 'python', '{{}}', NULL, 0, 'success', NULL, NULL,
                 '', '2026-01-01T00:00:00Z', 0, 1.0, NULL, NULL, 0);"
            )
        };
        conn.execute_batch(&[
            function("cmp-0123456789ab-docker", "temporary: comparing `fib` on docker"),
            function("cmp-mine-docker", "a function of the user with a similar name"),
            function("fib", "temporary: comparing is what it says, but the name is not that of a copy"),
            execution("e1", "cmp-0123456789ab-gvisor"),
            execution("e2", "fib"),
        ]
        .concat())?;
        assert_eq!(run(&mut conn)?, vec![5, 6, 7, 8, 9, 10]);
        let names: Vec<String> =
            conn.prepare("SELECT name FROM functions ORDER BY name")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        assert_eq!(names, ["cmp-mine-docker", "fib"]);
        let triggers: Vec<(String, String)> = conn
            .prepare("SELECT id, \"trigger\" FROM executions ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        assert_eq!(triggers, [("e1".to_string(), "compare".to_string()), ("e2".to_string(), "api".to_string())]);
        Ok(())
    }

    /// Functions made before versions existed get their current version as their history.
    #[test]
    fn versions_are_backfilled_from_the_current_functions() -> rusqlite::Result<()> {
        let mut conn = Connection::open_in_memory()?;
        run_until(&mut conn, 9)?;
        conn.execute_batch(
            "INSERT INTO functions (id, name, description, language, runtime, code, timeout_ms, memory_mb, concurrency, env,
                 sample_input, version, created_at, updated_at, dependencies, build, serving, http, max_retries)
             VALUES ('f-id', 'old', 'd', 'python', 'gvisor', 'def handler(e, c): return 7', 1000, 64, 2, '{\"K\":\"v\"}',
                 NULL, 7, '2026-01-01T00:00:00+00:00', '2026-02-01T00:00:00+00:00', NULL, NULL, NULL, 'key', 3);",
        )?;
        assert_eq!(run(&mut conn)?, vec![10]);
        let row: (String, String, i64, String, String, String, Option<String>) = conn.query_row(
            "SELECT id, name, version, code, env, created_at, serving FROM function_versions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )?;
        assert_eq!(
            row,
            (
                "f-id".into(),
                "old".into(),
                7,
                "def handler(e, c): return 7".into(),
                r#"{"K":"v"}"#.into(),
                "2026-02-01T00:00:00+00:00".into(),
                None
            )
        );
        Ok(())
    }
}
