//! Python values to JSON values and back. JSON is what runs hold, so every value crossing
//! into ledgerflow is converted here, and one that is not JSON (a set, a datetime, a
//! float that is not finite, an integer past 64 bits, a dict key that is not a string) is
//! a `TypeError` that names where it is, e.g. `input["items"][2]`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Deepest nesting converted (the engine's own limit is lower; this one only keeps a
/// self-referencing list from recursing forever).
const DEPTH_MAX: usize = 200;

/// `value` as JSON; `path` names it in errors (`input`, `payload`, …).
pub fn to_json(value: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    let mut path = path.to_owned();
    convert(value, &mut path, 0)
}

fn not_json(path: &str, why: String) -> PyErr {
    PyTypeError::new_err(format!("{path} is not JSON-serialisable: {why}"))
}

fn convert(value: &Bound<'_, PyAny>, path: &mut String, depth: usize) -> PyResult<Value> {
    if depth > DEPTH_MAX {
        return Err(not_json(
            path,
            format!("nested deeper than {DEPTH_MAX} levels"),
        ));
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: True is an int in Python.
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if value.cast::<PyInt>().is_ok() {
        if let Ok(i) = value.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = value.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(not_json(path, "an integer outside the 64-bit range".into()));
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        let f = f.value();
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| not_json(path, format!("the float {f} (JSON has no NaN or infinity)")));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned()));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut out = Map::new();
        for (key, item) in dict.iter() {
            let Ok(key) = key.cast::<PyString>() else {
                let type_name = key.get_type().name()?;
                return Err(not_json(
                    path,
                    format!("a dict key of type {type_name} (keys must be str)"),
                ));
            };
            let key = key.to_str()?.to_owned();
            let len = path.len();
            path.push_str(&format!("[{key:?}]"));
            let converted = convert(&item, path, depth + 1)?;
            path.truncate(len);
            out.insert(key, converted);
        }
        return Ok(Value::Object(out));
    }
    if value.cast::<PyList>().is_ok() || value.cast::<PyTuple>().is_ok() {
        let mut out = Vec::new();
        for (i, item) in value.try_iter()?.enumerate() {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let converted = convert(&item?, path, depth + 1)?;
            path.truncate(len);
            out.push(converted);
        }
        return Ok(Value::Array(out));
    }
    let type_name = value.get_type().name()?;
    Err(not_json(path, format!("a value of type {type_name}")))
}

/// `value` as a Python object: dicts, lists, str, int, float, bool, None.
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, None, Some(f)) => PyFloat::new(py, f).into_any(),
            _ => py.None().into_bound(py),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(fields) => {
            let dict = PyDict::new(py);
            for (key, item) in fields {
                dict.set_item(key, to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}
