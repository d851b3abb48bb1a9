//! Values entering a run: size, depth and vars limits, and large values stored as
//! artifacts (offloaded) and read back (resolved).
//!
//! Offloading writes nothing: it returns the reference and adds the artifact to the list
//! of the step being planned ([`NewArtifact`]). The driver writes a step's artifacts just
//! before the commit that cites them (see `Engine::commit`), so a step that is never
//! committed stores nothing, and a committed reference always has its bytes stored.

use super::*;

/// The media type of a value offloaded as an artifact: its canonical JSON.
const ARTIFACT_MEDIA_TYPE: &str = "application/json";

/// A value a step stores as an artifact: planned with the step, written by the driver
/// before the commit that cites it.
#[derive(Clone, Debug)]
pub(super) struct NewArtifact {
    /// The run it belongs to (`None`: an event queued for a key, no run yet).
    pub(super) run_id: Option<RunId>,
    /// The value's canonical JSON.
    pub(super) bytes: Vec<u8>,
    /// What state and records hold in its place.
    pub(super) reference: ArtifactRef,
}

/// How deep `value` nests, if deeper than `max` (stops looking once it is): arrays and
/// objects inside each other, a scalar being 0 deep. Iterative, so no input can exhaust
/// the stack.
pub(super) fn depth_over(value: &Value, max: usize) -> Option<usize> {
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        let depth = depth + 1;
        if depth > max {
            return Some(depth);
        }
        stack.extend(children.map(|child| (child, depth)));
    }
    None
}

pub(super) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Engine {
    /// Refuses vars over [`EngineConfig::vars_bytes_max`] as stored.
    pub(super) fn check_vars_len(&self, vars: &Map<String, Value>) -> Result<(), Error> {
        let bytes = serde_json::to_vec(vars).map_or(usize::MAX, |v| v.len());
        if bytes > self.config.vars_bytes_max {
            return Err(Error::LimitExceeded {
                what: format!("vars of {bytes} bytes"),
                max: self.config.vars_bytes_max as u64,
            });
        }
        Ok(())
    }

    /// Refuses a wait_key over [`EngineConfig::wait_key_bytes_max`].
    pub(super) fn check_wait_key_len(&self, wait_key: &str) -> Result<(), Error> {
        let max = self.config.wait_key_bytes_max;
        if wait_key.len() > max {
            return Err(Error::LimitExceeded {
                what: format!("wait_key of {} bytes", wait_key.len()),
                max: max as u64,
            });
        }
        Ok(())
    }

    /// What state and records should hold for `value`: the value itself, or, over the
    /// artifact threshold, its reference, with the artifact added to `artifacts` (written
    /// later, by the driver; nothing is stored here).
    pub(super) fn offload(
        &self,
        run_id: Option<RunId>,
        value: Value,
        what: &str,
        artifacts: &mut Vec<NewArtifact>,
    ) -> Result<Value, Error> {
        if ArtifactRef::from_value(&value).is_some() {
            return Ok(value);
        }
        self.check_depth(&value, what)?;
        // The artifact's bytes are the value's canonical JSON (docs/ledger-format.md), so
        // anyone holding the value can recompute its digest.
        let bytes = ledgerflow_ledger::canonical_json(&value);
        if bytes.len() > self.config.value_bytes_max {
            return Err(Error::ValueTooLarge {
                what: what.to_owned(),
                bytes: bytes.len(),
                max: self.config.value_bytes_max,
            });
        }
        if bytes.len() <= self.config.artifact_threshold_bytes {
            return Ok(value);
        }
        let reference = ArtifactRef {
            digest: ledgerflow_ledger::Hash::of(&bytes),
            size: bytes.len() as u64,
            media_type: ARTIFACT_MEDIA_TYPE.to_owned(),
        };
        let value = reference.to_value();
        artifacts.push(NewArtifact {
            run_id,
            bytes,
            reference,
        });
        Ok(value)
    }

    /// Writes the artifacts a step planned, before the commit that cites them. The store
    /// must name each by the digest the step computed: anything else is a bug, and the
    /// commit does not go ahead.
    pub(super) fn put_artifacts(&self, artifacts: &[NewArtifact]) -> Result<(), Error> {
        for artifact in artifacts {
            let stored = self.store.put_artifact(
                &artifact.bytes,
                &artifact.reference.media_type,
                artifact.run_id,
            )?;
            if stored != artifact.reference {
                return Err(Error::Internal(format!(
                    "the store named artifact {} as {}",
                    artifact.reference.digest, stored.digest
                )));
            }
        }
        Ok(())
    }

    /// Refuses a value nesting deeper than [`EngineConfig::value_depth_max`].
    pub(super) fn check_depth(&self, value: &Value, what: &str) -> Result<(), Error> {
        let max = self.config.value_depth_max;
        match depth_over(value, max) {
            Some(depth) => Err(Error::ValueTooDeep {
                what: what.to_owned(),
                depth,
                max,
            }),
            None => Ok(()),
        }
    }

    /// The value an artifact reference stands for (other values as they are).
    pub fn resolve(&self, value: &Value) -> Result<Value, Error> {
        self.resolve_in(value, &[])
    }

    /// [`Engine::resolve`], looking first among artifacts planned but not written yet.
    pub(super) fn resolve_in(
        &self,
        value: &Value,
        planned: &[&[NewArtifact]],
    ) -> Result<Value, Error> {
        let Some(artifact) = ArtifactRef::from_value(value) else {
            return Ok(value.clone());
        };
        let pending = planned
            .iter()
            .flat_map(|list| list.iter())
            .find(|a| a.reference.digest == artifact.digest);
        let stored;
        let bytes = match pending {
            Some(pending) => &pending.bytes,
            None => {
                stored = self.store.get_artifact(&artifact.digest)?.ok_or_else(|| {
                    Error::Store(store::Error::NotFound(format!(
                        "artifact {}",
                        artifact.digest
                    )))
                })?;
                &stored
            }
        };
        serde_json::from_slice(bytes).map_err(|e| {
            Error::Store(store::Error::Corrupt(format!(
                "artifact {} is not JSON: {e}",
                artifact.digest
            )))
        })
    }

    pub(super) fn resolve_vars(
        &self,
        vars: &Map<String, Value>,
        planned: &[&[NewArtifact]],
    ) -> Result<Map<String, Value>, Error> {
        vars.iter()
            .map(|(k, v)| Ok((k.clone(), self.resolve_in(v, planned)?)))
            .collect()
    }

    /// The vars to store after a node ran: unchanged values keep their stored form (an
    /// artifact reference stays a reference), changed ones are offloaded if large.
    pub(super) fn offload_vars(
        &self,
        state: &RunState,
        before: &Map<String, Value>,
        after: Map<String, Value>,
        artifacts: &mut Vec<NewArtifact>,
    ) -> Result<Map<String, Value>, Error> {
        after
            .into_iter()
            .map(|(key, value)| {
                let stored = match (before.get(&key), state.vars.get(&key)) {
                    (Some(old), Some(stored)) if *old == value => stored.clone(),
                    _ => self.offload(
                        Some(state.run_id),
                        value,
                        &format!("var {key:?}"),
                        artifacts,
                    )?,
                };
                Ok((key, stored))
            })
            .collect()
    }

    /// Offloads the large values a plan carries: an output, an effect's payload.
    pub(super) fn offload_plan(
        &self,
        run_id: Option<RunId>,
        plan: StepPlan,
        artifacts: &mut Vec<NewArtifact>,
    ) -> Result<StepPlan, Error> {
        let then = |then: Continuation, artifacts: &mut Vec<NewArtifact>| {
            Ok::<_, Error>(match then {
                Continuation::Complete(output) => {
                    Continuation::Complete(self.offload(run_id, output, "the output", artifacts)?)
                }
                next => next,
            })
        };
        Ok(match plan {
            StepPlan::Complete(output) => {
                StepPlan::Complete(self.offload(run_id, output, "the output", artifacts)?)
            }
            StepPlan::Effect {
                mut effect,
                then: cont,
            } => {
                if matches!(
                    effect.kind.as_str(),
                    kind::WAIT_EVENT | kind::WAIT_UNTIL | kind::ASK_USER
                ) {
                    self.check_depth(&effect.payload, "the effect payload")?;
                } else {
                    effect.payload =
                        self.offload(run_id, effect.payload, "the effect payload", artifacts)?;
                }
                StepPlan::Effect {
                    effect,
                    then: then(cont, artifacts)?,
                }
            }
            other => other,
        })
    }
}
