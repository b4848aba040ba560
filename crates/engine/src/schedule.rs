//! Schedules: every node runs the same ticker over the store's due schedules; a tick fires
//! where the compare-and-swap of its next run succeeds, in the commit that queues its call,
//! so each tick makes one asynchronous call however many nodes look and whenever they crash.

use std::time::Duration;

use chrono::Utc;
use fnbox_core::validation::validate_name;
use fnbox_core::{json_too_deep, Fired, QueueItem, Schedule, Trigger, ValidationErrors};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{Engine, EngineError};

/// How often the ticker looks for due schedules: a tick fires at most this late (plus the
/// store's latency), well within a second.
const TICK_POLL: Duration = Duration::from_millis(100);
/// Schedules one function may have.
pub const MAX_SCHEDULES_PER_FUNCTION: usize = 20;

/// What a new schedule or a change says (absent fields keep their value on a change).
#[derive(Debug, Clone, Default)]
pub struct ScheduleChange {
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub input: Option<Box<RawValue>>,
    pub enabled: Option<bool>,
}

impl Engine {
    pub async fn create_schedule(&self, function: &str, change: ScheduleChange) -> Result<Schedule, EngineError> {
        self.store().available()?;
        validate_name(function).map_err(|_| EngineError::FunctionNotFound(function.to_owned()))?;
        let f = self.resolve_function(function).await?;
        let Some(cron) = change.cron else {
            return Err(ValidationErrors::single("cron", "required: 5 fields, or 6 with seconds first").into());
        };
        let input = self.schedule_input(change.input)?;
        if self.store().list_schedules(Some(&f.name)).await?.len() >= MAX_SCHEDULES_PER_FUNCTION {
            return Err(ValidationErrors::single("function", format!("a function has at most {MAX_SCHEDULES_PER_FUNCTION} schedules")).into());
        }
        let timezone = change.timezone.unwrap_or_else(|| "UTC".to_owned());
        let s = Schedule::new(&f.name, &cron, &timezone, input, change.enabled.unwrap_or(true), Utc::now())
            .map_err(|e| ValidationErrors::single(if e.contains("time zone") { "timezone" } else { "cron" }, e))?;
        self.store().insert_schedule(&s).await?;
        tracing::info!(function = %f.name, schedule = %s.id, cron = %s.cron, timezone = %s.timezone, "schedule created");
        Ok(s)
    }

    pub async fn schedules(&self, function: Option<&str>) -> Result<Vec<Schedule>, EngineError> {
        if let Some(name) = function {
            self.resolve_function(name).await?;
        }
        Ok(self.store().list_schedules(function).await?)
    }

    pub async fn schedule(&self, id: Uuid) -> Result<Schedule, EngineError> {
        self.store().get_schedule(id).await?.ok_or_else(|| EngineError::ScheduleNotFound(id.to_string()))
    }

    /// Changes a schedule; its next run is worked out again from now (a schedule enabled
    /// again does not make up the ticks it missed while disabled).
    pub async fn update_schedule(&self, id: Uuid, change: ScheduleChange) -> Result<Schedule, EngineError> {
        self.store().available()?;
        let mut s = self.schedule(id).await?;
        if let Some(c) = change.cron {
            s.cron = c.trim().to_owned();
        }
        if let Some(tz) = change.timezone {
            s.timezone = tz;
        }
        if change.input.is_some() {
            s.input = self.schedule_input(change.input)?;
        }
        if let Some(e) = change.enabled {
            s.enabled = e;
        }
        let spec = s.spec().map_err(|e| ValidationErrors::single(if e.contains("time zone") { "timezone" } else { "cron" }, e))?;
        s.next_run = if s.enabled { spec.next_after(Utc::now()) } else { None };
        if !self.store().update_schedule(&s).await? {
            return Err(EngineError::ScheduleNotFound(id.to_string()));
        }
        Ok(s)
    }

    pub async fn delete_schedule(&self, id: Uuid) -> Result<(), EngineError> {
        if self.store().delete_schedule(id).await? {
            Ok(())
        } else {
            Err(EngineError::ScheduleNotFound(id.to_string()))
        }
    }

    fn schedule_input(&self, input: Option<Box<RawValue>>) -> Result<String, EngineError> {
        let Some(input) = input else { return Ok("{}".to_owned()) };
        let limit = self.limits().max_input_bytes;
        if input.get().len() > limit {
            return Err(EngineError::InputTooLarge { size: input.get().len(), limit });
        }
        if json_too_deep(input.get().as_bytes(), self.limits().max_json_depth) {
            return Err(ValidationErrors::single("input", format!("nested deeper than {} levels", self.limits().max_json_depth)).into());
        }
        Ok(input.get().to_owned())
    }

    /// Starts the ticker (every node runs one; the store decides who fires each tick).
    pub(crate) fn start_scheduler(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                this.fire_due().await;
                tokio::time::sleep(TICK_POLL).await;
            }
        });
    }

    async fn fire_due(&self) {
        let now = Utc::now();
        let due = match self.store().due_schedules(now, 100).await {
            Ok(due) => due,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read due schedules");
                return;
            }
        };
        for s in due {
            if let Err(e) = self.fire(&s).await {
                tracing::warn!(schedule = %s.id, function = %s.function, error = %e, "cannot fire a schedule tick");
            }
        }
    }

    async fn fire(&self, s: &Schedule) -> Result<(), EngineError> {
        let Some(tick) = s.next_run else { return Ok(()) };
        let now = Utc::now();
        let next = match s.spec() {
            Ok(spec) => spec.following(tick, now),
            // Stored patterns were checked when written; one that no longer parses stops.
            Err(e) => {
                tracing::warn!(schedule = %s.id, error = %e, "schedule pattern unreadable; it stops");
                None
            }
        };
        let f = match self.resolve_function(&s.function).await {
            Ok(f) => Some(f),
            Err(EngineError::FunctionNotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let item = QueueItem {
            id: Uuid::now_v7(),
            function: s.function.clone(),
            input: s.input.clone(),
            trigger: Trigger::Schedule,
            attempt: 1,
            first_attempt: 1,
            execution_id: Uuid::now_v7(),
            enqueued_at: now,
            due_at: now,
            last_error: None,
        };
        let Some(f) = f else {
            // Its function is gone (deleted on another node between the two writes): stop it.
            let _ = self.store().delete_schedule(s.id).await;
            return Ok(());
        };
        let queued = self.queued_record(&f, &item);
        let max = self.inner.config.queue.max_depth;
        match self.store().fire_schedule(s.id, tick, next, &item, &queued, max).await? {
            Fired::Fired => {
                metrics::counter!("fnbox_schedule_fires_total", "function" => s.function.clone()).increment(1);
                self.inner.queue_wake.notify_one();
            }
            Fired::Skipped => {
                metrics::counter!("fnbox_schedule_skipped_total", "function" => s.function.clone()).increment(1);
                tracing::warn!(schedule = %s.id, function = %s.function, %tick, "asynchronous queue full: schedule tick skipped");
            }
            Fired::Taken => {}
        }
        Ok(())
    }
}
