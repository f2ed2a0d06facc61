//! The BTF fields of a value that changed: both values rendered through the map's BTF
//! and compared member by member.

use serde_json::Value;

use crate::btf::MapBtf;
use crate::render::typed::TypeRenderer;
use crate::snapshot::StoredValue;

/// The most field changes reported for one value.
pub const MAX_FIELD_CHANGES: usize = 256;

/// One field of a value that changed.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// The CPU of a per-CPU value's copy.
    pub cpu: Option<u32>,
    /// Where in the value: `.member.inner[3]`, or `` (empty) for the whole value.
    pub path: String,
    /// The old value, rendered.
    pub old: Value,
    /// The new value, rendered.
    pub new: Value,
}

/// The fields of `type_id` that differ between `old` and `new`.
pub(super) fn changed_fields(
    btf: &MapBtf,
    type_id: u32,
    old: &StoredValue,
    new: &StoredValue,
) -> Vec<FieldChange> {
    let r = TypeRenderer::new(btf);
    let mut out = Vec::new();
    match (old, new) {
        (StoredValue::Single(o), StoredValue::Single(n)) => {
            compare(
                None,
                String::new(),
                &r.render(type_id, o),
                &r.render(type_id, n),
                &mut out,
            );
        }
        (StoredValue::PerCpu(o), StoredValue::PerCpu(n)) => {
            for (cpu, nv) in n {
                let Some((_, ov)) = o.iter().find(|(c, _)| c == cpu) else {
                    continue;
                };
                if ov != nv {
                    let (ro, rn) = (r.render(type_id, ov), r.render(type_id, nv));
                    compare(Some(*cpu), String::new(), &ro, &rn, &mut out);
                }
            }
        }
        _ => {}
    }
    out
}

fn compare(cpu: Option<u32>, path: String, a: &Value, b: &Value, out: &mut Vec<FieldChange>) {
    if a == b || out.len() >= MAX_FIELD_CHANGES {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => compare(cpu, format!("{path}.{k}"), va, vb, out),
                    None => return push(cpu, path, a, b, out),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() && !is_bytes(x) => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                compare(cpu, format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ => push(cpu, path, a, b, out),
    }
}

/// An array of hex strings (raw bytes) is one field.
fn is_bytes(x: &[Value]) -> bool {
    x.len() > 1 && x.iter().all(Value::is_string)
}

fn push(cpu: Option<u32>, path: String, a: &Value, b: &Value, out: &mut Vec<FieldChange>) {
    if out.len() < MAX_FIELD_CHANGES {
        out.push(FieldChange {
            cpu,
            path,
            old: a.clone(),
            new: b.clone(),
        });
    }
}
