//! Effects: planning built-in and custom effects, running a custom effect's handler,
//! retries with backoff, idempotency keys.

use super::*;

/// A number in `[0, 1)` derived from an effect's key and attempt: the jitter of its retry,
/// reproducible rather than random so that tests and reruns see the same waits.
pub(super) fn jitter_unit(idempotency_key: &str, attempt: u32) -> f64 {
    let mut input = idempotency_key.as_bytes().to_vec();
    input.extend_from_slice(&attempt.to_be_bytes());
    let digest = ledgerflow_ledger::Hash::of_domain(b"ledgerflow.jitter.v1\0", &input);
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest.as_bytes()[..8]);
    (u64::from_be_bytes(word) >> 11) as f64 / (1u64 << 53) as f64
}

/// A node's request that fails the run (with a code) rather than the caller.
pub(super) type PlanFailure = (FailureCode, String);

pub(super) fn non_empty_str(payload: &Value, field: &str) -> Option<String> {
    payload
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl Engine {
    /// Registers the handler of a custom effect kind, replacing any earlier one.
    pub fn register_effect(
        &self,
        kind: impl Into<String>,
        handler: impl EffectHandler + 'static,
    ) -> Result<(), Error> {
        let kind = kind.into();
        if Effect::custom(kind.clone(), Value::Null).is_builtin() {
            return Err(Error::BuiltinEffectKind { kind });
        }
        self.effects
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, Arc::new(handler));
        Ok(())
    }

    /// Turns an effect into the events of the step that requested it. The outer error is
    /// the caller's (storage); the inner one fails the run.
    pub(super) fn plan_effect(
        &self,
        state: &RunState,
        node: &str,
        vars: Option<crate::VarsChange>,
        effect: Effect,
        then: Continuation,
        planned: &[&[NewArtifact]],
    ) -> Result<Result<Step, PlanFailure>, Error> {
        if effect.kind == kind::START_SUBWORKFLOW {
            return self.plan_subworkflow(state, node, vars, &effect, then, planned);
        }
        Ok(self.plan_other_effect(state, node, vars, effect, then, planned))
    }

    /// Turns any effect but `start_subworkflow` into the events of its step.
    pub(super) fn plan_other_effect(
        &self,
        state: &RunState,
        node: &str,
        vars: Option<crate::VarsChange>,
        effect: Effect,
        then: Continuation,
        planned: &[&[NewArtifact]],
    ) -> Result<Step, PlanFailure> {
        let seq = state.head.seq + 1;
        let resolved = self
            .resolve_in(&effect.payload, planned)
            .map_err(|e| (FailureCode::InvalidEffect, e.to_string()))?;
        let payload = &resolved;
        let invalid = |what: &str| {
            (
                FailureCode::InvalidEffect,
                format!("{} effect: {what}", effect.kind),
            )
        };
        let wait = |wait_key, reason, until_ms, prompt, choices| WaitState {
            wait_key,
            reason,
            until_ms,
            prompt,
            choices,
            result_key: effect.result_key.clone(),
            then: then.clone(),
        };
        let waiting = |wait| Event::Waiting {
            node: node.to_owned(),
            vars: vars.clone(),
            wait,
        };
        match effect.kind.as_str() {
            kind::WAIT_EVENT => {
                let key = non_empty_str(payload, "wait_key")
                    .ok_or_else(|| invalid("needs a non-empty string wait_key"))?;
                self.check_wait_key_len(&key)
                    .map_err(|e| (FailureCode::LimitExceeded, e.to_string()))?;
                Ok(Step::of(waiting(wait(
                    Some(key),
                    WaitReason::Event,
                    None,
                    None,
                    Vec::new(),
                ))))
            }
            kind::ASK_USER => {
                let prompt = payload
                    .get("prompt")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("needs a string prompt"))?;
                let choices = match payload.get("choices") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|c| c.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| invalid("choices must be strings"))?,
                    Some(_) => return Err(invalid("choices must be an array of strings")),
                };
                let key = match payload.get("wait_key") {
                    None | Some(Value::Null) => wait_keys::ask(state.run_id, seq),
                    Some(_) => non_empty_str(payload, "wait_key")
                        .ok_or_else(|| invalid("wait_key must be a non-empty string"))?,
                };
                self.check_wait_key_len(&key)
                    .map_err(|e| (FailureCode::LimitExceeded, e.to_string()))?;
                let w = wait(
                    Some(key),
                    WaitReason::User,
                    None,
                    Some(prompt.to_owned()),
                    choices,
                );
                Ok(Step::of(waiting(w)))
            }
            kind::WAIT_UNTIL => {
                let at_ms = payload
                    .get("at_ms")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| invalid("needs an integer at_ms"))?;
                let mut step = Step::of(waiting(wait(
                    None,
                    WaitReason::Until,
                    Some(at_ms),
                    None,
                    Vec::new(),
                )));
                if at_ms <= self.clock.now_ms() {
                    step.events.push(Event::TimerFired { due_at_ms: at_ms });
                }
                Ok(step)
            }
            kind::EMIT_EVENT => {
                let key = non_empty_str(payload, "wait_key")
                    .ok_or_else(|| invalid("needs a non-empty string wait_key"))?;
                self.check_wait_key_len(&key)
                    .map_err(|e| (FailureCode::LimitExceeded, e.to_string()))?;
                let event_payload = payload.get("payload").cloned().unwrap_or(Value::Null);
                Ok(Step {
                    events: vec![Event::EventEmitted {
                        node: node.to_owned(),
                        vars,
                        wait_key: key.clone(),
                        payload: event_payload.clone(),
                        then,
                    }],
                    inbox: vec![IndexChange::InboxPush {
                        wait_key: key.clone(),
                        payload: event_payload,
                    }],
                    emitted_to: Some(key),
                    children: Vec::new(),
                    artifacts: Vec::new(),
                })
            }
            custom => {
                if !self
                    .effects
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains_key(custom)
                {
                    return Err((
                        FailureCode::UnknownEffect,
                        format!("no effect handler is registered for kind {custom:?}"),
                    ));
                }
                Ok(Step::of(Event::EffectRequested {
                    node: node.to_owned(),
                    vars,
                    idempotency_key: format!("{}:{seq}", state.run_id),
                    effect,
                    then,
                }))
            }
        }
    }

    /// Runs the handler of the run's pending custom effect.
    pub(super) fn run_pending_effect(
        &self,
        state: &RunState,
        planned: &[NewArtifact],
    ) -> Result<Step, Error> {
        let Some(pending) = &state.pending_effect else {
            return Err(Error::Internal("no pending effect to run".into()));
        };
        let payload = self.resolve_in(&pending.effect.payload, &[planned])?;
        let key = pending.idempotency_key.clone();
        let handler = self
            .effects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pending.effect.kind)
            .cloned();
        let outcome = match handler {
            None => EffectOutcome::Failed {
                error: format!(
                    "no effect handler is registered for kind {:?}",
                    pending.effect.kind
                ),
                retryable: false,
            },
            Some(handler) => {
                let call = EffectCall {
                    run_id: state.run_id,
                    kind: &pending.effect.kind,
                    payload: &payload,
                    idempotency_key: &key,
                    attempt: pending.attempt,
                };
                let span = tracing::info_span!(
                    "effect",
                    run_id = %state.run_id,
                    kind = %pending.effect.kind,
                    idempotency_key = %key,
                    attempt = pending.attempt,
                );
                let handled =
                    span.in_scope(|| catch_unwind(AssertUnwindSafe(|| handler.handle(&call))));
                handled.unwrap_or_else(|panic| EffectOutcome::Failed {
                    error: format!("effect handler panicked: {}", panic_message(&panic)),
                    retryable: false,
                })
            }
        };
        let mut artifacts = Vec::new();
        let event = match outcome {
            EffectOutcome::Completed(result) => {
                let what = "the effect result";
                match self.offload(Some(state.run_id), result, what, &mut artifacts) {
                    Ok(result) => Event::EffectCompleted {
                        idempotency_key: key,
                        result,
                    },
                    Err(e @ (Error::ValueTooLarge { .. } | Error::ValueTooDeep { .. })) => {
                        Event::EffectFailed {
                            idempotency_key: key,
                            error: e.to_string(),
                            retryable: false,
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            EffectOutcome::Waiting { wait_key } => Event::EffectWaiting {
                idempotency_key: key,
                wait_key,
            },
            EffectOutcome::Failed { error, retryable } => {
                self.failure_event(pending, key, error, retryable, 0)
            }
            EffectOutcome::RetryAfter { error, after_ms } => {
                self.failure_event(pending, key, error, true, after_ms)
            }
        };
        Ok(Step::of(event).with_artifacts(artifacts))
    }

    /// The event of a failed attempt of `pending`: a retry on a durable timer, at least
    /// `least_ms` away, while the policy has attempts left and the failure is retryable;
    /// else the effect's failure.
    fn failure_event(
        &self,
        pending: &crate::state::PendingEffect,
        key: String,
        error: String,
        retryable: bool,
        least_ms: u64,
    ) -> Event {
        let policy = pending.effect.retry.or(self.config.default_retry);
        match policy.filter(|p| retryable && pending.attempt < p.attempts_max) {
            Some(policy) => {
                let unit = jitter_unit(&key, pending.attempt);
                let wait_ms = policy.backoff_ms(pending.attempt, unit).max(least_ms);
                let wait_ms = i64::try_from(wait_ms).unwrap_or(i64::MAX);
                Event::EffectRetryScheduled {
                    idempotency_key: key,
                    attempt: pending.attempt,
                    error,
                    retry_at_ms: self.clock.now_ms().saturating_add(wait_ms),
                }
            }
            None => Event::EffectFailed {
                idempotency_key: key,
                error,
                retryable,
            },
        }
    }
}
