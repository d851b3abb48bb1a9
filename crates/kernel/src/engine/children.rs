//! Subworkflows: starting child runs, synchronous and asynchronous, with ids derived
//! from the parent's step.

use super::*;

/// The id of the child a parent starts at `seq`: derived, not random, so that a step
/// retried after a crash finds the child it already created instead of making another.
pub(super) fn child_run_id(parent: RunId, seq: u64) -> RunId {
    let mut input = Vec::with_capacity(24);
    input.extend_from_slice(parent.as_bytes());
    input.extend_from_slice(&seq.to_be_bytes());
    let digest = ledgerflow_ledger::Hash::of_domain(b"ledgerflow.child.v1\0", &input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_bytes()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // UUID version 8 (custom)
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    RunId::from_bytes(bytes)
}

impl Engine {
    /// Commits the start of a child run a step of its parent planned. A child already
    /// there was created by the same step before a crash (its id is derived from the
    /// parent's step): it is carried on with.
    pub(super) fn commit_child(&self, child: RunId, started: Step) -> Result<(), Error> {
        match self.commit(None, child, None, started) {
            Ok(_)
            | Err(Error::Store(store::Error::Conflict {
                expected_seq: 0, ..
            })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Starts a child run of `parent` (which must exist and not have ended). The child
    /// records its parent, is listed by [`Store::children`], and is cancelled with it.
    pub fn start_child(
        &self,
        parent: RunId,
        workflow: impl Into<WorkflowKey>,
        input: Value,
    ) -> Result<RunId, Error> {
        let parent_state = self.load(parent)?;
        if parent_state.status.is_terminal() {
            return Err(Error::RunTerminal {
                run_id: parent,
                status: parent_state.status,
            });
        }
        let depth = parent_state.depth() + 1;
        if depth > self.config.subworkflow_depth_max {
            return Err(Error::LimitExceeded {
                what: format!("subworkflow depth {depth}"),
                max: u64::from(self.config.subworkflow_depth_max),
            });
        }
        let link = ParentLink {
            run_id: parent,
            seq: parent_state.head.seq,
            wait_key: None,
            depth,
            after: Some(parent_state.head),
        };
        self.start_inner(workflow.into(), input, Some(link))
    }

    /// Plans the child run of a `start_subworkflow` effect: the parent's step, carrying
    /// the child's `started` event for the driver to commit first (see `Step::children`).
    pub(super) fn plan_subworkflow(
        &self,
        state: &RunState,
        node: &str,
        vars: Option<crate::VarsChange>,
        effect: &Effect,
        then: Continuation,
        planned: &[&[NewArtifact]],
    ) -> Result<Result<Step, PlanFailure>, Error> {
        let invalid = |what: String| {
            Ok(Err((
                FailureCode::InvalidEffect,
                format!("start_subworkflow effect: {what}"),
            )))
        };
        let payload = match self.resolve_in(&effect.payload, planned) {
            Ok(payload) => payload,
            Err(e) => return invalid(e.to_string()),
        };
        let Some(workflow_id) = non_empty_str(&payload, "workflow_id") else {
            return invalid("needs a non-empty string workflow_id".into());
        };
        let Some(version) = payload
            .get("version")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
        else {
            return invalid("needs an integer version".into());
        };
        let mode = match payload.get("mode").and_then(Value::as_str) {
            None | Some("sync") => SubworkflowMode::Sync,
            Some("async") => SubworkflowMode::Async,
            Some(other) => {
                return invalid(format!("mode must be \"sync\" or \"async\", not {other:?}"))
            }
        };
        let key = WorkflowKey {
            workflow_id: workflow_id.clone(),
            version,
        };
        if self.spec(&key).is_err() {
            return invalid(format!(
                "workflow {workflow_id:?} version {version} is not registered"
            ));
        }
        let depth = state.depth() + 1;
        if depth > self.config.subworkflow_depth_max {
            let max = self.config.subworkflow_depth_max;
            return Ok(Err((
                FailureCode::LimitExceeded,
                format!("subworkflow depth {depth} is over the limit of {max}"),
            )));
        }
        let seq = state.head.seq + 1;
        let child = child_run_id(state.run_id, seq);
        let link = ParentLink {
            run_id: state.run_id,
            seq,
            wait_key: (mode == SubworkflowMode::Sync).then(|| wait_keys::child(child)),
            depth,
            after: Some(state.head),
        };
        let input = payload.get("input").cloned().unwrap_or(Value::Null);
        let started = match self.started_step(child, key, input, Some(link)) {
            Ok(started) => started,
            Err(Error::InvalidInput { reason }) => return invalid(reason),
            Err(Error::ValueTooLarge { what, bytes, max }) => {
                return Ok(Err((
                    FailureCode::ValueTooLarge,
                    format!("subworkflow {what} is {bytes} bytes, over {max}"),
                )))
            }
            Err(e @ Error::ValueTooDeep { .. }) => {
                return Ok(Err((
                    FailureCode::LimitExceeded,
                    format!("subworkflow {e}"),
                )))
            }
            Err(e) => return Err(e),
        };
        let mut step = Step::of(Event::SubworkflowStarted {
            node: node.to_owned(),
            vars,
            child_run_id: child,
            workflow_id,
            workflow_version: version,
            mode,
            result_key: effect.result_key.clone(),
            then,
        });
        step.children.push((child, started));
        Ok(Ok(step))
    }
}
