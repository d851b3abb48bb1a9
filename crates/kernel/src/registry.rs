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

/// Workflow specs by (id, version), shared between threads.
#[derive(Debug, Default)]
pub struct WorkflowRegistry {
    specs: RwLock<HashMap<WorkflowKey, Arc<WorkflowSpec>>>,
}

impl WorkflowRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        WorkflowRegistry::default()
    }

    /// Registers `spec` under its (id, version), replacing any spec registered there:
    /// a redeploy of the same version's code.
    pub fn register(&self, spec: WorkflowSpec) -> Arc<WorkflowSpec> {
        let spec = Arc::new(spec);
        self.specs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(WorkflowKey::from(spec.as_ref()), Arc::clone(&spec));
        spec
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
