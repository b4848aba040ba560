//! SQLite-only tests: what the writer journals, and the summary at scale. The behaviour every
//! store shares is tested once for all backends in `fnbox-store`'s conformance suite.

mod writer {
    use chrono::Utc;
    use fnbox_core::{ErrorInfo, Execution, ExecutionStatus, Language, RawJson, Runtime, Store};
    use uuid::Uuid;

    use crate::store::backend;
    use fnbox_core::inflight::INFLIGHT_GRACE;
    use crate::{SqliteStore, SyncMode};

    fn execution(function: &str, status: ExecutionStatus) -> Execution {
        Execution {
            id: Uuid::now_v7(),
            function: function.into(),
            version: 1,
            runtime: Runtime::Gvisor,
            language: Language::Python,
            input: "{}".into(),
            output: Some(RawJson::parse(r#"[1,"two",18446744073709551617]"#.into()).expect("json")),
            output_truncated: false,
            status,
            error: (status != ExecutionStatus::Success).then(|| ErrorInfo::new("ValueError", "bad")),
            logs: "line\n".into(),
            started_at: Utc::now(),
            duration_ms: 1.5,
            exec_ms: Some(0.5),
            memory_bytes: Some(1 << 20),
            cold_start: true,
            trigger: fnbox_core::Trigger::Api,
            node: None,
            attempt: 1,
            request_id: None,
        }
    }

    /// Only calls still running after the grace are journalled; a finished one leaves the journal.
    #[tokio::test]
    async fn only_calls_past_the_grace_are_journalled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("open");
        let (a, b, c) = (execution("f", ExecutionStatus::Success), execution("f", ExecutionStatus::Success), execution("f", ExecutionStatus::Success));
        store.execution_started(&a);
        store.execution_started(&b);
        tokio::time::sleep(INFLIGHT_GRACE * 3).await;
        store.record_execution(a.clone()).await.expect("record a");
        store.execution_started(&c);
        store.record_execution(c.clone()).await.expect("record c");
        let journalled: Vec<String> = store
            .write(|conn| {
                let mut stmt = conn.prepare("SELECT id FROM inflight_executions").map_err(backend)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(backend)?;
                rows.collect::<rusqlite::Result<_>>().map_err(backend)
            })
            .await
            .expect("journal");
        assert_eq!(journalled, [b.id.to_string()], "only b is still in flight");
        let n = store.recover_interrupted(ErrorInfo::new("Interrupted", "x")).await.expect("recover");
        assert_eq!(n, 1);
    }
}

mod scale {
    use std::sync::Arc;

    use chrono::Utc;
    use fnbox_core::{ErrorInfo, Execution, RawJson, Store};
    use uuid::Uuid;

    use crate::{SqliteStore, SyncMode};
    use fnbox_core::{ExecutionStatus, Language, Runtime};
    use std::time::Instant;

    /// The summary over 100,000 recorded executions must answer in under 200 ms (release).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn summary_over_100k_executions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(dir.path(), SyncMode::Normal).expect("open"));
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for chunk in 0..100 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..1000u32 {
                    let n = chunk * 1000 + i;
                    let status = if n % 10 == 0 { ExecutionStatus::Error } else { ExecutionStatus::Success };
                    let e = Execution {
                        id: Uuid::now_v7(),
                        function: format!("f{}", n % 20),
                        version: 1,
                        runtime: if n % 2 == 0 { Runtime::Docker } else { Runtime::Gvisor },
                        language: Language::Python,
                        input: "{\"n\":1}".into(),
                        output: Some(RawJson::parse(n.to_string()).expect("json")),
                        output_truncated: false,
                        status,
                        error: (status == ExecutionStatus::Error).then(|| ErrorInfo::new("ValueError", "bad")),
                        logs: "a log line\n".into(),
                        started_at: Utc::now(),
                        duration_ms: f64::from(n % 997) / 10.0,
                        exec_ms: Some(0.05),
                        memory_bytes: Some(8 << 20),
                        cold_start: n % 100 == 0,
                        trigger: fnbox_core::Trigger::Api,
                        node: None,
                        attempt: 1,
                        request_id: None,
                    };
                    store.record_execution(e).await.expect("record");
                }
            }));
        }
        for h in handles {
            h.await.expect("join");
        }
        let write_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let samples = store.samples(&fnbox_core::metrics::MetricsFilter::default()).await.expect("samples");
        let fetch_ms = t1.elapsed().as_secs_f64() * 1000.0;
        let summary = fnbox_core::metrics::summarize(&samples);
        let ms = t1.elapsed().as_secs_f64() * 1000.0;
        println!(
            "recorded 100000 executions in {write_s:.2} s ({:.0}/s); summary over them in {ms:.1} ms ({fetch_ms:.1} ms reading)",
            100000.0 / write_s
        );
        assert_eq!(samples.len(), 100_000);
        assert_eq!(summary.len(), 20);
        assert_eq!(summary.iter().map(|s| s.invocations).sum::<usize>(), 100_000);
        let limit = if cfg!(debug_assertions) { 2000.0 } else { 200.0 };
        assert!(ms < limit, "summary took {ms:.1} ms");
    }
}
