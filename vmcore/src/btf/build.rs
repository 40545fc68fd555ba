//! Writing BTF blobs, for tests and synthetic dumps: a few structs of integers, pointers,
//! char arrays and earlier structs, laid out as the kernel's `btf.h` says.

use std::collections::HashMap;

use super::{ARRAY, INT, MAGIC, PTR, STRUCT};

/// A struct for [`build`]: name, size, members `(name, byte offset, type)`.
pub type StructSpec<'a> = (&'a str, u32, &'a [(&'a str, u32, &'a str)]);

/// Builds a BTF blob, for tests and synthetic dumps: `structs` of `(name, size, members)`
/// with members `(name, byte offset, type)` where the type is `"u64"`, `"ptr"`, `"u32"` or
/// `"char[N]"`, or the name of a struct defined earlier.
pub fn build(structs: &[StructSpec<'_>]) -> Vec<u8> {
    let mut strings = vec![0u8];
    let mut s = |text: &str| -> u32 {
        let at = strings.len() as u32;
        strings.extend_from_slice(text.as_bytes());
        strings.push(0);
        at
    };
    let mut types = Vec::new();
    let push = |types: &mut Vec<u8>, words: &[u32]| {
        for w in words {
            types.extend_from_slice(&w.to_le_bytes());
        }
    };
    // 1: u64, 2: u32, 3: char, 4: void *
    let (u64n, u32n, charn) = (s("long unsigned int"), s("unsigned int"), s("char"));
    push(&mut types, &[u64n, INT << 24, 8, 64]);
    push(&mut types, &[u32n, INT << 24, 4, 32]);
    push(&mut types, &[charn, INT << 24, 1, 8]);
    push(&mut types, &[0, PTR << 24, 0]);
    let mut next = 5u32;
    let mut ids: HashMap<String, u32> = HashMap::new();
    for (name, size, members) in structs {
        let mut member_types = Vec::new();
        for (_, _, ty) in members.iter() {
            let id = match *ty {
                "u64" => 1,
                "u32" => 2,
                "ptr" => 4,
                t if t.starts_with("char[") => {
                    let n: u32 = t[5..t.len() - 1].parse().unwrap_or(1);
                    push(&mut types, &[0, ARRAY << 24, 0, 3, 2, n]);
                    next += 1;
                    next - 1
                }
                t => ids.get(t).copied().unwrap_or(1),
            };
            member_types.push(id);
        }
        let n = s(name);
        push(&mut types, &[n, STRUCT << 24 | members.len() as u32, *size]);
        for ((mname, off, _), ty) in members.iter().zip(member_types) {
            let mn = s(mname);
            push(&mut types, &[mn, ty, off * 8]);
        }
        ids.insert(name.to_string(), next);
        next += 1;
    }
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&[1, 0]);
    for w in [
        24,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend(types);
    out.extend(strings);
    out
}
