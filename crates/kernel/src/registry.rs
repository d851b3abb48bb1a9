//! `WorkflowRegistry`: workflow specs by (workflow id, version). A run records the pair it
//! started with and always resumes on it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::WorkflowSpec;

/// A (workflow id, version) pair: where a run starts from, and what it resumes on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkflowKey {
    /// The workflow id.
    pub workflow_id: String,
    /// The version.
    pub version: u32,
}

impl From<&WorkflowSpec> for WorkflowKey {
    fn from(spec: &WorkflowSpec) -> Self {
        WorkflowKey {
            workflow_id: spec.workflow_id().to_owned(),
            version: spec.version(),
        }
    }
}

impl From<(&str, u32)> for WorkflowKey {
    fn from((workflow_id, version): (&str, u32)) -> Self {
        WorkflowKey {
            workflow_id: workflow_id.to_owned(),
            version,
        }
    }
}

/// A callback told of each registration.
type RegisterListener = Arc<dyn Fn(&WorkflowKey) + Send + Sync>;

/// Workflow specs by (id, version), shared between threads.
#[derive(Default)]
pub struct WorkflowRegistry {
    specs: RwLock<HashMap<WorkflowKey, Arc<WorkflowSpec>>>,
    listeners: RwLock<Vec<RegisterListener>>,
}

impl std::fmt::Debug for WorkflowRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowRegistry")
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

impl WorkflowRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        WorkflowRegistry::default()
    }

    /// Registers `spec` under its (id, version), replacing any spec registered there:
    /// a redeploy of the same version's code.
    ///
    /// Listeners ([`WorkflowRegistry::on_register`]) are told after the spec is in place,
    /// so work that waited for it can go on.
    pub fn register(&self, spec: WorkflowSpec) -> Arc<WorkflowSpec> {
        let spec = Arc::new(spec);
        let key = WorkflowKey::from(spec.as_ref());
        self.specs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), Arc::clone(&spec));
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for listener in listeners {
            listener(&key);
        }
        spec
    }

    /// Calls `listener` with the (id, version) of every spec registered from now on: a
    /// scheduler retries work it set aside because the workflow was not registered yet.
    pub fn on_register(&self, listener: impl Fn(&WorkflowKey) + Send + Sync + 'static) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(listener));
    }

    /// The spec registered under `key`.
    pub fn get(&self, key: &WorkflowKey) -> Option<Arc<WorkflowSpec>> {
        self.specs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Every registered (id, version), sorted.
    pub fn keys(&self) -> Vec<WorkflowKey> {
        let mut keys: Vec<WorkflowKey> = self
            .specs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }
}
