//! `EngineConfig`: the engine's limits and defaults, each with its reason.

/// Engine settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EngineConfig {
    /// Most steps one `tick` runs before returning a still-running run, so a workflow
    /// that loops forever cannot hold a worker forever. Default 1,000. With 0 the engine
    /// runs no steps at all and needs no registered specs: it records resumptions and
    /// operator actions for a process that has the workflow code to carry on later.
    pub steps_per_tick_max: u32,
    /// JSON values (a var, a payload, an effect's result or payload, an output) whose
    /// serialized size is over this are stored as artifacts, and state and records hold
    /// an [`ArtifactRef`] instead. Node and effect handlers still see the whole value.
    /// Default 8 KiB: keeps run states and records small, so commits stay cheap.
    pub artifact_threshold_bytes: usize,
    /// Largest JSON value accepted at all. Default 16 MiB.
    pub value_bytes_max: usize,
    /// Deepest nesting of arrays and objects in any JSON value that enters a run (input,
    /// payloads, vars a handler sets, effect results, outputs): `1` is 0 deep, `[1]` 1,
    /// `{"a": [1]}` 2. Default 64 — far more than real data needs, and far enough under
    /// the recursion limits of JSON readers (128 in serde_json) that every record, state
    /// and export stays readable. A value over it is refused at the door (an error for a
    /// caller, a `limit_exceeded` failure for a handler's value), so one run's bad value
    /// can never make other runs unreadable.
    pub value_depth_max: usize,
    /// Largest `vars` of a run, as stored (large values are artifact references), in JSON
    /// bytes. Default 128 KiB, so a run state fits the sled store's value limit.
    pub vars_bytes_max: usize,
    /// Most records one commit of a tick carries. Steps that stay inside the run (a node
    /// that moves on, an effect's completion) are committed with the next step that must
    /// be durable, or at the end of the tick; a tick commits what it carries once it
    /// reaches this many records. Default 64: a commit then holds at most about 64 ×
    /// `vars_bytes_max` (8 MiB), far under a store's commit size limits, while a long
    /// tick still pays one commit per 64 steps. With 1 every step is its own commit.
    pub records_per_commit_max: u32,
    /// Longest wait_key, in bytes. Default 512.
    pub wait_key_bytes_max: usize,
    /// Deepest nesting of subworkflows (a top-level run is depth 0). Default 8.
    pub subworkflow_depth_max: u32,
    /// Retry policy of effects that set none. Default `None`: a failure fails the run.
    pub default_retry: Option<crate::RetryPolicy>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            steps_per_tick_max: 1_000,
            artifact_threshold_bytes: 8 << 10,
            value_bytes_max: 16 << 20,
            value_depth_max: 64,
            vars_bytes_max: 128 << 10,
            records_per_commit_max: 64,
            wait_key_bytes_max: 512,
            subworkflow_depth_max: 8,
            default_retry: None,
        }
    }
}
